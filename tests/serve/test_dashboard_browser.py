"""The dashboard in a real browser: headless Chromium loads the page from the running service,
submits with its form, watches a video's progress bar, cancels from the page, uses the token,
chooses models from the API and compares a result with its input.

Set ``TMLSR_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the README's screenshot, and
``TMLSR_BEFORE_AFTER_SCREENSHOT=docs/before-after.png`` for the before/after view's."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.helpers import AUTH, SEEDVR2_MODEL, SHARED, eventually, make_clip, png_bytes, start_slow_video
from tmlsr_ray.protocol import MAX_SEED


def _chromium() -> str | None:
    """The system Chromium (Debian's `chromium` package); Playwright downloads no browser here."""
    for candidate in (os.environ.get("TMLSR_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium binary (Debian: apt-get install chromium; "
                                "or set TMLSR_CHROMIUM to one)")
TASK_TIMEOUT_MS = 30_000  # a task through the service on a loaded 2-core CI machine
expect.set_options(timeout=10_000)  # the page refreshes every 2 s; CI machines are slow


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    script_errors = []
    page.on("pageerror", lambda error: script_errors.append(error))

    def unexpected_dialog(dialog):  # the page opens none; an alert() here would be injected script
        script_errors.append(f"unexpected dialog: {dialog.message}")
        dialog.dismiss()

    page.on("dialog", unexpected_dialog)
    yield page
    context.close()
    assert not script_errors, script_errors


def row(page, task_id: str):
    return page.locator(f'#tasks tr[data-task-id="{task_id}"]')


def submit_with_form(page, url: str, **fields: str) -> str:
    """Fills the form (url, then the named fields), submits it and returns the new task's id."""
    form = page.locator("#submit-form")
    form.locator("input[name=url]").fill(url)
    for name, value in fields.items():
        field = form.locator(f"[name={name}]")
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)  # waits for the option (the models arrive from the API)
        else:
            field.fill(value)
    form.locator("button[type=submit]").click()
    message = page.locator("#submit-message")
    expect(message).to_contain_text("Submitted task")
    return re.search(r"[0-9a-f]{32}", message.inner_text()).group()


def test_the_page_submits_shows_progress_and_timings_and_cancels(service, input_server, page, tmp_path):
    video_id = start_slow_video(service, input_server, tmp_path, "dashboard.mp4", frames=96)
    try:
        page.goto(service.url("/dashboard"))
        expect(page.locator("#live")).to_contain_text("live")
        expect(page.locator("[data-stat=workers] .num")).to_have_text(re.compile(r"^[12] / 2$"))

        # The running video: a progress bar with frames, speed and time left.
        video = row(page, video_id)
        expect(video).to_have_attribute("data-status", "processing")
        expect(video.locator(".progress .sub")).to_contain_text(re.compile(r"\d+ / 96 frames · [\d.]+ fps · ETA"))
        assert 0 < float(video.locator(".progress").get_attribute("data-percent")) <= 100

        # An image through the form: it completes with stage timings and an output link.
        image_id = submit_with_form(page, input_server.add("dashboard.png", png_bytes(48, 32, seed=7)),
                                    type="image", model="tiny-x4.pth", outscale="2")
        image = row(page, image_id)
        expect(image).to_have_attribute("data-status", "completed", timeout=TASK_TIMEOUT_MS)
        expect(image.locator(".stage.success")).to_have_count(3)
        expect(image.locator(".stage").first).to_have_text(re.compile(r"^download \d+\.\d\d s$"))
        link = image.locator("a.output-link")
        expect(link).to_have_text("output.png")
        expect(image).to_contain_text("96×64 · png")
        output = requests.get(link.get_attribute("href"), timeout=10)
        assert output.status_code == 200 and Image.open(io.BytesIO(output.content)).size == (96, 64)
        assert service.task(image_id)["params"]["outscale"] == 2.0

        # A task whose input trickles in for 30 s: canceled with its button on the page.
        slow_id = service.submit(url=input_server.url("slow/dashboard.png?seconds=30"), type="image",
                                 model="tiny-x4.pth")["task_id"]
        slow = row(page, slow_id)
        slow.locator("button.cancel").click()
        expect(slow).to_have_attribute("data-status", "canceled")
        expect(slow.locator("button.cancel")).to_have_count(0)
        expect(page.locator("#submit-message")).to_contain_text(f"Canceled task {slow_id[:8]}")
        assert service.task(slow_id)["status"] == "canceled"

        # A failure shows its reason.
        failed_id = service.submit(url=input_server.url("missing.png"), type="image", model="tiny-x4.pth")["task_id"]
        expect(row(page, failed_id).locator(".error")).to_contain_text("404", timeout=TASK_TIMEOUT_MS)

        page.screenshot(path=tmp_path / "dashboard.png")
        assert Image.open(tmp_path / "dashboard.png").size == (1280, 800)
        if os.environ.get("TMLSR_DASHBOARD_SCREENSHOT"):
            shutil.copy(tmp_path / "dashboard.png", os.environ["TMLSR_DASHBOARD_SCREENSHOT"])
    finally:
        requests.delete(service.url(f"/tasks/{video_id}"), timeout=10)


def test_text_from_the_api_is_shown_as_text_never_as_markup(service, input_server, page):
    # Markup without spaces or slashes: a URL with spaces is refused at submission, and the page
    # shows the URL's last path segment.
    markup = '<img>"onmouseover="alert(2)<b>.png'
    hostile = input_server.url(markup)
    task_id = service.submit(url=hostile, type="image", model="tiny-x4.pth")["task_id"]
    page.goto(service.url("/dashboard"))
    hostile_row = row(page, task_id)
    expect(hostile_row).to_have_attribute("data-status", "failed", timeout=TASK_TIMEOUT_MS)
    expect(hostile_row.locator("td.col-input")).to_contain_text(markup)
    hostile_row.locator("td.col-input a").hover()
    assert page.locator("#tasks img, #tasks b, #tasks [onmouseover]").count() == 0  # and no dialog opened (the page fixture)


def test_the_page_asks_for_the_api_token_and_sends_it(secured, input_server, page):
    wait_until_idle(secured)  # the app is shared with test_auth, whose slow tasks may still run
    page.goto(secured + "/dashboard")
    banner = page.locator("#token-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("API token needed")
    expect(page.locator("#live")).to_have_text("needs API token")
    expect(page.locator("[data-stat=workers]")).to_have_count(0)

    page.fill("#token-input", "wrong")
    page.click("#token-banner button")
    expect(banner).to_contain_text("refused")

    page.fill("#token-input", "s3cret")
    page.click("#token-banner button")
    expect(banner).to_be_hidden()
    expect(page.locator("[data-stat=workers] .num")).to_have_text("0 / 1")
    expect(page.locator("#token-state")).to_be_visible()

    # Submitting sends the token; a tiny flat output stays under this app's 1,000-byte limit.
    flat = Image.new("RGB", (8, 8), (90, 140, 200))
    buffer = io.BytesIO()
    flat.save(buffer, "PNG")
    task_id = submit_with_form(page, input_server.add("flat.png", buffer.getvalue()), type="image",
                               model="tiny-x4.pth", outscale="1")
    task = row(page, task_id)
    expect(task).to_have_attribute("data-status", "completed", timeout=TASK_TIMEOUT_MS)

    # The output route needs the token too: the page fetches the file with it and opens it.
    with page.expect_popup() as popup:
        task.locator("a.output-link").click()
    tab = popup.value
    tab.wait_for_url(re.compile(r"^blob:"))
    expect(page.locator("#submit-message")).not_to_contain_text("Could not open")

    # The token lasts for the browser tab (sessionStorage): a reload needs no prompt.
    page.reload()
    expect(page.locator("[data-stat=workers] .num")).to_have_text("0 / 1")
    expect(banner).to_be_hidden()
    assert requests.get(f"{secured}/tasks/{task_id}", headers=AUTH, timeout=10).json()["status"] == "completed"


def wait_until_idle(base: str, timeout: float = 90) -> None:
    eventually(lambda: requests.get(f"{base}/monitor/stats", headers=AUTH, timeout=10).json()["system"], timeout,
               f"{base} idle", until=lambda system: system["active_workers"] == 0 and system["queue_size"] == 0,
               every=0.5)


def test_the_model_choice_comes_from_the_api_and_enables_the_fields_that_apply(service, page):
    page.goto(service.url("/dashboard"))
    choice = page.locator("#submit-form select[name=model]")
    expect(choice.locator('option[value="tiny-x4.pth"]')).to_have_text(
        "tiny-x4.pth — realesrgan · ×4 · SRVGGNetCompact")
    expect(choice.locator('option[value="tiny-hat-x2.pth"]')).to_contain_text("spandrel · ×2 · HAT")
    face = choice.locator('option[value="tiny-face.pth"]')
    expect(face).to_be_disabled()
    expect(face).to_contain_text("cannot serve: model file tiny-face.pth is a face-restoration model")
    resolution, seed = page.locator("input[name=resolution]"), page.locator("input[name=seed]")
    choice.select_option("tiny-x4.pth")
    expect(resolution).to_be_disabled()
    expect(seed).to_be_disabled()
    if not (service.weights_dir / SEEDVR2_MODEL).exists():
        pytest.skip("no SeedVR2 model in this checkout's shared assets")
    choice.select_option(SEEDVR2_MODEL)  # a model of any scale, seeded: the API says so, not its name
    expect(choice.locator(f'option[value="{SEEDVR2_MODEL}"]')).to_contain_text("seedvr2 · any scale")
    expect(resolution).to_be_enabled()
    expect(seed).to_be_enabled()


def test_a_seed_past_2_to_the_53_goes_with_the_task_exactly_as_typed(service, input_server, page):
    """The form sent the seed through Number(), which rounds integers past 2**53: 2**53 + 1 went
    as 2**53, another seed than the one typed, and MAX_SEED as 2**63, which the service refused.
    The task's row showed it rounded too (read from the API's JSON as a Number)."""
    if not (service.weights_dir / SEEDVR2_MODEL).exists():
        pytest.skip("no SeedVR2 model in this checkout's shared assets")
    for seed in (2**53 + 1, MAX_SEED):
        page.goto(service.url("/dashboard"))  # a fresh message: the last one said "Submitted task" too
        task_id = submit_with_form(page, input_server.url("no-such-seeded.png"), type="image", model=SEEDVR2_MODEL,
                                   seed=str(seed))
        assert service.task(task_id)["params"]["seed"] == seed
        expect(row(page, task_id)).to_contain_text(f"seed {seed}")


def test_the_format_choice_follows_the_type_and_goes_with_the_task(service, input_server, page):
    page.goto(service.url("/dashboard"))
    kind, formats = page.locator("#submit-form select[name=type]"), page.locator("#submit-form select[name=output_format]")
    expect(formats.locator("option")).to_have_text(["MP4", "Matroska", "QuickTime"])
    kind.select_option("image")
    expect(formats.locator("option")).to_have_text(["the input's", "PNG", "JPEG", "WebP"])
    kind.select_option("video")
    task_id = submit_with_form(page, input_server.url("no-such-episode.mkv"), output_format="mkv")
    assert requests.get(service.url(f"/tasks/{task_id}"), timeout=30).json()["params"]["output_format"] == "mkv"


def before_after_picture() -> bytes:
    """A photo (the shared assets' cat, when present) small enough to upscale quickly."""
    photo = SHARED / "media" / "image" / "photo_chelsea_odd_451x300.png"
    if photo.exists():
        image = Image.open(photo).convert("RGB").resize((150, 100), Image.LANCZOS)
    else:
        image = Image.open(io.BytesIO(png_bytes(150, 100, seed=3)))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def open_before_after(page, service, task_id: str):
    page.goto(service.url("/dashboard"))
    row(page, task_id).locator("button.compare").click()
    dialog = page.locator("dialog#compare")
    expect(dialog).to_be_visible()
    return dialog


def box(locator) -> tuple:
    b = locator.bounding_box()
    return round(b["x"]), round(b["y"]), round(b["width"]), round(b["height"])


def test_a_finished_image_shows_input_and_output_in_one_frame_split_and_zoomable(service, input_server, page,
                                                                                 tmp_path):
    url = input_server.add("before-after.png", before_after_picture())
    task = service.run(url=url, type="image", model="realesr-animevideov3.pth")
    assert task["status"] == "completed", task["error"]
    dialog = open_before_after(page, service, task["task_id"])
    expect(dialog.locator("#compare-time")).to_be_hidden()  # a video's control
    before, after = dialog.locator("#compare-before img"), dialog.locator("#compare-after img")
    stage = dialog.locator("#compare-stage")
    page.wait_for_function("() => [...document.querySelectorAll('#compare img')].every(i => i.naturalWidth)")
    assert (before.evaluate("i => i.naturalWidth"), after.evaluate("i => i.naturalWidth")) == (150, 600)
    assert box(before) == box(after) == box(stage)  # the input shown at the output's size, in the same place
    width, height = box(stage)[2:]
    assert abs(width / height - 1.5) < 0.01

    def split() -> float:
        return float(stage.get_attribute("data-split"))

    def clip() -> str:
        return dialog.locator("#compare-after").evaluate("e => getComputedStyle(e).clipPath")

    # The split follows the pointer: the input left of it, the output right of it.
    x, y = box(stage)[:2]
    page.mouse.click(x + width * 0.25, y + height / 2)
    assert abs(split() - 25) < 0.5 and clip().startswith("inset(0px 0px 0px 25")
    page.mouse.move(x + width * 0.25, y + height / 2)
    page.mouse.down()
    page.mouse.move(x + width * 0.75, y + height / 2, steps=5)
    page.mouse.up()
    assert abs(split() - 75) < 0.5
    divider = box(dialog.locator("#compare-divider"))
    assert abs(divider[0] - (x + width * 0.75)) <= 2
    dialog.locator("#compare-split").fill("50")  # the slider (keyboard users) does the same
    assert split() == 50 and clip() == "inset(0px 0px 0px 50%)"
    page.screenshot(path=tmp_path / "before-after.png")
    assert Image.open(tmp_path / "before-after.png").size == (1280, 800)
    if os.environ.get("TMLSR_BEFORE_AFTER_SCREENSHOT"):
        shutil.copy(tmp_path / "before-after.png", os.environ["TMLSR_BEFORE_AFTER_SCREENSHOT"])

    # Zoom: both layers grow together; the wheel zooms too; "fit" shows the whole picture again.
    level = dialog.locator("#compare-zoom-level")
    expect(level).to_have_text(f"{round(100 * width / 600)}%")  # of the output's pixels
    dialog.locator("[data-zoom=in]").click()
    assert abs(box(stage)[2] - width * 1.5) <= 1 and box(before)[2:] == box(after)[2:] == box(stage)[2:]
    expect(level).to_have_text(f"{round(150 * width / 600)}%")
    page.mouse.move(x + width / 2, y + height / 2)
    page.mouse.wheel(0, -100)
    expect(level).not_to_have_text(f"{round(150 * width / 600)}%")
    assert box(stage)[2] > width * 1.5 + 1 and box(before)[2:] == box(after)[2:]
    dialog.locator("[data-zoom=fit]").click()
    assert box(stage)[2:] == (width, height)
    dialog.locator("#compare-close").click()
    expect(dialog).to_be_hidden()


def test_a_finished_video_shows_one_frame_of_input_and_output_at_the_same_time(service, input_server, page,
                                                                               tmp_path):
    clip = make_clip(tmp_path / "before-after.mp4", frames=24, size=(64, 48), audio=False)
    input_server.add("before-after.mp4", clip.read_bytes())
    # An input server that answers range requests (as web servers and OSS do): browsers seek with them.
    task = service.run(url=input_server.url("ranged/before-after.mp4"), model="tiny-x4.pth")
    assert task["status"] == "completed", task["error"]
    dialog = open_before_after(page, service, task["task_id"])
    time_slider = dialog.locator("#compare-time")
    expect(time_slider).to_be_visible()
    expect(dialog.locator("video")).to_have_count(2)
    page.wait_for_function("() => Number(document.getElementById('compare-time').max) > 1.5")
    time_slider.fill("1.25")
    page.wait_for_function("""() => [...document.querySelectorAll('#compare video')].every(
        v => Math.abs(v.currentTime - 1.25) < 1e-6 && !v.seeking && v.readyState >= 2)""")
    expect(dialog.locator("#compare-time-text")).to_have_text("1.25 s")
    assert box(dialog.locator("#compare-before video")) == box(dialog.locator("#compare-after video"))
    assert dialog.locator("#compare-after video").evaluate("v => [v.videoWidth, v.videoHeight]") == [256, 192]


def test_the_page_reads_task_events_as_the_event_stream_sends_them(service, page):
    """The reader of GET /tasks/{id}/events: chunks cut anywhere, heartbeats, CRLF lines."""
    page.goto(service.url("/dashboard"))
    events = page.evaluate("""async () => {
        const {EventStreamParser} = await import('./dashboard/task-stream.js');
        const text = ': keep-alive\\n\\nid: 1\\nevent: status\\ndata: {"status":"pending"}\\n\\n: keep-alive\\n\\n'
          + 'id: 2\\r\\nevent: progress\\r\\ndata: {"status":"processing"}\\r\\n\\r\\n'
          + 'id: 3\\nevent: end\\ndata: {"status":"completed"}\\n\\n';
        return [1, 2, 3, 5, 7, 11, text.length].map(step => {
          const parser = new EventStreamParser(), seen = [];
          for (let i = 0; i < text.length; i += step) seen.push(...parser.push(text.slice(i, i + step)));
          return seen;
        });
    }""")
    assert events == 7 * [[{"id": "1", "event": "status", "data": '{"status":"pending"}'},
                           {"id": "2", "event": "progress", "data": '{"status":"processing"}'},
                           {"id": "3", "event": "end", "data": '{"status":"completed"}'}]]
