"""Video tasks through the running service: every shared clip, checked with PyAV frame by frame."""

from __future__ import annotations

import re
import time

import av
import numpy as np
import pytest
import requests

from tests.helpers import (AUTH, COVER_JPEG, FONT_BYTES, SHARED, actor_pid, animated_gif, anime_matroska,
                           cut_inside_packet, eventually, fetch_output, frame_flood_gif, frozen, interlaced_clip,
                           joined_recordings, live_source, make_clip, PieceRewrites, png_bytes, replica_pids,
                           save_srvgg, segments_done, shared_path, sigkill, soft_telecine_clip, start_slow_video,
                           task_ended, video_frames, video_progress, video_tracks, wait_for_task,
                           with_adts_header_broken, with_packets_damaged, with_telemetry_and_cover)
from tmlsr_ray.models.realesrgan import RealESRGANModel
from tmlsr_ray.pipeline.decode import iter_batches
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.upscale import upscale_frames

VIDEOS = sorted(p.name for p in (SHARED / "media" / "video").glob("*")) if (SHARED / "media").is_dir() else []


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("name", VIDEOS or [None])
def test_every_shared_video_keeps_frames_timestamps_audio_and_subtitles(service, input_server, tmp_path, name):
    if name is None:
        shared_path("media", "video")
    source = SHARED / "media" / "video" / name
    info = probe_video(source)
    source_frames = [(pts, frames) for batch in iter_batches(source, info, 16)
                     for pts, frames in zip(batch.pts, batch.frames)]
    # What is pinned (frames, times, streams) does not need a 720p or 1440p output: a clip 640 wide or more
    # comes back at its own size (the x2 model's output scaled back), the smaller ones twice theirs.
    outscale = 1 if info.width >= 640 else 2
    task = service.run(url=input_server.url(f"media/video/{name}"), model="smooth-x2.pth", outscale=outscale,
                       timeout=300)
    assert task["status"] == "completed", task["error"]
    assert task["params"]["type"] == "video"
    meta = task["output"]["metadata"]
    width, height = (side * outscale - (side * outscale) % 2 for side in (info.width, info.height))
    assert (meta["width"], meta["height"], meta["frames"]) == (width, height, len(source_frames))

    frames, streams, duration = video_frames(fetch_output(task), tmp_path / "out.mp4")
    assert len(frames) == len(source_frames)
    assert frames[0][1].shape == (height, width, 3)
    out_times = np.array([t for t, _ in frames]) - frames[0][0]
    in_times = (np.array([p for p, _ in source_frames]) - source_frames[0][0]) * float(info.time_base)
    assert np.allclose(out_times, in_times, atol=0.002), "frame timestamps changed"
    if info.duration_s:
        frame_time = 1 / info.fps if info.fps else 0.1
        assert abs(duration - info.duration_s) <= frame_time + 0.05
    assert [c for t, c in streams if t == "video"] == ["h264"]
    assert sum(t == "audio" for t, _ in streams) == len(info.audio)
    text_subtitles = sum(s.codec in ("mov_text", "subrip", "srt", "ass", "webvtt") for s in info.subtitles)
    assert sum(c == "mov_text" for _, c in streams) == text_subtitles
    if info.animated_gif:
        assert meta["converted_from"] == "gif"

    # Sampled frames equal the model run on the decoded input frame, after encoding.
    model = RealESRGANModel(service.weights_dir / "smooth-x2.pth", device="cpu")
    for index in sorted({0, len(frames) // 2, len(frames) - 1}):
        expected = upscale_frames(model, source_frames[index][1][None], (width, height))[0]
        if expected.dtype == np.uint16:
            expected = (expected / 257).round().astype(np.uint8)
        assert psnr(frames[index][1], expected) >= 35, f"frame {index}"


def test_a_generated_clip_keeps_its_audio_in_sync_and_reports_how_it_was_encoded(service, input_server, tmp_path):
    url = input_server.add("clip.mp4", make_clip(tmp_path / "clip.mp4").read_bytes())
    task = service.run(url=url, model="tiny-x4.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"], meta["frames"], meta["fps"]) == (256, 192, 12, 12.0)
    assert (meta["encoder"], meta["preset"], meta["crf"]) == ("libx264", "ultrafast", 18)
    assert meta["encoder_threads"] == 1, "the replica's one CPU, shared by its two segments in flight"
    assert meta["audio_streams"][0]["codec"] == "aac" and meta["audio_streams"][0]["copied"] is True
    assert meta["transfer_bytes"]["to_replicas"] > 0 and meta["transfer_bytes"]["from_replicas"] > 0
    assert meta["deinterlaced"] is False and meta["input"]["interlaced"] is False
    data = fetch_output(task)
    (tmp_path / "o.mp4").write_bytes(data)
    with av.open(str(tmp_path / "o.mp4")) as container:
        audio = container.streams.audio[0]
        video = container.streams.video[0]
        assert abs(float(audio.duration * audio.time_base) - float(video.duration * video.time_base)) < 0.15
        assert abs(float((audio.start_time or 0) * audio.time_base) - float((video.start_time or 0) * video.time_base)) < 0.1
    assert data[4:8] == b"ftyp" and data.find(b"moov") < data.find(b"mdat"), "not +faststart"


def test_a_matroska_output_comes_back_as_matroska_with_its_fonts_styled_subtitles_and_pcm(
        service, input_server, tmp_path):
    url = input_server.add("episode.mkv", anime_matroska(tmp_path / "episode.mkv").read_bytes())
    task = service.run(url=url, model="tiny-x4.pth", output_format="mkv")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["format"] == "mkv" and task["output"]["url"].endswith("/output.mkv") and meta["frames"] == 12
    assert meta["attachments"] == [
        {"name": "TestFont.ttf", "mimetype": "application/x-truetype-font", "bytes": len(FONT_BYTES)},
        {"name": "cover.jpg", "mimetype": "image/jpeg", "bytes": len(COVER_JPEG)}] and meta["attachments_dropped"] == []
    assert [a["codec"] for a in meta["audio_streams"] if a["copied"]] == ["pcm_s16le"]
    response = requests.get(task["output"]["url"], timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "video/x-matroska"
    (tmp_path / "o.mkv").write_bytes(response.content)
    with av.open(str(tmp_path / "o.mkv")) as container:
        assert [s.type for s in container.streams] == ["video", "audio", "subtitle", "subtitle", "attachment", "video"]
        assert container.streams.subtitles[0].codec_context.codec.canonical_name == "ass"


def test_a_camera_mp4_upscales_its_main_video_keeps_its_cover_and_names_what_it_left_out(
        service, input_server, tmp_path):
    """A preview track (MP4 makes it a default too, at the higher bit rate), GoPro telemetry and
    cover art beside the video."""
    main = video_tracks(tmp_path / "two.mp4", [((32, 24), 6, True), ((64, 48), 24, True)])
    url = input_server.add("camera.mp4", with_telemetry_and_cover(main, tmp_path / "camera.mp4").read_bytes())
    task = service.run(url=url, model="smooth-x2.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"], meta["frames"], meta["input"]["stream_index"]) == (128, 96, 24, 1)
    assert [(d["index"], d["type"], d["reason"]) for d in meta["streams_dropped"]] == [
        (0, "video", "one video is upscaled, stream 1"), (3, "data", "data streams are not carried")]
    assert meta["attachments"] == [{"name": "cover.jpg", "mimetype": "image/jpeg", "bytes": len(COVER_JPEG)}]
    (tmp_path / "o.mp4").write_bytes(fetch_output(task))
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert [(s.type, bool(s.disposition & av.stream.Disposition.attached_pic)) for s in container.streams] == [
            ("video", False), ("audio", False), ("video", True)]


def test_an_interlaced_clip_comes_back_progressive_and_says_so(service, input_server, tmp_path):
    url = input_server.add("interlaced.ts", interlaced_clip(tmp_path / "interlaced.ts", codec="mpeg2video").read_bytes())
    task = service.run(url=url, model="tiny-x4.pth", outscale=1)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["deinterlaced"] is True and meta["input"]["interlaced"] is True and meta["frames"] == 24
    frames, _, _ = video_frames(fetch_output(task), tmp_path / "o.mp4")
    assert len(frames) == 24  # the pictures themselves: tests/pipeline/test_segments.py, with a smooth model


def test_a_soft_telecine_film_reports_the_rate_its_frames_play_at(service, input_server, tmp_path):
    """A DVD film flagged to repeat fields for 29.97 display: FFmpeg states 29.97, its frames play at 23.976."""
    url = input_server.add("film.ts", soft_telecine_clip(tmp_path / "film.ts", container="mpegts").read_bytes())
    task = service.run(url=url, model="tiny-x4.pth", outscale=1)
    assert task["status"] == "completed", task["error"]
    assert (task["output"]["metadata"]["fps"], task["output"]["metadata"]["frames"]) == (23.976, 48)


def test_recordings_joined_with_their_clock_jumping_back_come_back_as_one_video(service, input_server, tmp_path):
    """``cat late.ts early.ts``: the jump back reads as the clock wrapping, 26.5 hours on; the MP4
    could not hold that step and the task failed after its upscaling."""
    url = input_server.add("joined.ts", joined_recordings(tmp_path / "joined.ts", (100, 0)).read_bytes())
    task = service.run(url=url, model="tiny-x4.pth", outscale=1)
    assert task["status"] == "completed", task["error"]
    assert task["output"]["metadata"]["frames"] == 48 and task["output"]["metadata"]["segments"]["total"] > 1
    frames, streams, duration = video_frames(fetch_output(task), tmp_path / "o.mp4")
    assert len(frames) == 48 and duration == pytest.approx(4.1, abs=0.2) and ("audio", "aac") in streams


def test_a_screen_recording_with_one_keyframe_is_cut_into_segments_its_long_gop_re_keyed(
        service, input_server, tmp_path):
    # 30 one-second segments; past 300 packets of pre-roll (segment 26 on, or 25) they are re-keyed
    clip = make_clip(tmp_path / "screen.mp4", frames=360, options={"x264-params": "keyint=1000:scenecut=0:bframes=2"})
    task = service.run(url=input_server.add("screen.mp4", clip.read_bytes()), model="tiny-x4.pth", outscale=1)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["frames"] == 360 and meta["segments"]["total"] == 30
    assert 4 <= meta["segments"]["rekeyed"] <= 5  # B-frames move segment 25's first frame in decode order
    frames, streams, _ = video_frames(fetch_output(task), tmp_path / "out.mp4")
    info = probe_video(clip)
    source = [pts * float(info.time_base) for batch in iter_batches(clip, info, 16) for pts in batch.pts]
    assert np.allclose([t for t, _ in frames], source, atol=0.001) and ("audio", "aac") in streams


def test_a_prores_master_is_cut_into_segments_and_comes_back_as_prores_with_its_pcm(service, input_server, tmp_path):
    """A studio's master was one segment, on one replica: it is cut as any video is, and comes
    back as ProRes 422 HQ in QuickTime with its 24-bit sound as it was recorded."""
    clip = make_clip(tmp_path / "master.mov", frames=36, codec="prores_ks", pix_fmt="yuv422p10le",
                     audio_codec="pcm_s24le")
    task = service.run(url=input_server.add("master.mov", clip.read_bytes()), model="tiny-x4.pth", outscale=1,
                       video_codec="prores")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["segments"]["total"], meta["frames"], meta["format"]) == (3, 36, "mov")
    assert (meta["video_codec"], meta["pix_fmt"], meta["crf"]) == ("prores", "yuv422p10le", None)
    assert [a["codec"] for a in meta["audio_streams"] if a["copied"]] == ["pcm_s24le"]
    response = requests.get(task["output"]["url"], timeout=30)
    assert response.status_code == 200 and response.headers["content-type"] == "video/quicktime"
    assert task["output"]["url"].endswith("/output.mov")


def test_odd_output_sizes_are_rounded_down_to_even(service, input_server, tmp_path):
    url = input_server.add("odd.mp4", make_clip(tmp_path / "odd.mp4", audio=False).read_bytes())
    task = service.run(url=url, model="tiny-x4.pth", output_dims=[101, 77])
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"]) == (100, 76) and "rounded down" in meta["size_note"]


BAD = sorted(p.name for p in (SHARED / "media" / "bad").glob("*.mp4")) if (SHARED / "media").is_dir() else []


@pytest.mark.parametrize("name", BAD or [None])
def test_bad_videos_fail_readably_without_hurting_other_tasks(service, input_server, tmp_path, name):
    if name is None:
        shared_path("media", "bad")
    good = service.submit(url=input_server.add("good.mp4", make_clip(tmp_path / "g.mp4").read_bytes()),
                          model="tiny-x4.pth")["task_id"]
    # at its own size: a 720p clip's damage is met after most of its frames, each a 5K frame at x4
    task = service.run(url=input_server.url(f"media/bad/{name}"), model="tiny-x4.pth", outscale=1)
    assert task["status"] == "failed" and task["error"] and "Traceback" not in task["error"]
    assert service.wait(good)["status"] == "completed"


def test_damaged_videos_complete_with_what_is_whole_in_them(service, input_server, tmp_path):
    """Through the service, as the fuzz sweep found them: a video cut off inside a frame keeps its
    4 whole frames (it came out 2 frames long); one AAC frame with a bit error is left out and
    counted (the task failed at the join)."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"},
                       container_options={"movflags": "faststart"})
    cut = service.submit(url=input_server.add("cut.mp4", cut_inside_packet(source, tmp_path / "cut.mp4", 4).read_bytes()),
                         model="tiny-x4.pth")["task_id"]
    damaged = with_adts_header_broken(make_clip(tmp_path / "in.ts", frames=24, rate=24), tmp_path / "bad.ts")
    task = service.run(url=input_server.add("bad.ts", damaged.read_bytes()), model="tiny-x4.pth")
    assert task["status"] == "completed", task["error"]
    assert [a.get("damaged_packets_dropped") for a in task["output"]["metadata"]["audio_streams"]] == [1]
    whole = service.wait(cut)
    assert whole["status"] == "completed", whole["error"]
    assert whole["output"]["metadata"]["frames"] == 4


def test_a_recording_whose_audio_starts_seconds_before_its_picture_is_upscaled_with_its_audio(
        service, input_server, tmp_path):
    """A broadcast recording started mid-programme: 8 s of sound before the first picture. It was
    refused as "the video stream has no picture size (corrupt header)" (FFmpeg's first 5 s)."""
    source = make_clip(tmp_path / "late.ts", frames=24, rate=12, container="mpegts", audio_s=10,
                       pts=[8 * 12 + n for n in range(24)])
    task = service.run(url=input_server.add("late-picture.ts", source.read_bytes()), model="tiny-x4.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["frames"], meta["width"], meta["height"]) == (24, 256, 192)
    assert [a["codec"] for a in meta["audio_streams"] if a["copied"]] == ["aac"]
    (tmp_path / "out.ts").write_bytes(fetch_output(task))
    starts = {}
    with av.open(str(tmp_path / "out.ts")) as out:
        for packet in out.demux():
            if packet.pts is not None:
                kind = packet.stream.type
                starts[kind] = min(starts.get(kind, packet.pts * packet.time_base), packet.pts * packet.time_base)
    assert starts["video"] - starts["audio"] > 7.5, "the sound before the picture is kept"


def test_a_damaged_frame_fails_saying_where_unless_asked_to_show_the_frame_before(service, input_server, tmp_path):
    """Two frames of 48 hit by bit errors: by default the task fails saying where and how to go on
    (it said only 'Invalid data found when processing input'); with damaged_frames "repeat" every
    frame comes out, each damaged one showing the frame before."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    url = input_server.add("damaged.mp4", with_packets_damaged(source, tmp_path / "damaged.mp4", [5, 20]).read_bytes())
    repeating = service.submit(url=url, model="tiny-x4.pth", damaged_frames="repeat")["task_id"]
    failed = service.run(url=url, model="tiny-x4.pth")
    assert failed["status"] == "failed" and re.search(r"a frame at about \d\.\d\d s is damaged .*damaged_frames "
                                                      r'"repeat"', failed["error"]), failed["error"]
    task = service.wait(repeating)
    assert task["status"] == "completed", task["error"]
    metadata = task["output"]["metadata"]
    assert (metadata["frames"], metadata["damaged_packets_dropped"]) == (48, 2) and metadata["frames_repeated"] >= 2


def test_a_mostly_damaged_video_fails_once_its_damage_is_over_the_share_without_upscaling_the_rest(
        service, input_server, tmp_path):
    """Every frame but the keyframes of the first 12 of 16 one-second segments damaged (276 of 384
    packets, over two thirds; the frame-threaded decoder reports 264): with damaged_frames "repeat"
    the task failed only after the model had upscaled all 384 frames, though no segment after the
    12th could bring the share back under."""
    save_srvgg(service.weights_dir / "damage-share-x4.pth")  # its own model: its own frame count
    source = make_clip(tmp_path / "in.mp4", frames=384, rate=24, audio=False,
                       options={"x264-params": "keyint=24:min-keyint=24:scenecut=0:bframes=0"})
    damaged = with_packets_damaged(source, tmp_path / "damaged.mp4", [n for n in range(12 * 24) if n % 24])
    task = service.run(url=input_server.add("mostly-damaged.mp4", damaged.read_bytes()), model="damage-share-x4.pth",
                       damaged_frames="repeat", timeout=180)
    assert task["status"] == "failed" and re.fullmatch(
        r"video could not be decoded: 2\d\d of its 384 packets are damaged \(Invalid data found when processing "
        r"input\)", task["error"]), task["error"]
    upscaled = []

    def settled() -> bool:
        upscaled.append(sum(float(line.rsplit(" ", 1)[1]) for line in requests.get(service.metrics_url, timeout=10)
                            .text.splitlines() if "tmlsr_frames_processed_total{" in line
                            and 'model="damage-share-x4.pth"' in line))
        return len(upscaled) > 3 and upscaled[-1] == upscaled[-4] > 0
    # Ray exports every few seconds: the same count three scrapes on is the one exported.
    eventually(settled, timeout=60, what=lambda: f"the frames upscaled exported, scraped {upscaled}", every=3)
    assert upscaled[-1] < 384 - 24, upscaled


def test_a_still_image_submitted_as_video_fails_with_a_hint(service, input_server):
    task = service.run(url=input_server.add("still.png", png_bytes(16, 16)), model="tiny-x4.pth")
    assert task["status"] == "failed" and "type=image" in task["error"]


# 20 s of video that states no length: a browser's recording, and a raw stream, which only the packet
# index scans and cannot time (its times are decode times: its span is not known to the final checks)
UNSTATED = {"live WebM": lambda folder: live_source(folder, "live webm"),
            "raw MPEG-2": lambda folder: make_clip(
                folder / "raw.m2v", frames=480, rate=24, audio=False, codec="mpeg2video", container="mpeg2video")}


@pytest.mark.parametrize("make", UNSTATED.values(), ids=UNSTATED.keys())
def test_a_video_stating_no_length_over_the_limit_fails_once_a_scan_reads_past_it(secured, input_server, tmp_path,
                                                                                  make):
    """The secured service takes videos of at most 2 s: the runner gives the limits to both scans, which
    stop there and say the video is longer. Without them the WebM was read whole and said to last 20 s,
    and the raw stream passed at any length (its task failed on the output's size)."""
    path = make(tmp_path)
    url = input_server.add(f"unstated-{path.name}", path.read_bytes())
    task_id = requests.post(secured + "/tasks", json={"url": url, "model": "tiny-x4.pth"}, headers=AUTH,
                            timeout=30).json()["task_id"]
    task = wait_for_task(secured, task_id, AUTH)
    assert task["status"] == "failed"
    assert task["error"] == "video lasts longer than the limit of 2 s (max_video_duration_s)"

def test_a_frame_flood_gif_is_refused_before_the_model_and_a_short_gif_still_works(service, input_server):
    flood = input_server.add("flood.gif", frame_flood_gif(40_000))  # 920 KB: once 148 s of model calls
    task = service.run(url=flood, model="slow-x4.pth", timeout=60)
    assert task["status"] == "failed"
    assert task["error"] == "animation has 40,000 frames, over the limit of 10,000 (max_animation_frames)"
    assert task["stages"][1]["detail"] is None, "the segments had started"
    short = service.run(url=input_server.add("short.gif", animated_gif(frames=8)), model="tiny-x4.pth")
    assert short["status"] == "completed", short["error"]
    meta = short["output"]["metadata"]
    assert (meta["frames"], meta["converted_from"], meta["width"]) == (8, "gif", 96)


def test_progress_shows_frames_fps_and_eta_while_processing(service, input_server, tmp_path):
    url = input_server.add("long.mp4", make_clip(tmp_path / "l.mp4", frames=48, size=(160, 120)).read_bytes())
    task_id = service.submit(url=url, model="slow-x4.pth")["task_id"]
    task = service.wait(task_id, until=lambda t: video_progress(t).get("frames_done", 0) > 0
                        or t["status"] != "processing" and t["status"] != "pending", timeout=120)
    detail = task["stages"][1]["detail"]
    assert detail["frames_total"] == 48 and 0 < detail["frames_done"] <= 48
    assert detail["fps"] > 0 and detail["eta_s"] is not None
    requests.delete(service.url(f"/tasks/{task_id}"), timeout=10)


def test_cancel_mid_video_stops_quickly_uploads_nothing_and_frees_the_replicas(service, input_server, tmp_path):
    url = input_server.add("cancel.mp4", make_clip(tmp_path / "c.mp4", frames=96, size=(160, 120)).read_bytes())
    task_id = service.submit(url=url, model="slow-x4.pth")["task_id"]
    service.wait(task_id, until=lambda t: video_progress(t).get("frames_done", 0) > 0,
                 timeout=120)
    start = time.monotonic()
    assert requests.delete(service.url(f"/tasks/{task_id}"), timeout=10).status_code == 200
    task = service.task(task_id)
    assert task["status"] == "canceled" and task["output"] is None
    assert task["stages"][2]["status"] == "skipped"
    # The replica is free again: a short clip goes straight through.
    small = input_server.add("after.mp4", make_clip(tmp_path / "a.mp4", frames=4, audio=False).read_bytes())
    follow_up = service.run(url=small, model="tiny-x4.pth", timeout=60)
    assert follow_up["status"] == "completed"
    assert time.monotonic() - start < 20
    assert not list(service.data_dir.glob(f"outputs/*/*/*/{task_id}"))
    eventually(lambda: not list((service.data_dir / "work").glob(f"{task_id}*")), what="the work folder removed")


def test_a_killed_upscaler_replica_does_not_fail_the_video(service, input_server, tmp_path):
    """The kill must meet a segment in flight: killed once frames were coming out, one CI run under
    load retried no segment (the kill came after the last one was done). It waits until frames have
    come out while no segment is done, so a segment is part way through its batches (the slow model
    still has a batch of it, over a second, to run on the replica) when the kill lands."""
    url = input_server.add("fault.mp4", make_clip(tmp_path / "fault.mp4", frames=24, size=(160, 120)).read_bytes())
    pids = replica_pids("Upscaler")
    task_id = service.submit(url=url, model="slow-x4.pth")["task_id"]
    task = service.wait(task_id, until=lambda t: video_progress(t).get("frames_done", 0) > 0
                        or t["status"] not in ("pending", "processing"), timeout=120)
    sigkill(pids)
    assert task["status"] == "processing" and segments_done(task) == 0, ("no segment seen part way", task)
    task = service.wait(task_id, timeout=240)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["frames"] == 24 and meta["segment_retries"] >= 1, {k: meta.get(k) for k in (
        "frames", "segment_retries", "segments", "transfer_bytes")}


def test_a_killed_task_runner_resumes_from_the_segments_already_finished(service, input_server, tmp_path):
    # Six segments of about a second; the runner is killed once one is done, with the model's replica
    # frozen so that none finishes meanwhile however fast the machine: the ones left are still left.
    clip = make_clip(tmp_path / "runner.mp4", frames=72, size=(160, 120))
    runners, upscalers = replica_pids("TaskRunner"), replica_pids("Upscaler")
    task_id = service.submit(url=input_server.add("runner.mp4", clip.read_bytes()), model="slow-x4.pth")["task_id"]
    service.wait(task_id, until=lambda t: segments_done(t) >= 1 or task_ended(t), timeout=180)
    with frozen(upscalers):
        task = service.task(task_id)
        total = video_progress(task).get("segments_total", 0)
        assert task["status"] == "processing" and 1 <= segments_done(task) < total, ("no cut part way", task)
        sigkill(runners)  # the task's loop dies with the process
        pieces = PieceRewrites(service.data_dir / "work" / task_id / "pieces")
    # The heartbeat stops; the sweeper re-queues the task and hands it to the new replica, whose
    # attempt finds the finished pieces and makes only the missing ones (one that remade them all
    # still counted the found ones as reused).
    task = service.wait(task_id, timeout=240, until=lambda t: pieces.look() or task_ended(t))
    assert task["status"] == "completed", task["error"]
    assert pieces.found and not pieces.rewritten, ("found pieces written again", sorted(pieces.rewritten))
    meta = task["output"]["metadata"]
    assert meta["frames"] == 72 and meta["segments"]["total"] == total >= 6
    assert 1 <= meta["segments"]["reused"] < total, meta["segments"]
    frames, _, _ = video_frames(fetch_output(task), tmp_path / "out.mp4")
    info = probe_video(clip)
    source = [pts * float(info.time_base) for batch in iter_batches(clip, info, 16) for pts in batch.pts]
    assert np.allclose([t for t, _ in frames], source, atol=0.001)
    eventually(lambda: not list((service.data_dir / "work").glob(f"{task_id}*")), what="pieces and input removed")


def test_a_killed_state_actor_does_not_lose_the_video(service, input_server, tmp_path):
    import ray

    from tmlsr_ray.serve.state import STATE_ACTOR_NAME, STATE_NAMESPACE

    task_id = start_slow_video(service, input_server, tmp_path, "state.mp4", frames=48)
    sigkill([actor_pid(ray.get_actor(STATE_ACTOR_NAME, namespace=STATE_NAMESPACE))])
    task = service.wait(task_id, timeout=240)
    assert task["status"] == "completed", task["error"]
    assert task["output"]["metadata"]["frames"] == 48
