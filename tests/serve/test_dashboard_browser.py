"""The dashboard in a real browser: headless Chromium loads the page from the running service,
submits with its form, watches a video's progress bar, cancels from the page and uses the token.

Set ``TMLSR_DASHBOARD_SCREENSHOT=docs/dashboard.png`` to refresh the README's screenshot."""

from __future__ import annotations

import io
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from tests.serve.test_api import png_bytes
from tests.serve.conftest import AUTH
from tests.serve.test_video import start_slow_video


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
        if name == "type":
            field.select_option(value)
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
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        system = requests.get(f"{base}/monitor/stats", headers=AUTH, timeout=10).json()["system"]
        if system["active_workers"] == 0 and system["queue_size"] == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"{base} still busy after {timeout} s")
