"""Segments without Ray: the cuts, the packets each segment carries, its frames, and the join.

Every shared clip and generated media with open GOPs, B-frames, VFR and long GOPs is cut into
1-second segments (many boundaries); the frames decoded segment by segment must be the frames of
one whole decode, and the joined output one continuous stream.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest

from tests.helpers import (intra_refresh_recording, plain_decode_stamps, COVER_JPEG, frame_count, probed_info, damaged_raw_stream, start_code_stream, with_unreferenced_pictures_dropped, with_start_codes_damaged, FRAME_NUM_ORDER_OPTIONS, intra_refresh_clip, LIVE_KINDS, SHORT_LIMITS, DemuxCount, live_source, packets_in, FONT_BYTES, SHARED, anime_matroska, broadcast_with_bit_errors, with_block_time_moved, with_audio_times_early, with_sample_durations_zero, with_every_tfdt_huge, with_first_index_size_huge, bayer_clip, bottom_up_avi, camcorder_dv, combing,
                           cut_and_decode, cut_mid_gop, first_keyframe_wiped, growing_broadcast, growing_recording,
                           dark_then_busy_master, interlaced_clip,
                           joined_fragments, joined_recordings, make_clip, palette_clip, progressive_then_interlaced, recording_with_audio_gap, save_srvgg, shared_path, soft_telecine_clip, timecoded_clip,
                           trim_by_edit_list, video_tracks, with_ass, with_dolby_vision_config, with_audio_frames_bundled, with_audio_time_wrong, with_mov_text,
                           whole_decode, with_attachments, with_telemetry_and_cover, with_track_emptied, with_unknown_codec,
                           without_frame_durations, with_every_frame_keyed, packed_b_frames_avi, with_container_colour,
                           programme_on_new_pids, media_recorder_webm, microsoft_video_1_8bit_avi, with_last_audio_tag_recoded,
                           with_adts_header_broken, audio_layout_switch_ts, cut_inside_packet, mpeg2_back_to_back,
                           with_box_field, vp8_with_hidden_frames, with_frames_hidden, with_packets_damaged,
                           spliced_encodes, with_parameter_sets_apart)
from tmlsr_ray.errors import InputError
from tmlsr_ray.models.realesrgan import RealESRGANModel
from tmlsr_ray.pipeline import damage as damage_stage
from tmlsr_ray.pipeline import segments as segments_stage
from tmlsr_ray.pipeline.audio_line import AudioLine
from tmlsr_ray.pipeline.damage import DamagedPackets
from tmlsr_ray.pipeline.encode import EncodeOptions, even_size
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.mux import assemble
from tmlsr_ray.pipeline.output_formats import (MATROSKA, MATROSKA_AUDIO_COPY, MOV, MP4, TASK_CODECS, ContainerFormat,
                                               output_container, task_codecs_available)
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.rekey import raw_frame_bytes
from tmlsr_ray.pipeline.render import SegmentJob, render_segment
from tmlsr_ray.pipeline.segment_plan import Cutting, PacketEntry, Segment
from tmlsr_ray.pipeline.segments import (_SegmentFile, cut_packets, decode_segment, extract_segments, frames_rate,
                                          plan_segments, planned_info, scan_packets)
from tmlsr_ray.pipeline.side_streams import AUDIO_DROPPED
from tmlsr_ray.pipeline.timeline import continuous_source
from tmlsr_ray.pipeline.upscale import Tiling, upscale_frames
from tmlsr_ray.storage.pieces import PieceStore

VIDEOS = sorted(p.name for p in (SHARED / "media" / "video").glob("*")) if (SHARED / "media").is_dir() else []
ONE_SECOND = Cutting(segment_s=1.0)


def shared_clip(name):
    if name is None:
        shared_path("media", "video")
    return SHARED / "media" / "video" / name


def segment_decode(path: Path, cutting: Cutting = ONE_SECOND):
    return cut_and_decode(path, cutting)


def open_gop_clip(path: Path) -> Path:
    """H.264 with open GOPs: B-frames after each I-frame (in decode order) that are shown before it."""
    return make_clip(path, frames=60, size=(64, 48), rate=24, audio=False, options={
        "x264-params": "open-gop=1:keyint=12:min-keyint=12:bframes=3:b-pyramid=normal:scenecut=0"})


def hevc_open_gop_clip(path: Path) -> Path:
    """10-bit HEVC with CRA pictures and leading (RASL) pictures."""
    return make_clip(path, frames=48, size=(64, 64), rate=24, audio=False, codec="libx265", pix_fmt="yuv420p10le",
                     options={"x265-params": "keyint=12:min-keyint=12:open-gop=1:bframes=3:scenecut=0:log-level=error"})


def vfr_clip(path: Path) -> Path:
    gaps = [1, 3, 2, 5, 1, 1, 4, 2] * 5  # in 1/60 s
    stamps = list(np.cumsum([0] + gaps[:-1]))
    return make_clip(path, frames=len(stamps), rate=30, audio=True, pts=[int(s) for s in stamps],
                     time_base=Fraction(1, 60), options={"x264-params": "keyint=10:bframes=2"})


def long_gop_clip(path: Path) -> Path:
    return make_clip(path, frames=96, rate=24, audio=False, options={"x264-params": "keyint=1000:scenecut=0"})


GENERATED = {"open_gop": open_gop_clip, "hevc_open_gop": hevc_open_gop_clip, "vfr": vfr_clip,
             "long_gop": long_gop_clip}


@pytest.mark.parametrize("name", VIDEOS or [None])
def test_every_shared_clip_decodes_segment_by_segment_to_the_frames_of_one_decode(name):
    path = shared_clip(name)
    plan, frames = segment_decode(path)
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected], "frames lost, doubled or moved"
    for (_, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want)
    assert len(plan.segments) >= min(3, len(expected) // 40), "1-second segments should cut the clip"


def assert_cut_into_segments_giving_one_decodes_frames(path: Path, cutting: Cutting, segments: int) -> None:
    plan, frames = segment_decode(path, cutting)
    expected = whole_decode(path)
    assert len(plan.segments) >= segments
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (_, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want)


@pytest.mark.parametrize("kind", sorted(GENERATED))
def test_generated_gops_decode_segment_by_segment_to_the_frames_of_one_decode(tmp_path, kind):
    assert_cut_into_segments_giving_one_decodes_frames(GENERATED[kind](tmp_path / f"{kind}.mp4"),
                                                       Cutting(segment_s=0.4), 3)


def test_open_gop_leading_pictures_belong_to_the_segment_before_the_cut(tmp_path):
    path = open_gop_clip(tmp_path / "open.mp4")
    info = probe_video(path)
    packets = scan_packets(path, info)
    keyframes = [i for i, p in enumerate(packets) if p.keyframe]
    leading = [i for k in keyframes[1:] for i in range(k + 1, len(packets)) if packets[i].pts < packets[k].pts
               and i < (keyframes[keyframes.index(k) + 1] if k != keyframes[-1] else len(packets))]
    assert leading, "the generated clip should have leading pictures"
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    owner = {pts: s for s in plan.segments for pts in s.pts}
    for index in leading:
        segment = owner[packets[index].pts]
        assert segment.first_packet <= index <= segment.last_packet
        cut = next(s for s in plan.segments if s.index == segment.index + 1) if segment.index + 1 < len(plan.segments) else None
        if cut is not None:
            assert packets[index].pts < min(cut.pts)


def test_every_frame_belongs_to_exactly_one_segment_in_display_order(tmp_path):
    path = vfr_clip(tmp_path / "vfr.mp4")
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.2))
    stamps = sorted(p.pts for p in scan_packets(path, info))
    owned = [pts for segment in plan.segments for pts in segment.pts]
    assert owned == stamps  # a partition, in order
    assert plan.frames == len(stamps)


def test_the_frame_cap_bounds_segments_of_a_high_frame_rate_video(tmp_path):
    path = make_clip(tmp_path / "fast.mp4", frames=60, rate=60, audio=False, options={"x264-params": "keyint=5"})
    plan = plan_segments(path, probe_video(path), Cutting(segment_s=10.0, max_frames=20))
    assert max(len(s.pts) for s in plan.segments) <= 20 and len(plan.segments) >= 3



def test_an_all_intra_recording_of_six_hours_is_cut_in_linear_time():
    # AVC-Intra / XAVC-I: a keyframe at every frame; 6 h at 24 fps is 518,400 frames in 2,160
    # segments. Each cut sliced the keyframes from there to the end: 9 s of planning, 4x per
    # doubling of the length, where it now takes a quarter of a second.
    frames = 6 * 3600 * 24
    entries = [PacketEntry(i, i, True) for i in range(frames)]
    info = SimpleNamespace(average_rate=Fraction(24), time_base=Fraction(1, 24), pix_fmt="yuv420p", interlaced=False,
                           coded_width=1920, coded_height=1080)
    start = time.perf_counter()
    segments = list(cut_packets(entries, info, Cutting(segment_s=10.0)))
    assert time.perf_counter() - start < 3.0
    assert len(segments) == 2160 and all(len(s.pts) == 240 and s.first_packet == s.index * 240 for s in segments)

@pytest.mark.parametrize("container", ["h264", "avi"])
def test_a_stream_without_presentation_times_is_one_whole_segment_decoded_as_before(tmp_path, container):
    """A raw H.264 stream has no timestamps; AVI stamps B-frame streams in decode order."""
    path = make_clip(tmp_path / f"clip.{container}", frames=10, audio=False, container=container,
                     options={"x264-params": "bframes=2"})
    info = probe_video(path)
    plan = plan_segments(path, info, ONE_SECOND)
    assert plan.whole
    frames = [f for segment, data in extract_segments(path, info, plan.segments)
              for batch in decode_segment(data, info, segment, 4) for f in batch.pts]
    assert frames == [pts for pts, _ in whole_decode(path)]


def test_a_one_frame_segment_counted_a_tick_a_frame_decodes_its_own_frame(tmp_path):
    # AVI stamps frames 0, 1, 2 …: the last segment's one frame, cut inside a GOP, matched the
    # frame decoded just before it as pre-roll (one tick off), and showed that frame's picture
    path = make_clip(tmp_path / "webcam.avi", frames=25, audio=False, container="avi",
                     options={"x264-params": "keyint=100:bframes=0:scenecut=0"})
    plan, frames = segment_decode(path)
    assert len(plan.segments[-1].pts) == 1 and plan.segments[-1].first_packet == 0
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (pts, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want), f"frame at {pts}"


def test_a_raw_mpeg1_stream_with_b_frames_decodes_and_joins_every_frame_once(tmp_path, smooth_model):
    # A VCD's video as a raw .m1v: FFmpeg's parser stamped its first GOP before it met a B-frame,
    # its P-frame as shown second; cut by those times, a segment's frames took each other's
    # stamps and the piece's encoder was handed a time going back (ArgumentError)
    path = make_clip(tmp_path / "vcd.m1v", frames=48, rate=24, audio=False, codec="mpeg1video",
                     container="mpeg1video", options={"g": "12", "bf": "2"})
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                   tmp_path / "pieces")
    assert report.frames == 48


def h263_avi(path: Path) -> Path:
    """H.263 in AVI with P-frames between its I-frames every 10 (a scene change starts no GOP)."""
    return make_clip(path, frames=48, size=(128, 96), rate=24, audio=False, codec="h263", container="avi",
                     options={"g": "10", "sc_threshold": "1000000000"})


def divx3_avi_with_rebuilt_index(path: Path) -> Path:
    """A DivX 3 (MS-MPEG-4 v3) AVI, as old anime fansubs came, whose index a repair tool rebuilt."""
    return with_every_frame_keyed(make_clip(path.with_name("divx3.avi"), frames=48, rate=24, codec="msmpeg4",
                                            container="avi", audio_codec="mp3",
                                            options={"g": "10", "sc_threshold": "1000000000"}), path)


@pytest.mark.parametrize("build", [h263_avi, divx3_avi_with_rebuilt_index], ids=["h263", "rebuilt-index"])
def test_an_avi_flagging_every_frame_a_keyframe_is_not_cut_at_its_p_frames(tmp_path, build):
    # FFmpeg's AVI reader flags every H.263 frame a keyframe, as a rebuilt index (DivFix) flags
    # every frame: cut there, a segment decoded its first frames from no reference picture
    path = build(tmp_path / "capture.avi")
    assert all(entry.keyframe for entry in scan_packets(path, probe_video(path)))
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))


def test_an_avi_with_packed_b_frames_joins_every_frame_a_frame_apart(tmp_path, smooth_model):
    # FFmpeg's decoder gives a packed B-frame the time of the placeholder after it, later than
    # the P-frame shown after it: the times went 1, 3, 2, 5, 4 …, were fixed up to 1, 3, 4, 5 …
    # and every frame after the first showed a frame late (the first two frames long)
    path = packed_b_frames_avi(tmp_path / "xvid.avi")
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    brightness = [int(frame[16:, 16:].mean()) for _, frame in frames]
    assert report.frames == 48 and brightness == sorted(brightness), "frames out of order"
    steps = np.diff([time for time, _ in frames])
    assert np.allclose(steps, 1 / 24, atol=0.001), f"steps {sorted(set(np.round(steps * 24, 2)))} frames"


def test_a_vfr_frame_decoded_as_pre_roll_just_before_a_segment_does_not_take_its_first_frame(tmp_path):
    # frames 100 ms apart but for one 10 ms before each cut inside the GOP (10 a second on average):
    # a stamp was matched within under half the owned frames' gaps, so the pre-roll frame before
    # took the first one's
    gaps = ([100] * 8 + [190, 10]) * 2 + [100] * 9
    pts = [0] + [int(t) for t in np.cumsum(gaps)]
    path = make_clip(tmp_path / "screen.mkv", frames=len(pts), rate=10, audio=False, pts=pts,
                     time_base=Fraction(1, 1000), options={"x264-params": "keyint=1000:bframes=0:scenecut=0"})
    plan, frames = segment_decode(path)
    assert [(s.first_packet, s.pts[0]) for s in plan.segments] == [(0, 0), (0, 1000), (0, 2000)]
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (pts, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want), f"frame at {pts}"


@pytest.fixture(scope="module")
def smooth_model(tmp_path_factory):
    path = save_srvgg(tmp_path_factory.mktemp("model") / "smooth-x2.pth", scale=2, weight_scale=0.05)
    return RealESRGANModel(path, device="cpu")


def render_and_join(path: Path, out: Path, model, cutting: Cutting, store_root: Path, codec: str = "libx264",
                    preset: str = "ultrafast", into: ContainerFormat | None = None):
    """``into``: the container a task gets for the codec unless told (MP4; QuickTime for ProRes)."""
    into = into or output_container(None, codec)
    info = probe_video(path)
    plan = plan_segments(path, info, cutting)
    info = planned_info(info, plan)  # as the runner has it
    target = even_size(info.width * 2, info.height * 2)
    store = PieceStore(store_root)
    for segment, data in extract_segments(path, info, plan.segments):
        job = SegmentJob(segment, info, target, EncodeOptions(codec, preset=preset, threads=1), batch_frames=4)
        items = list(render_segment(job, data, lambda batch: upscale_frames(model, batch.frames, target, Tiling())))
        assert sum(i for i in items[:-1]) == len(segment.pts) or segment.whole
        store.save(*items[-1])
    report = assemble(out, path, info, list(store.in_order(store.finished())), plan.last_frame_ticks, into,
                      plan.first_pts)
    return info, plan, report


def output_frames(path: Path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        dts = [p.dts for p in container.demux(stream) if p.dts is not None]
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        streams = [(s.type, s.codec_context.codec.canonical_name) for s in container.streams]
    return frames, dts, streams


@pytest.mark.parametrize("name", VIDEOS or [None])
def test_pieces_of_every_shared_clip_join_into_one_continuous_stream(tmp_path, smooth_model, name):
    assert_joined_continuously(shared_clip(name), tmp_path, smooth_model, ONE_SECOND)


def test_pieces_of_a_re_keyed_long_gop_join_into_one_continuous_stream(tmp_path, smooth_model):
    path = make_clip(tmp_path / "screen.mp4", frames=72, rate=24, options={
        "x264-params": "keyint=1000:min-keyint=1000:scenecut=0:bframes=2"})
    plan = assert_joined_continuously(path, tmp_path, smooth_model, Cutting(segment_s=0.25, max_preroll_frames=8))
    assert sum(s.rekeyed for s in plan.segments) >= 3


def assert_joined_continuously(path: Path, tmp_path: Path, smooth_model, cutting: Cutting):
    """Every frame once, at its own time, upscaled from the right input frame at the joins."""
    info, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, cutting, tmp_path / "pieces")
    expected = whole_decode(path)
    frames, dts, streams = output_frames(tmp_path / "out.mp4")
    assert len(frames) == len(expected) == report.frames
    assert all(b > a for a, b in zip(dts, dts[1:])), "decode times must increase across the joins"
    out_times = np.array([t for t, _ in frames]) - frames[0][0]
    in_times = (np.array([p for p, _ in expected]) - expected[0][0]) * float(info.time_base)
    assert np.abs(out_times - in_times).max() <= 0.001, "a frame's time moved by more than 1 ms"
    assert sum(t == "audio" for t, _ in streams) == len(info.audio)
    # Frames at the joins are the model's output for the right input frame.
    starts = [sorted(expected).index(next(p for p in expected if p[0] == s.pts[0])) for s in plan.segments if s.pts]
    target = frames[0][1].shape[1], frames[0][1].shape[0]
    for index in sorted({0, len(frames) - 1, *starts, *[s - 1 for s in starts if s]}):
        want = upscale_frames(smooth_model, expected[index][1][None], target, Tiling())[0]
        if want.dtype == np.uint16:
            want = (want / 257).round().astype(np.uint8)
        mse = np.mean((frames[index][1].astype(float) - want.astype(float)) ** 2)
        assert mse == 0 or 10 * np.log10(255**2 / mse) >= 35, f"frame {index}"
    return plan


def test_the_reorder_lead_of_a_piece_is_how_far_b_frames_make_decoding_run_ahead(tmp_path):
    from tmlsr_ray.pipeline.mux import reorder_lead

    b_frames = make_clip(tmp_path / "b.mp4", frames=300, size=(32, 32), audio=False,
                         options={"x264-params": "bframes=2:b-pyramid=none:b-adapt=0"})
    plain = make_clip(tmp_path / "p.mp4", frames=24, audio=False, options={"bf": "0"})
    # I0 P3 B1 B2 decoded, 0 1 2 3 shown: the B-frames come one frame (1/12 s) after their place.
    # Read again and again: a time base read after the file closed came out as any number.
    assert [reorder_lead(b_frames) for _ in range(6)] == [Fraction(1, 12)] * 6
    assert reorder_lead(plain) == 0


@pytest.mark.parametrize("codec", task_codecs_available())
def test_a_short_last_piece_without_b_frames_keeps_every_frames_duration(tmp_path, smooth_model, codec):
    """A piece with B-frames decodes two frames ahead; a 2-frame last piece has none to reorder.
    Joined as they came, the decode times jumped at the join, and the MP4 stored one frame 1.5 s
    long in a 2 fps clip: ffprobe read its average rate as 50/27."""
    path = make_clip(tmp_path / "cfr.mp4", frames=25, rate=2)
    _, plan, _ = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=10.0),
                                 tmp_path / "pieces", codec=TASK_CODECS[codec], preset="medium")
    assert [len(segment.pts) for segment in plan.segments] == [23, 2]
    with av.open(str(tmp_path / "out.mp4")) as out:
        stream = out.streams.video[0]
        dts = [p.dts for p in out.demux(stream) if p.dts is not None]
        assert stream.average_rate == 2 and stream.frames == 25
    steps = set(np.diff(dts) * stream.time_base)
    assert steps == {Fraction(1, 2)}, f"decode steps {sorted(steps)} s"


@pytest.mark.parametrize("codec,into", [(codec, into) for codec in task_codecs_available()
                                         for into in (MP4, MATROSKA, MOV) if codec not in into.refuses],
                         ids=lambda c: getattr(c, "name", c))
def test_pieces_of_every_codec_the_build_has_join_into_one_decodable_stream(tmp_path, smooth_model, codec, into):
    path = vfr_clip(tmp_path / "vfr.mp4")
    out = tmp_path / f"out.{into.name}"
    info, plan, report = render_and_join(path, out, smooth_model, Cutting(segment_s=0.3),
                                         tmp_path / "pieces", codec=TASK_CODECS[codec], into=into)
    assert len(plan.segments) >= 4
    frames, dts, streams = output_frames(out)
    assert len(frames) == report.frames == len(whole_decode(path))
    assert streams[0] == ("video", codec) and all(b > a for a, b in zip(dts, dts[1:]))  # Matroska stores none
    want = [float(p * info.time_base) for p, _ in whole_decode(path)]
    assert np.abs(np.array([t for t, _ in frames]) - np.array(want)).max() <= 0.001


def test_a_vfr_clip_with_audio_keeps_every_timestamp_and_its_audio(tmp_path, smooth_model):
    path = vfr_clip(tmp_path / "vfr.mp4")
    info, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.3),
                                         tmp_path / "pieces")
    assert len(plan.segments) >= 4
    frames, _, streams = output_frames(tmp_path / "out.mp4")
    want = [float(p * info.time_base) for p, _ in whole_decode(path)]
    assert np.abs(np.array([t for t, _ in frames]) - np.array(want)).max() <= 0.001
    assert ("audio", "aac") in streams and report.audio_copied


VFR_GAPS = [1, 3, 2, 5, 1, 1, 4, 2] * 3 + [30]  # in 1/60 s; the last is the last frame's own duration


def vfr_tail_clip(path: Path, codec: str = "libx264", bframes: int = 0) -> Path:
    """VFR whose last frame shows for half a second after steps of 1/60 s to 5/60 s."""
    stamps = [int(s) for s in np.cumsum([0] + VFR_GAPS[:-1])]
    options = ({"x264-params": f"keyint=10:bframes={bframes}"} if codec == "libx264"
               else {"bf": str(bframes), "g": "10"})
    return make_clip(path, frames=len(stamps), rate=30, audio=False, pts=stamps, time_base=Fraction(1, 60),
                     durations=VFR_GAPS, codec=codec, options=options)


@pytest.mark.parametrize("bframes,preset", [(0, "ultrafast"), (2, "medium")])  # medium: B-frames in the pieces
def test_the_last_frame_of_a_vfr_clip_shows_as_long_as_in_the_source(tmp_path, smooth_model, bframes, preset):
    """Not 1 / the average rate (0.04 s here)."""
    path = vfr_tail_clip(tmp_path / "vfr.mp4", bframes=bframes)
    render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.3), tmp_path / "pieces",
                    preset=preset)
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(sum(VFR_GAPS) / 60, abs=0.002)


def test_a_video_that_states_no_start_of_its_own_ends_at_its_last_frame_not_where_the_audio_does(
        tmp_path, smooth_model):
    """MPEG-2 with B-frames in NUT: its first packet states no decode time, so FFmpeg gives the
    stream the file's start and duration, which the audio (3 s against the video's 2 s) sets; the
    last frame was shown until the audio ended (2.98 s of video, 24 frames of 1/12 s)."""
    path = make_clip(tmp_path / "mpeg2.nut", frames=24, container="nut", codec="mpeg2video",
                     options={"bf": "2", "g": "6"}, audio_codec="mp2", audio_s=3.0)
    render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5), tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as container:
        stream = container.streams.video[0]
        assert float(stream.duration * stream.time_base) == pytest.approx(2.0, abs=0.002)


@pytest.mark.parametrize("codec", task_codecs_available())
@pytest.mark.parametrize("segment_s", [10.0, 0.5])
def test_a_vfr_clip_keeps_its_duration_in_the_sample_table_whatever_the_encoder_reorders(
        tmp_path, smooth_model, codec, segment_s):
    """The MP4 stores each frame's duration as the step to the next decode time. The encoder
    decodes B-frames further ahead where frames come close together (20 ms steps) than where they
    come apart (67 ms), so its own decode times made the table 39 ms short of the clip."""
    steps = [40, 33, 50, 41, 20, 67, 33, 33] * 5
    path = make_clip(tmp_path / "vfr.mp4", frames=40, pts=[sum(steps[:i]) for i in range(40)],
                     time_base=Fraction(1, 1000), durations=steps[:-1] + [60], options={"bf": "0"})
    render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=segment_s), tmp_path / "pieces",
                    codec=TASK_CODECS[codec], preset="medium")
    lengths = []
    for name in (path, tmp_path / "out.mp4"):
        with av.open(str(name)) as media:
            stream = media.streams.video[0]
            lengths.append(float(stream.duration * stream.time_base))
    assert lengths[1] == pytest.approx(lengths[0], abs=0.001) and lengths[0] == pytest.approx(1.612)


@pytest.mark.parametrize("codec,suffix", [("libx264", "mp4"), ("mpeg4", "mkv"), ("libx264", "mkv")])
def test_the_last_frames_duration_is_read_where_the_container_keeps_it_even_after_b_frames(tmp_path, codec,
                                                                                          suffix):
    """An MP4's packet durations are steps in decode time (the last shown frame's is only its own
    where it is also decoded last); Matroska's are how long each frame shows."""
    path = vfr_tail_clip(tmp_path / f"vfr.{suffix}", codec, bframes=2)
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.3))
    assert float(plan.last_frame_ticks * info.time_base) == pytest.approx(0.5, abs=0.002)


@pytest.mark.parametrize("codec,suffix", [("libx264", "mp4"), ("mpeg2video", "ts")])
def test_an_interlaced_clip_comes_out_deinterlaced_from_every_segment(tmp_path, smooth_model, codec, suffix):
    path = interlaced_clip(tmp_path / f"interlaced.{suffix}", codec=codec)
    with av.open(str(path)) as container:
        woven = [combing(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)]
    info, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.25),
                                         tmp_path / "pieces")
    assert info.interlaced and len(plan.segments) >= 3 and max(woven) > 10
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    want = np.array([float(p * info.time_base) for p, _ in whole_decode(path)])
    got = np.array([t for t, _ in frames])  # the output starts at 0 (a TS's clock does not)
    assert np.abs((got - got[0]) - (want - want[0])).max() <= 0.001
    halved = [cv2.resize(f, (info.width, info.height), interpolation=cv2.INTER_AREA) for _, f in frames]
    assert max(combing(f) for f in halved) < 3


def test_an_interlaced_broadcast_whose_picture_grows_is_deinterlaced_at_each_size(tmp_path, smooth_model):
    """A broadcast's SD ident before its HD programme: the deinterlacer's graph took the size the
    stream's header states, and every segment holding a frame of the larger size failed ('video
    could not be decoded (Operation not permitted)')."""
    path = growing_broadcast(tmp_path / "broadcast.ts", [((96, 64), 12), ((192, 128), 24)])
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                      tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(frames) == 36 and frames[-1][1].shape[:2] == (256, 384)
    halved = [cv2.resize(f, (192, 128), interpolation=cv2.INTER_AREA) for _, f in frames[12:]]
    assert plan.picture_size == (192, 128) and max(combing(f) for f in halved) < 3


@pytest.mark.parametrize("codec", ["libx264", "mpeg2video"])
def test_an_interlaced_clip_decodes_segment_by_segment_to_the_frames_of_one_decode(tmp_path, codec):
    # each segment decodes the frames shown just before and after it as the deinterlacer's context:
    # its first and last frames differed from a plain decode's (by up to 255 levels on the bar)
    path = interlaced_clip(tmp_path / "interlaced.mp4", codec=codec, frames=36)
    plan, frames = segment_decode(path, Cutting(segment_s=0.25))
    assert len(plan.segments) >= 5
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (pts, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want), f"frame at {pts}"


def test_a_stream_that_turns_interlaced_is_deinterlaced_from_its_first_interlaced_frame(tmp_path):
    # the probe looks at the first frame only: a broadcast that opens on a progressive ident had
    # every later frame upscaled with its two fields woven together
    path = progressive_then_interlaced(tmp_path / "broadcast.ts")
    assert not probe_video(path).interlaced
    with av.open(str(path)) as container:
        flagged = [f.interlaced_frame for f in container.decode(video=0)]
    assert not any(flagged[:12]) and all(flagged[12:])
    woven = [combing(frame) for _, frame in whole_decode(path)]
    assert max(woven[12:]) < 3


def test_a_progressive_clip_is_not_taken_for_interlaced(tmp_path):
    assert not probe_video(make_clip(tmp_path / "progressive.mp4")).interlaced


def test_a_piece_store_keeps_whole_pieces_only(tmp_path):
    from tmlsr_ray.piece import Piece

    store = PieceStore(tmp_path / "p")
    store.save(b"mp4 bytes", Piece(3, 1200, 25, "libx264"))
    (tmp_path / "p" / "00004.mp4").write_bytes(b"half a piece, no record")
    (tmp_path / "p" / "00005.json").write_text("{not json")
    assert store.finished() == {3: Piece(3, 1200, 25, "libx264")}
    store.remove()
    assert not (tmp_path / "p").exists()


def test_an_mp4_trimmed_by_an_edit_list_gives_exactly_the_frames_it_shows(tmp_path, smooth_model):
    """A lossless trim keeps the GOP's frames before the cut as references, hidden by an edit list."""
    source = make_clip(tmp_path / "source.mp4", frames=24, audio=False, options={"bframes": "3", "g": "6"})
    path = trim_by_edit_list(source, tmp_path / "trimmed.mp4", frames=3)
    shown = frame_count(path)
    assert shown == 21 and len(scan_packets(path, probe_video(path))) == 24
    info, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                         tmp_path / "pieces")
    assert len(plan.segments) > 1 and plan.frames == shown
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(frames) == shown
    assert np.allclose([t for t, _ in frames], [pts * float(info.time_base) for pts, _ in whole_decode(path)])


def test_a_transport_stream_unwrapped_below_zero_keeps_every_frame_and_its_audio(tmp_path, smooth_model):
    """A recording across the 33-bit clock wrap: FFmpeg gives its first second negative times."""
    path = make_clip(tmp_path / "wrap.ts", frames=24, container="mpegts", time_base=Fraction(1, 90000),
                     start_s=((1 << 33) - 90000) / 90000, options={"bframes": "3", "g": "6"})
    assert whole_decode(path)[0][0] < 0
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                      tmp_path / "pieces")
    frames, _, streams = output_frames(tmp_path / "out.mp4")
    assert len(plan.segments) > 1 and report.frames == len(frames) == 24
    # Moved to start at 0 (the audio's encoder delay first, as FFmpeg's remux does), spacing kept.
    assert 0 <= frames[0][0] < 0.1 and abs(frames[-1][0] - frames[0][0] - 23 / 12) < 0.01
    assert ("audio", "aac") in streams


@pytest.mark.parametrize("suffix", ["ts", "mkv"])
def test_a_recording_that_starts_inside_a_gop_is_still_cut_into_segments(tmp_path, smooth_model, suffix):
    """A TV recording or a stream dump starts anywhere: its first packets need a keyframe it does
    not hold. The whole recording was one segment (one replica, one piece in memory, nothing to
    resume from); the frames before the first keyframe, which do not decode, are left out and the
    rest is cut as usual."""
    source = make_clip(tmp_path / f"source.{suffix}", frames=72, rate=24, container="mpegts" if suffix == "ts" else None,
                       options={"x264-params": "keyint=12:bframes=2"})
    path = cut_mid_gop(source, tmp_path / f"recording.{suffix}", packets=5)
    info = probe_video(path)
    assert not scan_packets(path, info)[0].keyframe
    plan, frames = segment_decode(path, Cutting(segment_s=0.5))
    expected = whole_decode(path)
    assert len(plan.segments) >= 4 and plan.frames == len(expected)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (_, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5), tmp_path / "pieces")
    out, _, streams = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(out) == len(expected) and ("audio", "aac") in streams
    want = (np.array([p for p, _ in expected]) - expected[0][0]) * float(info.time_base)
    assert np.abs(np.array([t for t, _ in out]) - out[0][0] - want).max() <= 0.001


@pytest.mark.parametrize("codec, options", [
    ("libx264", {"x264-params": "open-gop=1:keyint=12:min-keyint=12:bframes=3:b-pyramid=normal:scenecut=0"}),
    ("libx264", {"x264-params": "keyint=12:min-keyint=12:bframes=3:scenecut=0"}),
    ("libx265", {"x265-params": "keyint=12:min-keyint=12:open-gop=1:bframes=3:scenecut=0:log-level=error"}),
])
def test_a_matroska_recording_whose_first_keyframe_states_no_decode_time_gives_every_frame_segment_by_segment(
        tmp_path, codec, options):
    """Matroska stores presentation times only, and FFmpeg states no decode time for a stream's
    first packets (the reorder delay it learns them from is still filling). A camera dump cut where
    its first keyframe is one of them failed ('Invalid argument', 0 of 48 frames): the segment file's
    muxer guessed that keyframe's decode time after the next packet's."""
    source = make_clip(tmp_path / "source.mkv", frames=60, rate=24, audio=False, codec=codec, options=options)
    dated_late = None
    for packets in range(1, 12):
        path = cut_mid_gop(source, tmp_path / f"recording-{packets}.mkv", packets=packets)
        entries = scan_packets(path, probe_video(path))
        first_key = next(e for e in entries if e.keyframe)
        if first_key.dts is None and entries.index(first_key) > 0:
            dated_late = path
            break
    assert dated_late is not None, "no cut left the first keyframe without a decode time"
    plan, frames = segment_decode(dated_late, Cutting(segment_s=0.5))
    expected = whole_decode(dated_late)
    assert len(plan.segments) >= 3 and len(expected) >= 45
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (_, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want)


def test_a_first_keyframe_whose_damage_wiped_its_flag_is_planned_as_the_videos_first_frames(tmp_path):
    """It looked like a recording started inside a GOP, and its frames were left out of the plan:
    37 of 48, with no word."""
    path = first_keyframe_wiped(tmp_path)
    info = probe_video(path, repeat_damaged=True)
    assert not scan_packets(path, info)[0].keyframe
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    assert plan.frames == 48 and plan.segments[0].first_packet == 0 and len(plan.segments[0].pts) == 11



@pytest.mark.parametrize("format, suffix", [("avi", "avi"), ("matroska", "mkv")])
@pytest.mark.parametrize("cutting", [Cutting(max_frames=12), Cutting(max_frames=5, max_preroll_frames=1)],
                         ids=["at-keyframes", "re-keyed"])
def test_a_keyframes_parameter_sets_stored_as_a_packet_of_their_own_go_with_the_segment_it_starts(
        tmp_path, format, suffix, cutting):
    """A splice (CAVLC to CABAC) whose keyframes' parameter sets an AVI (or a Matroska file) stores
    as a packet of their own: the index counted that packet as a frame, and a cut at a keyframe
    left its parameter sets at the end of the segment before. The AVI failed '2 frames from about
    0.04 s are missing', the Matroska file at 0.00 s. A damaged packet would fail the decode too."""
    source = spliced_encodes(tmp_path / "capture.ts", [(24, "keyint=12:cabac=0"), (24, "keyint=12:cabac=1")])
    path = with_parameter_sets_apart(source, tmp_path / f"capture.{suffix}", format)
    plan, frames = segment_decode(path, cutting)
    assert plan.frames == 48 and len(plan.segments) >= 4
    expected = whole_decode(source)
    assert len(frames) == 48 and all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))

def test_two_transport_streams_joined_end_to_end_keep_every_frame_and_all_their_audio(tmp_path, smooth_model):
    """``cat part1.ts part2.ts``, as DVRs and camcorders split recordings: each part's clock starts
    at the same place, so the audio's times go back at the join. The video's frames were restamped
    to run on, but the audio was copied as it was, and the MP4 muxer refused it (Invalid argument)
    after every segment had been upscaled."""
    part = make_clip(tmp_path / "part.ts", frames=24, rate=12, container="mpegts", options={"g": "6"})
    path = tmp_path / "joined.ts"
    path.write_bytes(part.read_bytes() * 2)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(frames) == 48
    assert np.allclose(np.diff([t for t, _ in frames]), 1 / 12, atol=0.001)
    with av.open(str(tmp_path / "out.mp4")) as out:
        audio = out.streams.audio[0]
        stamps = [p.dts for p in out.demux(audio) if p.dts is not None]
    assert all(b > a for a, b in zip(stamps, stamps[1:]))
    assert _decoded_audio(tmp_path / "out.mp4")[1] >= 2 * _decoded_audio(part)[1] - 1024


@pytest.mark.parametrize("starts", [(0, 0), (0, 600), (100, 0)], ids=["same-start", "jump-forward", "jump-back"])
def test_recordings_whose_clock_jumps_come_out_as_one_video_cut_into_segments(tmp_path, smooth_model, starts):
    """A jump forward froze one frame for ten minutes; a jump back of over a minute, read as the
    clock wrapping, made a step the MP4 could not hold (Invalid argument, after the upscaling);
    repeated times made the whole file one segment."""
    path = continuous_source(joined_recordings(tmp_path / "joined.ts", starts), tmp_path / "continuous.ts")
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(frames) == 48 and len(plan.segments) > 1
    steps = np.diff([t for t, _ in frames])
    assert np.allclose(np.delete(steps, 23), 1 / 12, atol=0.001) and 1 / 12 - 0.001 <= steps[23] <= 1 / 12 + 0.25
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.duration / av.time_base) == pytest.approx(4.1, abs=0.2)


def test_a_fragmented_mp4_whose_fragment_times_restart_comes_out_with_every_frame_and_its_audio(tmp_path,
                                                                                                 smooth_model):
    """CMAF segments joined across a discontinuity, each part's tfdt from 0: FFmpeg flagged the
    first fragment after the restart discard, and the output held 84 of the 96 frames, unsaid."""
    path = continuous_source(joined_fragments(tmp_path / "joined.mp4", (0, 0)), tmp_path / "continuous.mp4")
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, streams = output_frames(tmp_path / "out.mp4")
    times = [t for t, _ in frames]
    assert report.frames == len(frames) == 96 and ("audio", "aac") in streams
    assert all(b > a for a, b in zip(times, times[1:]))
    assert _decoded_audio(tmp_path / "out.mp4")[1] >= 2 * _decoded_audio(tmp_path / "joined-part0.mp4")[1] - 1024


def test_a_broadcast_with_a_bit_error_in_two_pes_times_lasts_as_long_as_its_frames(tmp_path, smooth_model):
    """Bit 31 of one frame's PTS and one sound's flipped (6.6 hours late): the output said it
    lasted 47,722 s, its video frozen for all but 2 s of it."""
    path = continuous_source(broadcast_with_bit_errors(tmp_path / "flipped.ts"), tmp_path / "continuous.ts")
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, streams = output_frames(tmp_path / "out.mp4")
    assert len(frames) == 48 and ("audio", "aac") in streams
    assert np.allclose(np.diff([t for t, _ in frames]), 1 / 24, atol=0.001)
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.duration / av.time_base) == pytest.approx(2.1, abs=0.1)


def test_recordings_joined_with_a_step_back_too_small_for_a_jump_keep_each_sides_frames_in_order(tmp_path, smooth_model):
    """HLS segments across a discontinuity that overlap by 0.09 s, under the 0.1 s step back
    closed as a jump: cut by their times, the two sides' frames interleaved, and the segment at the
    join failed ("the video's frame times go back") after the segments before it were upscaled."""
    path = joined_recordings(tmp_path / "joined.ts", (10.0, 11.91), frames=48, rate=24, time_base=Fraction(1, 90000))
    assert continuous_source(path, tmp_path / "continuous.ts") == path
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, dts, streams = output_frames(tmp_path / "out.mp4")
    assert report.frames == len(frames) == 96 and ("audio", "aac") in streams
    assert all(b > a for a, b in zip(dts, dts[1:]))
    brightness = [float(pixels[16:, 16:].mean()) for _, pixels in frames]  # each side a ramp up from dark
    assert all(b > a for a, b in zip(brightness[:48], brightness[1:48])) and brightness[48] < brightness[47]
    assert all(b > a for a, b in zip(brightness[48:], brightness[49:]))


def test_browser_recordings_joined_end_to_end_keep_each_frames_own_step_and_their_sound(tmp_path, smooth_model):
    """Two MediaRecorder WebMs joined (``cat``): Matroska's jumps are not closed by a copy, and
    after the clock went back each frame came one fixed step (33 ms) after the last, the second
    part's own steps (17 to 50 ms) lost and its video falling behind its sound (24 ms here; 0.56 s
    by the end of a 2.5 s part whose frames average 42 ms)."""
    part = media_recorder_webm(tmp_path / "part.webm", frames=60)
    path = tmp_path / "joined.webm"
    path.write_bytes(part.read_bytes() * 2)
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert plan.whole and report.frames == len(frames) == 120
    own = np.diff([pts for pts, _ in whole_decode(part)]) / 1000
    steps = np.diff([t for t, _ in frames])
    assert np.abs(steps[:59] - own).max() < 0.002 and np.abs(steps[60:] - own).max() < 0.002
    with av.open(str(tmp_path / "out.mp4")) as out:
        video, audio = out.streams.video[0], out.streams.audio[0]
        assert abs(float(video.duration * video.time_base) - float(audio.duration * audio.time_base)) < 0.01


@pytest.mark.parametrize("container,suffix,start_s", [("mpegts", "ts", 3600.0), ("matroska", "mkv", 1.0)])
def test_a_video_whose_clock_starts_late_plays_from_zero_with_its_audio(tmp_path, smooth_model, container, suffix,
                                                                          start_s):
    """A TS's clock starts anywhere: one an hour in came out with an hour of empty edit in front."""
    path = make_clip(tmp_path / f"late.{suffix}", frames=24, container=container, start_s=start_s,
                     time_base=Fraction(1, 90000) if container == "mpegts" else None, options={"g": "6"})
    render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5), tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    lead = {}
    for name in (path, tmp_path / "out.mp4"):
        with av.open(str(name)) as media:
            audio = media.streams.audio[0]
            first_sound = float(next(p for p in media.demux(audio) if p.pts is not None).pts * audio.time_base)
        with av.open(str(name)) as media:
            lead[name] = float(next(media.decode(video=0)).time) - first_sound
            duration = media.duration / av.time_base
    assert duration < 2.5  # 2 s of clip, not start_s more
    # The earliest stream (the audio's encoder delay here) starts at 0, as FFmpeg's remux makes it.
    assert 0 <= frames[0][0] < 0.1 and abs(frames[-1][0] - frames[0][0] - 23 / 12) < 0.01
    assert abs(lead[tmp_path / "out.mp4"] - lead[path]) < 0.002, "the audio moved with the video"


def test_chapters_keep_their_titles_and_their_place_in_the_picture(tmp_path, smooth_model):
    """A film's chapters come along, moved with the streams (this Matroska clip's clock starts at 1 s)."""
    marks = [(1.0, 1.5, "Opening"), (1.5, 3.0, "Ende – Schluss")]
    path = make_clip(tmp_path / "film.mkv", frames=24, container="matroska", start_s=1.0, options={"g": "6"},
                     chapters=marks)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as media:
        chapters = media.chapters()
    with av.open(str(tmp_path / "out.mp4")) as media:
        shift = 1.0 - float(next(media.decode(video=0)).time)  # the first frame was at 1 s
    assert report.chapters == 2 and [c["metadata"]["title"] for c in chapters] == [m[2] for m in marks]
    times = [(float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"])) for c in chapters]
    assert np.allclose(times, [(start - shift, end - shift) for start, end, _ in marks], atol=0.002)


def test_a_chapter_before_the_output_starts_is_left_out_and_one_across_it_starts_at_zero():
    from tmlsr_ray.pipeline.mux import shifted_chapters

    ms = Fraction(1, 1000)
    chapters = [{"id": 7, "start": start, "end": end, "time_base": ms, "metadata": {"title": title}}
                for start, end, title in [(0, 900, "gone"), (900, 1500, "across"), (1500, 4000, "after")]]
    moved = shifted_chapters(chapters, Fraction(-1))
    assert [(c["id"], c["start"], c["end"], c["metadata"]["title"]) for c in moved] == [
        (1, 0, 500, "across"), (2, 500, 3000, "after")]


def test_mp3_is_copied_and_from_avi_too(tmp_path, smooth_model):
    """The decoder's name (mp3float) hid that MP4 holds MP3, and the AAC it became from an AVI
    (whose MP3 time base counts 1152-sample frames) failed the mux."""
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("this FFmpeg has no MP3 encoder")
    path = make_clip(tmp_path / "divx.avi", frames=24, container="avi", audio_codec="libmp3lame")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert [a["codec"] for a in report.audio_copied] == ["mp3"] and not report.audio_reencoded
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert out.streams.audio[0].codec_context.codec.canonical_name == "mp3"
        assert sum(f.samples for f in out.decode(audio=0)) >= 16000 * 2 - 1152


def test_audio_reencoded_from_a_coarse_time_base_keeps_every_sample_in_order(tmp_path):
    """AVI's MP3 time base counts whole 1152-sample frames: 1024-sample AAC frames stamped in it
    came out two alike, and the muxer refused the second."""
    if "libmp3lame" not in av.codecs_available:
        pytest.skip("this FFmpeg has no MP3 encoder")
    from tmlsr_ray.pipeline.transcode import AacTranscoder

    path = tmp_path / "divx.avi"
    with av.open(str(path), "w") as avi:  # 44.1 kHz: 1152 samples an MP3 frame, more than AAC's 1024
        sound = avi.add_stream("libmp3lame", rate=44100)
        sound.layout = "stereo"
        for start in range(0, 88200, 1152):
            frame = av.AudioFrame.from_ndarray(np.zeros((2, 1152), np.float32), format="fltp", layout="stereo")
            frame.sample_rate, frame.pts = 44100, start
            avi.mux(sound.encode(frame))
        avi.mux(sound.encode(None))
    with av.open(str(path)) as source, av.open(str(tmp_path / "aac.mp4"), "w") as out:
        transcoder = AacTranscoder(source.streams.audio[0], out)
        for packet in source.demux(source.streams.audio[0]):
            if packet.dts is not None:
                transcoder.feed(packet)
        transcoder.flush()
    with av.open(str(tmp_path / "aac.mp4")) as out:
        stamps = [p.pts for p in out.demux(audio=0) if p.pts is not None]
        assert all(b > a for a, b in zip(stamps, stamps[1:]))
    with av.open(str(tmp_path / "aac.mp4")) as out:
        assert abs(sum(f.samples for f in out.decode(audio=0)) - 88200) <= 2 * 1152


def _sounding(path: Path):
    """The stretches (start, end in seconds from the first frame) that the first audio stream
    decodes to, a new stretch wherever a frame starts later than the last one ended (by > 10 ms)."""
    with av.open(str(path)) as container:
        first_frame = float(next(container.decode(video=0)).time)
    with av.open(str(path)) as container:
        stretches = []
        for frame in container.decode(audio=0):
            start, end = frame.time - first_frame, frame.time - first_frame + frame.samples / frame.sample_rate
            if stretches and start - stretches[-1][1] <= 0.01:
                stretches[-1][1] = end
            else:
                stretches.append([start, end])
    return stretches


def test_a_dropout_in_audio_reencoded_to_aac_stays_and_the_sound_after_it_keeps_in_sync(tmp_path, smooth_model):
    """A DVB recording's MP2 audio (re-encoded for MP4) that drops out for two seconds: the AAC was
    stamped on a sample clock that ran on through the dropout, so every sound after it came two
    seconds early, out of sync for the rest of the recording (copied audio keeps its gap)."""
    path = recording_with_audio_gap(tmp_path / "dropout.ts", seconds=6, gap=(2, 4), audio_codec="mp2")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert [a["codec"] for a in report.audio_reencoded] == ["mp2"]
    source, output = _sounding(path), _sounding(tmp_path / "out.mp4")
    assert len(source) == 2, f"the source should drop out once: {source}"
    assert len(output) == 2, f"the dropout was closed: {output}"
    frame = 1152 / 16000  # an MP2 frame, more than an AAC frame
    assert np.allclose(output, source, atol=frame), f"{output} != {source}"


@pytest.mark.parametrize("wrong_by", [3, -3])
def test_one_audio_packet_with_a_wrong_time_leaves_audio_reencoded_to_aac_in_sync(tmp_path, smooth_model, wrong_by):
    """A bit error in one PES header of a DVB recording's MP2 (a time 3 s off, the packets around
    it right) is no dropout: the clock moved on to it, and the packets after it (run on from it,
    as their times then went back) all came 3 s late, to the end of the recording."""
    path = recording_with_audio_gap(tmp_path / "glitch.ts", seconds=6, gap=(0, 0), audio_codec="mp2")
    clean = _sounding(path)
    with_audio_time_wrong(path, packet=30, seconds=wrong_by)
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    output = _sounding(tmp_path / "out.mp4")
    assert len(clean) == 1 and len(output) == 1, f"one stretch of sound, as the recording has: {output}"
    assert np.allclose(output, clean, atol=1152 / 16000), f"{output} != {clean}"


@pytest.mark.parametrize("damage", ["tfdt", "idx1"])
def test_audio_whose_damaged_times_start_hours_after_the_video_is_dropped_saying_so(tmp_path, smooth_model, damage):
    """Every tfdt of a fragmented MP4 2^32 ticks off (81,091 s between its 12288 Hz video and 16 kHz
    audio), or an AVI index whose first chunk says 2 GB (its MP3 134,217 s after the picture): the
    output lasted until the audio, a frame frozen for a day; nothing says where the sound belongs."""
    if damage == "tfdt":
        path = with_every_tfdt_huge(make_clip(tmp_path / "frag.mp4", frames=48, rate=24, options={"g": "12"},
                                              container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}))
    else:
        path = with_first_index_size_huge(make_clip(tmp_path / "clip.avi", frames=48, rate=24, codec="mpeg4",
                                                    audio_codec="libmp3lame", options={"g": "12"}))
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.duration / av.time_base) == pytest.approx(2.0, abs=0.1) and not out.streams.audio
    assert [a["reason"] for a in report.audio_dropped] == [AUDIO_DROPPED["apart"]] and report.frames == 48


@pytest.mark.parametrize("early_s", [3 * 3600, 13], ids=["3-hours", "13-s"])
def test_audio_whose_damaged_times_end_long_before_the_video_starts_is_dropped_saying_so(tmp_path, smooth_model,
                                                                                        early_s):
    """A broadcast capture (its clock at 20,000 s) whose audio PES all say a time 3 hours early:
    the output began with the sound, and its picture came 3 hours later. Sound that ends over 10 s
    before the first frame has nothing placing it beside the picture, as sound starting over 10 s
    after the last frame has none."""
    clip = make_clip(tmp_path / "capture.ts", frames=48, rate=24, container="mpegts", options={"g": "12"},
                     start_s=20000)
    path = continuous_source(with_audio_times_early(clip, early_s), tmp_path / "mended.ts")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.duration / av.time_base) == pytest.approx(2.0, abs=0.1) and not out.streams.audio
    assert [a["reason"] for a in report.audio_dropped] == [AUDIO_DROPPED["apart"]] and report.frames == 48


@pytest.mark.parametrize("early_s", [9, 120], ids=["9-s-before", "120-s-before-and-on-past-it"])
def test_audio_that_starts_before_the_video_and_reaches_it_is_kept_where_it_plays(tmp_path, smooth_model, early_s):
    """A camera that started recording after the microphone: the sound that starts before the
    first frame stays, the output starting with it (9 s before, its end 7 s before the picture's
    first frame, within the 10 s; 120 s of sound that runs on past the first frame)."""
    clip = make_clip(tmp_path / "capture.ts", frames=48, rate=24, container="mpegts", options={"g": "12"},
                     start_s=20000, audio_s=early_s + 2 if early_s > 10 else None)
    path = continuous_source(with_audio_times_early(clip, early_s), tmp_path / "mended.ts")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert [a["index"] for a in report.audio_copied] == [1] and not report.audio_dropped
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.duration / av.time_base) == pytest.approx(early_s + 2, abs=0.2)


@pytest.mark.parametrize("name, kind", [("h264.mp4", {"options": {"g": "12", "bf": "2"}}),
                                        ("h264-no-b.mp4", {"options": {"g": "12", "bf": "0"}}),
                                        ("hevc.mp4", {"codec": "libx265",
                                                      "options": {"x265-params": "log-level=error"}}),
                                        ("h264.mov", {"options": {"g": "12", "bf": "2"}}),
                                        ("first-zero.mp4", {"options": {"g": "12", "bf": "2"}, "entries": 1,
                                                            "pts": [0, *range(2, 49)], "time_base": Fraction(1, 24)})],
                         ids=lambda value: value if isinstance(value, str) else "")
def test_frames_a_sample_table_times_alike_all_come_out_in_order_a_frame_step_apart(tmp_path, smooth_model, name,
                                                                                    kind):
    """Every stts delta 0: the frames share a decode time and their presentation times collide,
    and the edit list, applied to them, hid 19 of a B-frame H.264 clip's 48 frames (28 of HEVC's);
    without B-frames all 48 came out at 71/6 frames/s, the rate FFmpeg guessed, not 24. The
    decoder shows them in their order, and the track states its length (2 s); where only the first
    frame's duration is 0 (it showed 2 frame steps), the others' step: the length the track states
    is short of that frame's, and 48 frames over it would come 2% fast."""
    entries = kind.pop("entries", None)
    clean = make_clip(tmp_path / f"clean-{name}", frames=48, rate=24, **kind)
    damaged = with_sample_durations_zero(make_clip(tmp_path / name, frames=48, rate=24, **kind), entries)
    _, plan, report = render_and_join(damaged, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    render_and_join(clean, tmp_path / "clean.mp4", smooth_model, ONE_SECOND, tmp_path / "clean-pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    expected, _, _ = output_frames(tmp_path / "clean.mp4")
    assert report.frames == 48 and len(frames) == 48
    assert [t for t, _ in frames] == pytest.approx([n / 24 for n in range(48)], abs=0.002)
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert float(out.streams.video[0].duration * out.streams.video[0].time_base) == pytest.approx(2.0, abs=0.01)
    assert np.allclose([f.mean() for _, f in frames], [f.mean() for _, f in expected], atol=1.0)


@pytest.mark.parametrize("steps, lost", [([0] * 47, True), ([0] + [512] * 46, True), ([512] * 20 + [0] + [512] * 26, True),
                                          ([512, 1024, 512, 1536] * 5 + [0] + [512, 2048] * 13, False)],
                         ids=["every one 0", "the first 0", "one 0 among steady steps", "one 0 in a variable rate"])
def test_frames_times_are_taken_as_lost_where_they_repeat_often_or_among_steady_steps(steps, lost):
    """A lone duration of 0 from some other muxer in a phone's variable-rate clip: stamped a step
    apart, its slow stretches would run fast, out of sync with its sound."""
    from tmlsr_ray.pipeline.segments import frame_times_lost
    info = probed_info()
    times = [sum(steps[:i]) for i in range(len(steps) + 1)]
    assert frame_times_lost(info, [PacketEntry(t, t, i == 0) for i, t in enumerate(times)]) is lost


def test_frames_a_sample_table_times_alike_in_a_track_stating_no_length_are_refused_saying_so(tmp_path):
    """Every stts delta 0 and the media header's duration 0: nothing tells the frames' step."""
    clip = with_sample_durations_zero(make_clip(tmp_path / "clip.mp4", frames=48, rate=24, audio=False,
                                                options={"g": "12", "bf": "2"}))
    path = with_box_field(clip, tmp_path / "no-length.mp4", b"mdhd", 20, 0)
    with pytest.raises(InputError, match="states no length to place them by: its frame times are damaged"):
        plan_segments(path, probe_video(path), ONE_SECOND)


def test_what_the_source_says_about_the_video_goes_along(tmp_path, smooth_model):
    """A phone's creation time and location, a title and a comment; not the source's own encoder."""
    said = {"title": "Beach", "creation_time": "2026-07-01T10:00:00.000000Z", "location": "+37.7749-122.4194/",
            "comment": "first swim"}
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        out.metadata.update({**said, "encoder": "PhoneCam 1.0"})
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for i in range(12):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as out:
        kept = dict(out.metadata)
    assert {key: kept.get(key) for key in said} == said and kept.get("encoder") != "PhoneCam 1.0"


def test_the_default_audio_track_stays_the_default(tmp_path, smooth_model):
    from tests.helpers import _audio_stream, _write_tone

    with av.open(str(tmp_path / "marked.mkv"), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sounds = [_audio_stream(out, "aac", language) for language in ("eng", "deu")]
        sounds[0].disposition, sounds[1].disposition = av.stream.Disposition(0), av.stream.Disposition.default
        for i in range(12):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        for sound in sounds:
            _write_tone(out, sound, 1.0, 0)
    render_and_join(tmp_path / "marked.mkv", tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as out:
        tracks = [(s.language, bool(s.disposition & av.stream.Disposition.default)) for s in out.streams.audio]
    assert tracks == [("eng", False), ("deu", True)]


@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
@pytest.mark.parametrize("into", [MP4, MATROSKA], ids=lambda c: c.name)
def test_audio_tracks_keep_their_titles(tmp_path, smooth_model, suffix, into):
    """A release's tracks say what they are ("Director's commentary"), which is what a player's
    track menu shows: they came out untitled, two English tracks told apart by nothing. FFmpeg
    reads an MP4 track's title as ``name`` and a Matroska one's as ``title``."""
    from tests.helpers import _audio_stream, _write_tone

    titles = ["English 5.1", "Director's commentary", "Français"]
    with av.open(str(tmp_path / f"titled.{suffix}"), "w") as out:
        video = out.add_stream("libx264", rate=12)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        sounds = [_audio_stream(out, "aac", language) for language in ("eng", "eng", "fra")]
        for sound, title in zip(sounds, titles):
            sound.metadata["title"] = title
        for i in range(12):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), i * 20, np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        for sound in sounds:
            _write_tone(out, sound, 1.0, 0)
    render_and_join(tmp_path / f"titled.{suffix}", tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND,
                    tmp_path / "pieces", into=into)
    with av.open(str(tmp_path / f"out.{into.name}")) as out:
        kept = [(s.language, s.metadata.get("title") or s.metadata.get("name")) for s in out.streams.audio]
    assert kept == list(zip(["eng", "eng", "fra"], titles))


@pytest.mark.parametrize("pix_fmt", ["gbrp", "yuv420p"])
def test_ut_video_keeps_the_fourcc_its_decoder_reads_its_layout_from_in_every_segment(tmp_path, pix_fmt):
    """Ut Video's layout (ULRG, ULH0, …) is its FourCC: segment files with NUT's own tag could not
    be decoded ("Invalid data found when processing input")."""
    if "utvideo" not in av.codecs_available:
        pytest.skip("this FFmpeg has no utvideo encoder")
    path = make_clip(tmp_path / "clip.avi", frames=12, codec="utvideo", pix_fmt=pix_fmt, audio=False,
                     container="avi")
    plan, frames = segment_decode(path, Cutting(segment_s=0.3))
    expected = whole_decode(path)
    assert len(plan.segments) >= 3 and [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (_, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want)


def test_an_apng_no_segment_file_holds_is_upscaled_as_one_segment(tmp_path, smooth_model):
    """Neither NUT nor QuickTime holds APNG; the decoder does."""
    path = make_clip(tmp_path / "clip.apng", frames=6, codec="apng", pix_fmt="rgb24", audio=False, container="apng")
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.2),
                                      tmp_path / "pieces")
    assert plan.whole and report.frames == frame_count(tmp_path / "out.mp4") == 6


STUDIO_MASTERS = {  # codec, pix_fmt, encoder options, size, container
    "prores_422hq": ("prores_ks", "yuv422p10le", {"profile": "3"}, (64, 48), "mov"),
    "prores_4444_alpha": ("prores_ks", "yuva444p10le", {"profile": "4"}, (64, 48), "mov"),
    "dnxhr_hq": ("dnxhd", "yuv422p", {"profile": "dnxhr_hq"}, (256, 120), "mov"),
    "dnxhr_sq_mxf": ("dnxhd", "yuv422p", {"profile": "dnxhr_sq"}, (256, 120), "mxf"),
    "qtrle_argb": ("qtrle", "argb", {}, (64, 48), "mov"),
    "prores_in_matroska": ("prores_ks", "yuv422p10le", {}, (64, 48), "matroska"),
}


@pytest.mark.parametrize("name", sorted(STUDIO_MASTERS))
def test_a_studio_master_nut_cannot_hold_is_cut_into_quicktime_segments_that_decode_to_one_decodes_frames(
        tmp_path, name):
    """ProRes, DNxHR and QuickTime Animation (a studio's masters) were one segment, upscaled by one
    replica whatever the film's length: NUT has no tag for them. Their segment files are QuickTime,
    whose track start is kept to the sub-tick (in its 1/1000 s default, frames came back up to a
    millisecond early and were lost)."""
    codec, pix_fmt, options, size, container = STUDIO_MASTERS[name]
    if codec not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    path = make_clip(tmp_path / f"{name}.{container}", frames=30, size=size, rate=Fraction(30000, 1001),
                     codec=codec, pix_fmt=pix_fmt, options=options, audio=False, container=container)
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


@pytest.mark.parametrize("container,pix_fmt,bottom_up", [("avi", "bgr24", False), ("avi", "bgr24", True),
                                                         ("avi", "bgra", False), ("mov", "rgb24", False),
                                                         ("mov", "argb", False)])
def test_uncompressed_rgb_decodes_segment_by_segment_to_the_frames_of_one_decode(tmp_path, container, pix_fmt,
                                                                               bottom_up):
    """Uncompressed RGB (a capture card's or VirtualDub's AVI, QuickTime's raw) states its layout
    by bit depth alone, which NUT does not keep: its segment files' frames decoded as rgb555le,
    every pixel wrong (114 levels off on average)."""
    path = make_clip(tmp_path / f"raw.{container}", frames=24, rate=24, codec="rawvideo", pix_fmt=pix_fmt, audio=False)
    if bottom_up:
        path = bottom_up_avi(path, tmp_path / "bottom-up.avi")
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


@pytest.mark.parametrize("pix_fmt,tag", [("yuyv422", "yuv2"), ("rgba64be", "b64a")])
def test_quicktime_raw_video_read_by_its_own_tag_decodes_segment_by_segment_to_one_decodes_frames(tmp_path, pix_fmt,
                                                                                                  tag):
    """QuickTime's raw decoder reads more than the layout from some FourCCs: 'yuv2' (Component
    Y'CbCr) has signed chroma, 'b64a' (an After Effects export at trillions of colours) is ARGB. In
    NUT, under the FourCC naming the bare layout, every segment's pixels came out wrong."""
    path = make_clip(tmp_path / "raw.mov", frames=24, rate=24, codec="rawvideo", pix_fmt=pix_fmt, codec_tag=tag,
                     audio=False)
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


def test_raw_bayer_video_is_decoded_as_a_whole(tmp_path):
    """Raw Bayer's FourCC (0xBA 'R' 'G' 8) is no text PyAV reads or writes: no segment file could
    state it, and the task failed (its NUT segments did not decode, then the tag's check raised)."""
    path = bayer_clip(tmp_path / "sensor.nut")
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.25))
    expected = whole_decode(path)
    assert plan.whole and [pts for pts, _ in frames] == [pts for pts, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))


@pytest.mark.parametrize("codec,container", [("rawvideo", "avi"), ("smc", "mov"), ("rawvideo", "mov")])
def test_palette_video_decodes_segment_by_segment_to_the_frames_of_one_decode(tmp_path, codec, container):
    """AVI and QuickTime send a pal8 codec's palette with its first packet only: copied into NUT
    (or QuickTime, dropping the packet's side data) every segment decoded with an empty palette,
    all black; a QuickTime Graphics clip of one segment too."""
    # FFmpeg's smc encoder's keyframes after the first do not decode alone: one GOP
    path = palette_clip(tmp_path / f"{codec}.{container}", codec, options={"g": "1000"} if codec == "smc" else None)
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 1 if codec == "smc" else 4)


def test_palette_video_quicktime_cannot_hold_is_decoded_as_a_whole(tmp_path):
    """Microsoft Video 1's 8-bit mode, whose palette AVI sends with the first packet only: QuickTime
    does not hold the codec, and in NUT, which keeps no palette, every segment decoded wrong (black
    where the source's palette was not in force)."""
    path = microsoft_video_1_8bit_avi(tmp_path / "cram.avi")
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.25))
    expected = whole_decode(path)
    assert plan.whole and [pts for pts, _ in frames] == [pts for pts, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))


def test_palette_video_whose_palette_changes_is_decoded_as_a_whole(tmp_path):
    # a segment file states one palette: the frames after a change inside a segment took the old one
    path = palette_clip(tmp_path / "fade.avi", "rawvideo", new_palette_at=9)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.25))
    expected = whole_decode(path)
    assert plan.whole and [pts for pts, _ in frames] == [pts for pts, _ in expected]
    assert all(np.array_equal(got, want) for (_, got), (_, want) in zip(frames, expected))


@pytest.mark.parametrize("gop", [6, 1000])
def test_flash_screen_video_is_cut_into_flv_segments_that_decode_to_one_decodes_frames(tmp_path, gop):
    """Flash Screen Video 2 (a Flash-era screen recording or tutorial) was one segment, upscaled
    on one replica whatever its length: neither NUT nor QuickTime holds it, FLV does. One long
    GOP is re-keyed."""
    path = make_clip(tmp_path / "tutorial.flv", frames=36, rate=24, codec="flashsv2", pix_fmt="bgr24",
                     options={"g": str(gop)}, audio=False)
    cutting = Cutting(segment_s=0.25, max_preroll_frames=8)
    assert_cut_into_segments_giving_one_decodes_frames(path, cutting, 4)
    assert any(s.rekeyed for s in plan_segments(path, probe_video(path), cutting).segments) == (gop > 8)


@pytest.mark.parametrize("container", ["mkv", "mp4", "mov"])
def test_colour_only_the_container_states_is_kept_by_every_segment(tmp_path, container):
    """A BT.709 full-range capture whose H.264 states no colour, its container does: NUT keeps
    no colour tags, and each segment's frames were read as BT.601 limited range."""
    source = make_clip(tmp_path / "source.mp4", frames=24, rate=24, audio=False, options={"x264-params": "keyint=6"})
    path = with_container_colour(source, tmp_path / f"capture.{container}", color_range=2, colorspace=1,
                                 color_primaries=1, color_trc=1)
    assert probe_video(path).color["colorspace"] == 1
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_hdr_only_the_container_states_is_read_as_hdr_by_every_segment(tmp_path, container):
    """PQ HEVC whose bitstream states no colour, its MP4 colr box or Matroska Colour element does
    (a remux tagging an untagged encode): HEVC's decoder drops the container's colour, and the
    video was read as SDR, as one decode and segment by segment."""
    source = make_clip(tmp_path / "source.mp4", frames=24, rate=24, audio=False, codec="libx265",
                       pix_fmt="yuv420p10le", options={"x265-params": "keyint=6:log-level=0"})
    pq = {"color_primaries": 9, "color_trc": 16, "colorspace": 9, "color_range": 1}
    path = with_container_colour(source, tmp_path / f"hdr.{container}", **pq)
    assert probe_video(path).color == pq
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)
    # converted by BT.2020's matrix, not the BT.601 of an untagged stream
    assert not any(np.array_equal(a, b) for (_, a), (_, b) in zip(whole_decode(path), whole_decode(source)))


def test_intra_only_mpeg2_in_mxf_is_cut_into_segments_that_decode_to_one_decodes_frames(tmp_path):
    """IMX / D-10 and I-frame-only broadcast MPEG-2: the decoder allows B-frames (the sequence
    header does not say low delay) and the MXF index's times rise in decode order, which was read
    as an AVI's decode times: the master was one segment, on one replica. Keyframes only reorder
    nothing."""
    path = make_clip(tmp_path / "imx.mxf", frames=24, rate=25, codec="mpeg2video", pix_fmt="yuv422p",
                     options={"g": "1"}, audio=False, container="mxf")
    assert probe_video(path).reorders_frames
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


def test_b_frames_in_an_mxf_whose_index_states_no_reordering_stay_one_whole_segment(tmp_path):
    """FFmpeg writes H.264 into MXF with no temporal offsets: its times are decode times, which
    cut the stream into segments of the wrong frames."""
    path = make_clip(tmp_path / "long_gop.mxf", frames=24, rate=25, pix_fmt="yuv422p10le", audio=False,
                     container="mxf", options={"x264-params": "keyint=6:bframes=2"})
    plan, frames = segment_decode(path, Cutting(segment_s=0.25))
    assert plan.whole and [pts for pts, _ in frames] == [pts for pts, _ in whole_decode(path)]


def test_a_studio_master_whose_frames_state_no_duration_keeps_each_segments_last_frame(tmp_path):
    """A Matroska track with no default duration (written without a frame rate) gives packets of
    duration 0; QuickTime ends a segment file's edit list at its latest frame's time plus duration,
    so each segment's last frame lay outside it and was lost."""
    source = make_clip(tmp_path / "master.mov", frames=24, rate=25, codec="prores_ks", pix_fmt="yuv422p10le",
                       audio=False)
    path = without_frame_durations(source, tmp_path / "master.mkv")
    assert_cut_into_segments_giving_one_decodes_frames(path, Cutting(segment_s=0.25), 4)


@pytest.mark.parametrize("codec", ["libx264", "prores_ks"])
def test_a_quicktime_output_keeps_timecode_and_subtitles_and_lists_a_cover_it_cannot_hold(tmp_path, smooth_model,
                                                                                          codec):
    timecoded = timecoded_clip(tmp_path / "tc.mov", "10:00:00:00", "mov")
    _, _, report = render_and_join(timecoded, tmp_path / "tc-out.mov", smooth_model, Cutting(segment_s=0.5),
                                   tmp_path / "tc-pieces", codec=codec, into=MOV)
    with av.open(str(tmp_path / "tc-out.mov")) as out:
        assert out.streams.video[0].metadata.get("timecode") == "10:00:00:00"
    source = with_telemetry_and_cover(with_mov_text(make_clip(tmp_path / "clip.mp4", frames=24), tmp_path / "subs.mp4"),
                                      tmp_path / "cover.mp4")
    _, _, report = render_and_join(source, tmp_path / "out.mov", smooth_model, Cutting(segment_s=0.5),
                                   tmp_path / "pieces", codec=codec, into=MOV)
    _, _, streams = output_frames(tmp_path / "out.mov")
    assert ("subtitle", "mov_text") in streams and report.subtitles_copied and not report.attachments
    assert report.attachments_dropped == [{"name": "cover.jpg", "mimetype": "image/jpeg",
                                           "reason": "MOV cannot hold attachments"}]


def test_a_high_bitrate_master_is_cut_into_segments_of_at_most_the_bytes_a_segment_may_hold(tmp_path):
    """10 s of 4K ProRes is over a gigabyte: a segment is bounded by its packets' bytes too."""
    path = make_clip(tmp_path / "master.mov", frames=24, codec="prores_ks", pix_fmt="yuv422p10le", audio=False)
    sizes = [e.size for e in scan_packets(path, probe_video(path))]
    cutting = Cutting(segment_s=10.0, max_bytes=4 * max(sizes))
    plan = plan_segments(path, probe_video(path), cutting)
    assert len(plan.segments) >= 24 // 4
    for segment in plan.segments:
        assert sum(sizes[segment.first_packet:segment.last_packet + 1]) <= cutting.max_bytes
    assert len(plan_segments(path, probe_video(path), replace(cutting, max_bytes=0)).segments) == 1


def test_a_master_whose_frames_vary_in_bytes_is_cut_into_segments_within_the_bytes_a_segment_may_hold(tmp_path):
    """Bounded at the stream's average, a master that opens on black (a tenth of the bytes a frame)
    made its busy part's segments twice what a segment may hold."""
    path = dark_then_busy_master(tmp_path / "master.mov")
    sizes = [e.size for e in scan_packets(path, probe_video(path))]
    assert max(sizes) > 8 * min(sizes)
    cutting = Cutting(segment_s=10.0, max_bytes=4 * max(sizes))
    plan = plan_segments(path, probe_video(path), cutting)
    for segment in plan.segments:
        assert sum(sizes[segment.first_packet:segment.last_packet + 1]) <= cutting.max_bytes
    assert len(plan.segments) <= 8  # the black leader's are long


@pytest.mark.parametrize("codec,into,streams", [
    ("libx264", MP4, [("video", "h264"), ("audio", "aac")]),
    ("prores_ks", MOV, [("video", "prores"), ("audio", "pcm_s24le")])])
def test_a_prores_master_is_upscaled_segment_by_segment_with_its_sound(tmp_path, smooth_model, codec, into, streams):
    """Into MP4 as H.264 with its 24-bit PCM as AAC, or back as ProRes 422 HQ in QuickTime with
    its PCM as it is, as an editor takes it."""
    path = make_clip(tmp_path / "master.mov", frames=24, codec="prores_ks", pix_fmt="yuv422p10le",
                     audio_codec="pcm_s24le")
    out = tmp_path / f"out.{into.name}"
    info, plan, report = render_and_join(path, out, smooth_model, Cutting(segment_s=0.5), tmp_path / "pieces",
                                         codec=codec, into=into)
    assert len(plan.segments) == 4 and not plan.whole
    frames, _, found = output_frames(out)
    assert report.frames == len(frames) == 24 and found == streams
    assert np.allclose([t for t, _ in frames], [pts * float(info.time_base) for pts, _ in whole_decode(path)])
    with av.open(str(out)) as container:
        video = container.streams.video[0].codec_context
        assert (container.format.name.startswith("mov"), video.pix_fmt) == (
            True, "yuv422p10le" if codec == "prores_ks" else "yuv420p")
        assert codec != "prores_ks" or video.profile == "HQ"


def test_audio_keeps_its_languages_and_pcm_without_a_channel_layout_becomes_aac(tmp_path, smooth_model):
    """Cameras write PCM into AVI and Matroska with no channel layout, which AAC's encoder refuses."""
    path = make_clip(tmp_path / "pcm.mkv", audio_codec="pcm_s16le", languages=("eng", "fra"))
    with av.open(str(path)) as container:
        assert container.streams.audio[0].codec_context.layout.name.endswith("channels")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as container:
        audio = [(s.codec_context.name, s.language, s.codec_context.layout.name) for s in container.streams.audio]
    assert audio == [("aac", "eng", "mono"), ("aac", "fra", "mono")]
    assert [a["language"] for a in report.audio_reencoded] == ["eng", "fra"]


@pytest.mark.parametrize("layout,channels,sounding", [("16 channels", 16, 16), ("7.1.4", 8, None), ("5.1.2", 8, None),
                                                      ("9 channels", 16, 9), ("15 channels", 16, 15),
                                                      ("24 channels", 16, 16)])
def test_broadcast_pcm_of_many_channels_becomes_aac_of_as_many_as_it_holds(tmp_path, smooth_model, layout, channels,
                                                                           sounding):
    """16 discrete channels of a broadcast master (as MXF gives them: no layout) were mixed into
    one stereo pair, every stem and language on top of each other; AAC holds 16. A layout with
    height channels (7.1.4, 5.1.2), which AAC's encoder refuses, failed the task: it is mixed down
    to 7.1 by its channels' names. Unnamed channels over 8 keep their places in AAC's 16, the rest
    silent, or the first 16 of more: 16 were mixed by a layout FFmpeg guessed (5 silent, 2 at
    twice the level), and other counts failed the task."""
    path = make_clip(tmp_path / "master.mov", frames=12, rate=25, codec="prores_ks", pix_fmt="yuv422p10le",
                     audio_codec="pcm_s24le", audio_layout=layout, levels_by_channel=True)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as output:
        assert [(s.codec_context.name, s.codec_context.channels) for s in output.streams.audio] == [("aac", channels)]
    if sounding:  # source channel k of n at an RMS of 0.14 (k + 1) / n: each in its place
        source_channels = int(layout.split()[0])
        expected = 0.1414 * np.arange(1, sounding + 1) / source_channels
        levels = _channel_levels(tmp_path / "out.mp4")
        assert np.allclose(levels[:sounding], expected, rtol=0.06) and (np.diff(levels[:sounding]) > 0).all()
        assert (levels[sounding:] < 1e-3).all()
    assert [a["codec"] for a in report.audio_reencoded] == ["pcm_s24le"]


def _channel_levels(path: Path) -> np.ndarray:
    """Each channel's RMS level of the first audio stream (packed samples: PyAV's numpy bridge
    reaches only 8 planes)."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout=stream.codec_context.layout)
        samples = [out.to_ndarray().reshape(out.samples, -1)
                   for frame in container.decode(stream) for out in resampler.resample(frame)]
    return np.sqrt((np.concatenate(samples) ** 2).mean(axis=0))


def test_the_keyframes_sampled_for_the_picture_size_are_few_and_spread_over_the_stream():
    from tmlsr_ray.pipeline.segments import KeyframeSample

    sample = KeyframeSample(limit=8)
    for number in range(100):
        sample.offer(bytes([number]))
    assert [packet[0] for packet in sample.packets] == [0, 16, 32, 48, 64, 80, 96]


def test_a_plan_is_refused_where_a_keyframe_grows_the_picture_over_the_pixel_limit(tmp_path):
    path = growing_recording(tmp_path / "call.webm", [((64, 48), 4), ((640, 480), 4)])
    with pytest.raises(InputError, match="keyframe whose picture is over the limit of 100,000 pixels"):
        plan_segments(path, probe_video(path), Cutting(), max_pixels=100_000)
    assert plan_segments(path, probe_video(path), Cutting(), max_pixels=640 * 480).picture_size == (640, 480)


def test_a_grown_picture_s_re_keyed_segments_hold_its_frames_within_the_byte_budget(tmp_path):
    """A WebRTC recording's long GOPs are re-keyed; the frames a re-keyed segment holds were
    counted at the header's small size, so the grown part's segments held its larger frames over
    rekey_max_bytes (15 frames of 128x96, 1.5 times the budget of 10)."""
    path = growing_recording(tmp_path / "call.mkv", [((64, 48), 12), ((128, 96), 36)], codec="libx264",
                             container="matroska", options={"x264-params": "keyint=200:scenecut=0:bframes=0:repeat-headers=1"})
    info = probe_video(path)
    budget = 10 * raw_frame_bytes(replace(info, coded_width=128, coded_height=96))
    plan = plan_segments(path, info, Cutting(segment_s=0.5, max_preroll_frames=2, rekey_max_bytes=budget))
    rekeyed = [len(s.pts) for s in plan.segments if s.rekeyed]
    assert rekeyed and max(rekeyed) == 10 and plan.frames == 48


@pytest.mark.parametrize("codec", ["libvpx", "libvpx-vp9"])
def test_a_recording_whose_picture_grows_is_upscaled_at_its_largest_size(tmp_path, smooth_model, codec):
    """A WebRTC call recorded by a browser starts small and grows as the bandwidth allows, and its
    WebM's header states the first size: every frame was scaled down to that (64x48 out of 128x96
    for three quarters of the call) before the model, and came out at twice it."""
    path = growing_recording(tmp_path / "call.webm", [((64, 48), 12), ((128, 96), 36)], codec=codec)
    assert (probe_video(path).width, probe_video(path).height) == (64, 48)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5), tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as output:
        video = output.streams.video[0]
        assert (video.codec_context.width, video.codec_context.height) == (256, 192)
        frames = [frame.to_ndarray(format="rgb24") for frame in output.decode(video)]
    assert len(frames) == report.frames == 48
    # the grown part keeps its detail: the ramp's noisy corner is not smoothed to the small size's
    with av.open(str(path)) as source:
        big = next(itertools.islice(source.decode(video=0), 30, None)).to_ndarray(format="rgb24").astype(float)
    out = cv2.resize(frames[30], (128, 96), interpolation=cv2.INTER_AREA).astype(float)
    small = cv2.resize(cv2.resize(big.astype(np.uint8), (64, 48), interpolation=cv2.INTER_AREA), (128, 96),
                       interpolation=cv2.INTER_LINEAR).astype(float)
    assert np.abs(out - big).mean() < np.abs(small - big).mean()


def test_a_matroska_output_keeps_pcm_styled_ass_srt_fonts_and_chapters_as_they_are(tmp_path, smooth_model):
    """A fansub release: MP4 would re-encode the PCM, flatten the ASS to mov_text and lose the
    font it is drawn with; Matroska holds them all unchanged."""
    path = anime_matroska(tmp_path / "episode.mkv")
    _, _, report = render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces",
                                   into=MATROSKA)
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert out.format.name.startswith("matroska") and out.streams.video[0].codec_context.width == 128
        kinds = [(s.type, s.codec_context.codec.canonical_name if s.codec_context else None, s.language)
                 for s in out.streams]
        assert kinds == [("video", "h264", None), ("audio", "pcm_s16le", "jpn"), ("subtitle", "ass", "eng"),
                         ("subtitle", "subrip", "spa"), ("attachment", None, None), ("video", "mjpeg", None)]
        font = out.streams.attachments[0]
        assert (font.name, font.mimetype, bytes(font.data)) == ("TestFont.ttf", "application/x-truetype-font", FONT_BYTES)
        cover = out.streams.video[1]  # FFmpeg reads an image attachment as an attached picture
        assert cover.metadata["filename"] == "cover.jpg" and bytes(next(out.demux(cover))) == COVER_JPEG
        assert [c["metadata"]["title"] for c in out.chapters()] == ["Opening", "Part A"]
    with av.open(str(tmp_path / "out.mkv")) as out:
        video = out.streams.video[0]  # the track says its rate and is the one to play
        assert video.average_rate == 12 and video.disposition & av.stream.Disposition.default
    for kind, number in (("audio", 0), ("subtitle", 0), ("subtitle", 1)):  # byte for byte, at their times
        assert _packets(tmp_path / "out.mkv", kind, number) == _packets(path, kind, number)
    assert frame_count(tmp_path / "out.mkv") == report.frames == 12
    assert report.container == "mkv" and [a["name"] for a in report.attachments] == ["TestFont.ttf", "cover.jpg"]
    assert not report.audio_reencoded and not report.subtitles_dropped


@pytest.mark.parametrize("codec", sorted(MATROSKA_AUDIO_COPY))
def test_matroska_copies_each_audio_codec_it_is_said_to_hold(tmp_path, smooth_model, codec):
    try:
        path = make_clip(tmp_path / "tone.mkv", container="matroska", audio_codec=codec)
    except (av.error.FFmpegError, ValueError) as exc:  # no encoder here to make the source with
        pytest.skip(f"this FFmpeg cannot encode {codec}: {exc}")
    _, _, report = render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces",
                                   into=MATROSKA)
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert out.streams.audio[0].codec_context.codec.canonical_name == codec
    assert _packets(tmp_path / "out.mkv", "audio") == _packets(path, "audio")
    assert [a["codec"] for a in report.audio_copied] == [codec] and not report.audio_reencoded


def test_an_mp4_output_of_the_same_release_names_what_it_could_not_keep(tmp_path, smooth_model):
    path = anime_matroska(tmp_path / "episode.mkv")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as out:
        assert [s.codec_context.name for s in out.streams.subtitles] == ["mov_text", "mov_text"]
    assert [a["to"] for a in report.audio_reencoded] == ["aac"]
    assert report.attachments_dropped == [
        {"name": "TestFont.ttf", "mimetype": "application/x-truetype-font", "reason": "MP4 cannot hold attachments"}]
    assert report.attachments == [{"name": "cover.jpg", "mimetype": "image/jpeg", "bytes": len(COVER_JPEG)}]


def test_overlapping_ass_events_all_show_in_mp4_each_for_its_whole_time(tmp_path, smooth_model):
    """A mov_text sample shows until the next one: the sign and the line starting with it were
    cut to nothing by the MP4 muxer. What shows together goes in one cue, one line under the other."""
    path = anime_matroska(tmp_path / "episode.mkv")
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert _mov_text_cues(tmp_path / "out.mp4") == [
        (0.1, 0.4, "A styled sign\nThe same moment as the sign"), (0.4, 0.5, "A styled sign"),
        (0.5, 0.6, "A styled sign\nSecond line"), (0.6, 0.9, "Second line")]
    assert _mov_text_cues(tmp_path / "out.mp4", 1) == [(0.1, 0.5, "Plain words"), (0.6, 0.9, "More words")]


def test_ass_vector_drawings_do_not_show_as_coordinates_in_mp4(tmp_path, smooth_model):
    """A sign's box drawn with ``{\\p1}`` has no mov_text form: its coordinates showed as words."""
    path = with_ass(make_clip(tmp_path / "clip.mp4", audio=False), tmp_path / "signs.mkv", [
        r"0,0:00:00.10,0:00:00.40,Sign,,0,0,0,,{\p1}m 0 0 l 100 0 100 100 0 100{\p0}",
        r"0,0:00:00.50,0:00:00.90,Sign,,0,0,0,,{\p1}m 0 0 l 10 0 10 10{\p0}Closed, {\i1}today{\i0}"])
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert _mov_text_cues(tmp_path / "out.mp4") == [(0.5, 0.9, "Closed, today")]


def _mov_text_cues(path: Path, number: int = 0):
    """(start s, end s, text) of each cue of a mov_text track with text (a sample is its length, then UTF-8)."""
    with av.open(str(path)) as container:
        stream = container.streams.subtitles[number]
        samples = [(p.pts * p.time_base, (p.pts + p.duration) * p.time_base, bytes(p)) for p in container.demux(stream)
                   if p.pts is not None]
    return [(round(float(start), 3), round(float(end), 3), data[2:2 + int.from_bytes(data[:2], "big")].decode())
            for start, end, data in samples if len(data) > 2 and data[:2] != b"\x00\x00"]


def test_audio_a_lossless_cut_hid_stays_hidden_in_matroska(tmp_path, smooth_model):
    """MP4 hides what the cut's edit list hid with an edit list of its own; Matroska has none, so
    the hidden audio is left out (but for one packet, its decoder's pre-roll)."""
    path = make_clip(tmp_path / "cut.mp4", frames=48, rate=24, start_s=-0.5,
                     options={"x264-params": "keyint=12:bframes=2"})
    for into in (MP4, MATROSKA):
        render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND, tmp_path / into.name, into=into)
    shown = _decoded_audio(tmp_path / "out.mp4")
    kept = _decoded_audio(tmp_path / "out.mkv")
    # Beyond MP4's: the pre-roll packet and the part before 0 of the packet that straddles it (the
    # cut hid 0.56 s, 9 packets, before this)
    assert shown[0] == 0 and -2 * 1024 / 16000 <= kept[0] <= 0
    assert shown[1] <= kept[1] <= shown[1] + 2 * 1024


def test_a_23_976_clip_in_matroska_says_its_rate(tmp_path, smooth_model):
    path = make_clip(tmp_path / "film.mp4", frames=12, rate=Fraction(24000, 1001))
    render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces", into=MATROSKA)
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert out.streams.video[0].average_rate == Fraction(24000, 1001)


@pytest.mark.parametrize("container", ["mpegts", "mpeg2video"])
def test_a_soft_telecine_film_states_and_encodes_its_frames_rate_at_their_own_times(tmp_path, smooth_model, container):
    """A DVD film coded at 23.976 with fields repeated for 29.97: FFmpeg states 29.97 (25 for a raw
    stream), which the Matroska track, x264 and metadata.fps said, though 4 frames show in 5 display frames."""
    path = soft_telecine_clip(tmp_path / f"film.{container}", container=container)
    info, plan, _ = render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces",
                                    into=MATROSKA)
    assert plan.average_rate == info.average_rate == Fraction(24000, 1001)
    with av.open(str(tmp_path / "out.mkv")) as out:
        assert out.streams.video[0].average_rate == Fraction(24000, 1001)
        shown = sorted(float(f.time) for f in out.decode(video=0))
    source = [pts * float(info.time_base) for pts, _ in whole_decode(path)]
    assert np.abs(np.array(shown) - shown[0] - (np.array(source) - source[0])).max() <= 0.001  # times unchanged


def test_a_stated_rate_gives_way_only_to_frames_clearly_at_another():
    def steps(ticks):
        return [PacketEntry(sum(ticks[:i]), None, i == 0) for i in range(len(ticks) + 1)]

    millisecond, ntsc_clock = Fraction(1, 1000), Fraction(1, 90000)
    film_in_ms = steps([42, 42, 41, 42, 42, 41] * 8)  # about 23.976 in Matroska's milliseconds
    assert frames_rate(film_in_ms, millisecond, (Fraction(24000, 1001), None)) == Fraction(24000, 1001)
    pulldown = steps([4505, 3003, 4504, 3003] * 9)  # 3:2 pulldown: 3 fields, then 2, at 29.97 frames a second
    assert frames_rate(pulldown, ntsc_clock, (Fraction(31), Fraction(30000, 1001))) == Fraction(24000, 1001)
    uneven = steps([900, 2000, 1300] * 10)  # variable, near no simple fraction of what was stated
    assert frames_rate(uneven, millisecond, (Fraction(25), None)) == Fraction(30, 42)  # 30 steps in 42 s
    dropout = steps([40] * 100 + [10040] + [40] * 100)  # a recording that lost its signal for 10 s
    assert frames_rate(dropout, millisecond, (Fraction(25), None)) == Fraction(25)  # not 11.1


def _decoded_audio(path: Path):
    """(where the first decoded audio frame starts in seconds, how many samples decode)."""
    with av.open(str(path)) as container:
        frames = list(container.decode(container.streams.audio[0]))
    return float(frames[0].pts * frames[0].time_base), sum(f.samples for f in frames)


def test_mov_text_subtitles_become_srt_in_matroska(tmp_path, smooth_model):
    source = make_clip(tmp_path / "phone.mp4", frames=12)
    path = tmp_path / "with-subs.mp4"
    with_mov_text(source, path)
    _, _, report = render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces",
                                   into=MATROSKA)
    with av.open(str(tmp_path / "out.mkv")) as out:
        subtitles = out.streams.subtitles[0]
        assert subtitles.codec_context.codec.canonical_name == "subrip"
        texts = [bytes(p).decode() for p in out.demux(subtitles) if p.pts is not None]
    assert texts == ["Plain words", "More words"]
    assert report.subtitles_copied[0]["to"] == "subrip"


def _packets(path: Path, kind: str, number: int = 0):
    """(time, bytes) of each packet of the file's ``number``-th stream of ``kind``."""
    with av.open(str(path)) as container:
        stream = [s for s in container.streams if s.type == kind][number]
        return [(round(float(p.pts * p.time_base), 3), bytes(p)) for p in container.demux(stream) if p.pts is not None]


def test_alac_from_matroska_keeps_its_last_packet_in_mp4(tmp_path, smooth_model):
    """Matroska states no duration for ALAC's packets, and MP4 ends a track where its last packet
    ends: the last one (up to 4096 samples, 93 ms at 44.1 kHz) was cut off."""
    path = make_clip(tmp_path / "lossless.mkv", container="matroska", audio_codec="alac")
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert _decoded_audio(tmp_path / "out.mp4") == _decoded_audio(path) == (0.0, 16000)


def test_flac_from_nut_keeps_its_last_packet_in_mp4(tmp_path, smooth_model):
    """NUT states no duration for FLAC's packets and ends the track with an empty packet (the
    encoder's STREAMINFO update): that one released the last real packet with no duration, which
    MP4's edit list then left out (the last 1,024 samples of 16,000, 64 ms)."""
    path = make_clip(tmp_path / "lossless.nut", container="nut", audio_codec="flac")
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert _decoded_audio(tmp_path / "out.mp4") == (0.0, 16000)


@pytest.mark.parametrize("into", [MP4, MOV], ids=lambda c: c.name)
def test_mp3_below_16_khz_is_re_encoded_for_a_quicktime_family_file(tmp_path, smooth_model, into):
    """FFmpeg's MP4 and QuickTime muxer refuse MP3 under 16 kHz (MPEG-2.5: an old FLV's 11 kHz
    sound, a voice recorder's 8 kHz) as not standard, which failed the task at the join."""
    path = make_clip(tmp_path / "old.flv", frames=24, container="flv", audio_codec="libmp3lame", audio_rate=11025)
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    assert [a["to"] for a in report.audio_reencoded] == ["aac"] and not report.audio_copied
    with av.open(str(out)) as container:
        sound = container.streams.audio[0]
        assert sound.sample_rate == 11025 and sound.duration * sound.time_base == Fraction(_decoded_audio(path)[1], 11025)


def test_an_flv_that_adds_a_stream_as_it_is_read_is_upscaled_whole(tmp_path, smooth_model):
    """An FLV audio tag naming another codec (a damaged tag; a recorder that switched) makes FFmpeg
    add a stream mid-file; PyAV raised IndexError at the end of every read of the file, and the task
    failed as 'process failed: IndexError: list index out of range'."""
    source = make_clip(tmp_path / "in.flv", frames=48, rate=24, codec="flv", audio_codec="libmp3lame",
                       audio_rate=22050, options={"g": "12"})
    path = with_last_audio_tag_recoded(source, tmp_path / "recoded.flv")
    _, plan, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                      tmp_path / "pieces")
    assert plan.frames == report.frames == len(whole_decode(path)) == 48
    assert len(report.audio_copied) + len(report.audio_reencoded) == 1


def test_sound_at_a_rate_aac_does_not_take_is_encoded_at_the_next_it_does(tmp_path, smooth_model):
    """FLV's lowest rate, 5,512 Hz (an old Flash recording's PCM or Nellymoser voice): AAC's encoder
    refused to open at it, and the join failed as 'process failed: ArgumentError: Invalid argument'."""
    path = make_clip(tmp_path / "old.flv", frames=24, container="flv", audio_codec="pcm_u8", audio_rate=5512)
    out = tmp_path / "out.mp4"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert [a["to"] for a in report.audio_reencoded] == ["aac"]
    with av.open(str(out)) as container:
        sound = container.streams.audio[0]
        assert sound.sample_rate == 7350
        assert abs(float(sound.duration * sound.time_base) - 2.0) < 0.05


def test_a_damaged_audio_packet_is_left_out_and_counted_and_the_video_completes(tmp_path, smooth_model):
    """A bit error in one AAC frame of a TS recording: MP4's muxer refused the packet, and the task
    failed at the join ('process failed: InvalidDataError: [Errno 1094995529] Invalid data found
    when processing input: .../output.mp4') after every segment's model work."""
    path = with_adts_header_broken(make_clip(tmp_path / "in.ts", frames=24, rate=24), tmp_path / "bad.ts")
    out = tmp_path / "out.mp4"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert report.frames == 24
    assert [a.get("damaged_packets_dropped") for a in report.audio_copied] == [1]
    with av.open(str(out)) as container:
        assert sum(frame.samples for frame in container.decode(audio=0)) > 0


def test_sound_that_changes_layout_on_the_way_is_re_encoded_whole(tmp_path, smooth_model):
    """A broadcast's mono programme then a stereo one, on the same MP2 stream (a damaged MP2 header
    does the same): PyAV's resampler refused the first stereo frame ('Frame does not match
    AudioResampler setup') and the task failed at the join as 'process failed: ValueError'."""
    path = audio_layout_switch_ts(tmp_path / "switch.ts")
    out = tmp_path / "out.mp4"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert report.frames == 48 and [a["to"] for a in report.audio_reencoded] == ["aac"]
    with av.open(str(out)) as container:
        sound = container.streams.audio[0]
        samples = sum(frame.samples for frame in container.decode(sound))
    assert abs(samples / sound.sample_rate - 2.0) < 0.1


def test_a_file_cut_off_inside_a_frame_keeps_every_whole_frame_before_the_cut(tmp_path):
    """Cut inside its 5th packet (a P-frame two B-frames lean on, which the cut took too): the
    frame-threaded decoder dropped the cut packet's error with the 2 frames it held, and the video
    came out 2 frames long of the 4 whole ones, with no word. The cut frame is left out."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"},
                       container_options={"movflags": "faststart"})
    path = cut_inside_packet(source, tmp_path / "cut.mp4", packet=4)
    plan, frames = cut_and_decode(path, ONE_SECOND)
    assert [pts for pts, _ in frames] == [0, 512, 1024, 1536]
    assert plan.segments[-1].pts == (0, 512, 1024, 1536)


@pytest.mark.parametrize("b_frames", ["0", "2"])
def test_a_spliced_broadcast_whose_picture_size_changes_keeps_the_frames_a_whole_decode_gives(tmp_path, b_frames):
    """Programmes of 64x48 and 128x96 back to back: FFmpeg drops the frame before the new sequence
    header, in a whole decode too, and the task failed for it ('1 of the 12 frames from 1.000 s to
    1.440 s did not decode')."""
    parts = [make_clip(tmp_path / f"{w}x{h}.m2v", frames=30, size=(w, h), rate=25, audio=False, codec="mpeg2video",
                       container="mpeg2video", options={"g": "12", "bf": b_frames}) for w, h in [(64, 48), (128, 96)]]
    path = mpeg2_back_to_back(tmp_path / "broadcast.ts", parts)
    _, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole_decode(path)]


def test_copied_audio_keeps_its_language(tmp_path, smooth_model):
    path = make_clip(tmp_path / "aac.mp4", languages=("jpn",))
    render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as container:
        assert [s.language for s in container.streams.audio] == ["jpn"]


@pytest.mark.parametrize("codec,into", [("libx264", MP4), ("prores_ks", MOV)], ids=lambda c: getattr(c, "name", c))
def test_non_square_pixels_keep_the_display_aspect_ratio(tmp_path, smooth_model, codec, into):
    """Anamorphic DV, DVD and broadcast captures: 4:3 pixels shown 16:9. ProRes's bitstream states
    none (its piece's QuickTime pasp box does): its output came back square, 4:3 shown."""
    path = make_clip(tmp_path / "anamorphic.mp4", sample_aspect=Fraction(4, 3))
    assert probe_video(path).sample_aspect == Fraction(4, 3)
    out = tmp_path / f"out.{into.name}"
    render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", codec=codec, into=into)
    with av.open(str(out)) as container:
        video = container.streams.video[0]
        assert (video.width, video.height) == (128, 96) and video.sample_aspect_ratio == Fraction(4, 3)
        assert video.sample_aspect_ratio * video.width / video.height == Fraction(16, 9)  # as shown


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_a_stream_that_allows_b_frames_but_used_none_is_still_cut(tmp_path, container):
    """Its presentation times rise in decode order, as an AVI's decode times do, but MP4 and
    Matroska store presentation times: the stream is cut, and decodes frame for frame."""
    path = make_clip(tmp_path / f"flat.{container}", frames=36, audio=False,
                     options={"bframes": "3", "g": "6", "x264-params": "b-adapt=0:bframes=0"})
    info = probe_video(path)
    entries = scan_packets(path, info)
    assert all(a.pts < b.pts for a, b in zip(entries, entries[1:]))
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    assert len(plan.segments) >= 5
    frames = [f for segment, data in extract_segments(path, info, plan.segments)
              for batch in decode_segment(data, info, segment, 4) for f in batch.pts]
    assert frames == [pts for pts, _ in whole_decode(path)]


def output_colour_range(path: Path) -> int:
    with av.open(str(path)) as container:
        return container.streams.video[0].codec_context.color_range


def test_a_stated_colour_range_survives_without_the_other_colour_tags_and_an_unstated_one_is_read_as_limited(
        tmp_path, smooth_model):
    """VP9 WebM states limited range and nothing else; a plain H.264 clip states nothing, and its
    output, which states its BT.601 matrix (an SD source: tests/pipeline/test_colour.py), states
    the limited range that nothing means, as H.264 states both or neither."""
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("this FFmpeg has no VP9 encoder")
    webm = make_clip(tmp_path / "vp9.webm", frames=6, codec="libvpx-vp9", audio=False)
    plain = make_clip(tmp_path / "plain.mp4", frames=6, audio=False)
    assert probe_video(webm).color["color_range"] == 1 and probe_video(plain).color["color_range"] == 0
    for path, stated in ((webm, 1), (plain, 1)):
        render_and_join(path, tmp_path / f"out-{path.stem}.mp4", smooth_model, ONE_SECOND, tmp_path / path.stem)
        assert output_colour_range(tmp_path / f"out-{path.stem}.mp4") == stated


@pytest.mark.parametrize("wrong_by", [3, -3])
@pytest.mark.parametrize("codec, into", [("mp2", MATROSKA), ("ac3", MP4)])
def test_one_copied_audio_packet_with_a_wrong_time_leaves_the_audio_after_it_in_sync(tmp_path, smooth_model, codec,
                                                                                      into, wrong_by):
    """The same bit error in audio the output copies as it is: the side streams ran on from the
    wrong time (its next packets went back from it), so the sound after it came 3 s late for the
    rest of the recording; the one packet takes the time its neighbours give it."""
    path = recording_with_audio_gap(tmp_path / "glitch.ts", seconds=6, gap=(0, 0), audio_codec=codec)
    clean = _sounding(path)
    with_audio_time_wrong(path, packet=30, seconds=wrong_by)
    _, _, report = render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND,
                                   tmp_path / "pieces", into=into)
    assert [a["codec"] for a in report.audio_copied] == [codec]
    output = _sounding(tmp_path / f"out.{into.name}")
    assert len(clean) == 1 and len(output) == 1, f"one stretch of sound, as the recording has: {output}"
    assert np.allclose(output, clean, atol=1536 / 48000), f"{output} != {clean}"


@pytest.mark.parametrize("into", [MATROSKA, MP4], ids=lambda c: c.name)
def test_one_wrong_pes_time_over_several_audio_frames_leaves_the_audio_after_it_in_sync(tmp_path, smooth_model, into):
    """An FFmpeg-written transport stream puts several MP2 frames in one PES: a bit error in its
    header makes them all 3 s off, which was taken for a step (a dropout of 3 s, then the sound
    3 s late to the end), copied into Matroska or re-encoded for MP4 alike."""
    clean = recording_with_audio_gap(tmp_path / "clean.ts", seconds=6, gap=(0, 0), audio_codec="mp2")
    path = with_audio_time_wrong(with_audio_frames_bundled(clean, tmp_path / "glitch.ts"), packet=10, seconds=3)
    with av.open(str(path)) as source:
        times = [p.pts for p in source.demux(audio=0) if p.size]
    assert sum(b < a for a, b in zip(times, times[1:])) == 1 and times[20] - times[18] > 90000, "two frames wrong"
    render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    output = _sounding(tmp_path / f"out.{into.name}")
    assert len(output) == 1, f"one stretch of sound, as the recording has: {output}"
    assert np.allclose(output, _sounding(clean), atol=1152 / 16000), f"{output} != {_sounding(clean)}"


@pytest.mark.parametrize("into", [MATROSKA, MP4], ids=lambda c: c.name)
def test_a_wrong_time_on_the_first_audio_packet_leaves_the_audio_after_it_in_sync(tmp_path, smooth_model, into):
    """A bit error in the first PES header (3 s late): nothing before it to judge it by, so it
    went through, the packets after it went back from it and ran on from it, and the whole
    recording's sound came 3 s late (3 s of silence first)."""
    path = recording_with_audio_gap(tmp_path / "glitch.ts", seconds=6, gap=(0, 0), audio_codec="mp2")
    clean = _sounding(path)
    with_audio_time_wrong(path, packet=0, seconds=3)
    render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    output = _sounding(tmp_path / f"out.{into.name}")
    assert len(output) == 1, f"one stretch of sound, as the recording has: {output}"
    assert np.allclose(output, clean, atol=1152 / 16000), f"{output} != {clean}"


def test_a_lone_audio_packet_between_two_dropouts_keeps_its_time():
    """Sound to 2 s, a dropout, one packet at 4 s, another dropout, sound from 6 s: the packet
    after the lone one did not go on from it, so it was taken for a wrong time and moved to 2 s."""
    stream = SimpleNamespace(time_base=Fraction(1, 1000), type="audio", index=1)
    times = [*range(0, 2000, 24), 4000, *range(6000, 8000, 24)]
    line = AudioLine(stream)
    out = [p for t in times for p in line.take(SimpleNamespace(pts=t, dts=t, duration=24, stream=stream))]
    assert [p.pts for p in out + line.flush()] == times


class _CountedPacket:
    """An audio packet that counts how often its duration is read, in ``reads`` (shared): the work
    an :class:`AudioLine` does on it."""

    def __init__(self, pts: int, stream, reads: list):
        self.pts, self.dts, self.stream, self._reads = pts, pts, stream, reads

    @property
    def duration(self) -> int:
        self._reads[0] += 1
        return 1


@pytest.mark.parametrize("step", [0, 20], ids=["all-at-one-time", "each-a-step-of-its-own"])
def test_one_sample_audio_packets_by_the_thousand_each_keep_their_time_for_a_few_reads_each(step):
    """A sample table of zero durations times 16,000 one-sample PCM packets alike (step 0): the
    line summed the waiting ones for each new one, 21 s for 1 s of sound; packets each a step
    from the last (20 ticks, over the slack) were judged again, each against all those waiting, for
    each new one. Here 1 s of sound (400 packets of one tick) waits at a time."""
    stream = SimpleNamespace(time_base=Fraction(1, 400), type="audio", index=1)
    reads = [0]
    packets = [_CountedPacket(n * step, stream, reads) for n in range(1200)]
    line = AudioLine(stream)
    out = [p for packet in packets for p in line.take(packet)] + line.flush()
    assert out == packets and [p.pts for p in out] == [n * step for n in range(1200)]
    assert reads[0] < 10 * len(packets), f"{reads[0]:,} reads of a duration for {len(packets):,} packets"


@pytest.mark.parametrize("codec", ["aac", "pcm_s16le"])
@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_an_audio_track_without_packets_is_listed_as_dropped_not_as_kept(tmp_path, smooth_model, codec, into):
    """A track the source declares and never wrote to: MP4 left it out and Matroska wrote it
    empty, while the report listed it as copied (or re-encoded) next to the one that plays."""
    make_clip(tmp_path / "two.mkv", frames=24, languages=("eng", "fre"), audio_codec=codec)
    path = with_track_emptied(tmp_path / "two.mkv", tmp_path / "one-empty.mkv", index=2)
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    assert [a["index"] for a in report.audio_copied + report.audio_reencoded] == [1]
    assert [(a["index"], a["codec"]) for a in report.audio_dropped] == [(2, codec)]
    assert "no audio packets" in report.audio_dropped[0]["reason"]
    with av.open(str(out)) as output:
        assert len(output.streams.audio) == 1


@pytest.mark.parametrize("into", [MP4, MATROSKA], ids=lambda c: c.name)
def test_an_audio_track_whose_parameters_the_probe_never_read_is_dropped_not_failing_the_join(tmp_path, smooth_model,
                                                                                              into):
    """HLS joined across an ad break on other PIDs: the new programme's AAC track came with no
    sample rate, and the muxer refused the output ("sample rate not set") after every segment had
    been upscaled."""
    path = programme_on_new_pids(tmp_path / "hls.ts")
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    assert [a["index"] for a in report.audio_copied] == [1] and report.frames == 24
    assert [(a["index"], a["codec"]) for a in report.audio_dropped] == [(3, "aac")]
    assert "parameters" in report.audio_dropped[0]["reason"]
    with av.open(str(out)) as output:
        assert len(output.streams.audio) == 1 and output.streams.audio[0].sample_rate == 16000


@pytest.mark.parametrize("default_subtitle", [None, 1])
@pytest.mark.parametrize("into", [MP4, MATROSKA], ids=lambda c: c.name)
def test_subtitle_tracks_are_the_default_where_the_source_says_so_and_only_there(tmp_path, smooth_model, into,
                                                                                 default_subtitle):
    """FFmpeg's MP4 muxer enables the first subtitle track where none is the default, and players
    show an enabled one from the start: subtitles the source had off came on."""
    path = anime_matroska(tmp_path / "episode.mkv", default_subtitle=default_subtitle)
    render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(tmp_path / f"out.{into.name}")) as out:
        shown = [bool(s.disposition & av.stream.Disposition.default) for s in out.streams.subtitles]
        audio = [bool(s.disposition & av.stream.Disposition.default) for s in out.streams.audio]
    assert shown == [n == default_subtitle for n in range(2)]
    assert into.muxer != "mp4" or audio == [True], "MP4's one audio track stays the one to play"


@pytest.mark.parametrize("container, on_file", [("mov", False), ("matroska", True), ("matroska", False)])
@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_the_start_timecode_of_a_camera_clip_stays_on_its_video(tmp_path, smooth_model, container, on_file, into):
    """A MOV's tmcd track, or a file-wide timecode as MXF states it and Matroska remuxed from one
    keeps it: it was lost, and the file-wide one failed the MP4 (counted in Matroska's 1,000 ticks
    a second, over what a tmcd track holds)."""
    path = timecoded_clip(tmp_path / f"camera.{container[:3]}", "01:02:03:04", container, on_file)
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(out)) as output:
        video = output.streams.video[0]
        assert {k.lower(): v for k, v in video.metadata.items()}["timecode"] == "01:02:03:04"
        if into is MP4:  # as a tmcd track of its own, which players and editors read
            assert [s.metadata.get("timecode") for s in output.streams.data] == ["01:02:03:04"]
    assert frame_count(out) == report.frames == 24


@pytest.mark.parametrize("rate, written", [(25, "01:02:03:04"), (Fraction(30000, 1001), "01:02:03;04")])
@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_a_drop_frame_timecode_is_kept_counted_non_drop_where_the_rate_has_no_drop_frame(
        tmp_path, smooth_model, rate, written, into):
    """A 25 fps recording's timecode marked drop-frame (``;``, as a file-wide tag states it):
    drop-frame counting exists only at 29.97 and 59.94, and the MP4 muxer left the timecode out,
    unsaid; it is the frame of the same digits counted non-drop. At 29.97 it stays drop-frame."""
    path = timecoded_clip(tmp_path / "camera.mkv", "01:02:03;04", "matroska", on_file=True, rate=rate)
    out = tmp_path / f"out.{into.name}"
    render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(out)) as output:
        assert {k.lower(): v for k, v in output.streams.video[0].metadata.items()}["timecode"] == written
        if into is MP4:
            assert [s.metadata.get("timecode") for s in output.streams.data] == [written]


@pytest.mark.parametrize("container, label, rate, written", [
    ("mov", "01:02:03:04", 25, "01:02:03:13"), ("matroska", "01:02:03:04", 25, "01:02:03:13"),
    ("mov", "00:00:59;27", Fraction(30000, 1001), "00:01:00;08")])  # drop-frame skips ;00 and ;01
@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_the_timecode_of_a_video_that_starts_inside_a_gop_is_its_first_decoded_frames(
        tmp_path, smooth_model, container, label, rate, written, into):
    """A camera clip cut mid-GOP: its 9 frames before the first keyframe do not decode, and the
    output starts at the keyframe, whose label is 9 frames on; the first frame's was written."""
    clip = make_clip(tmp_path / f"clip.{container[:3]}", frames=36, rate=rate, container=container,
                     options={"g": "12", "bf": "0"}, audio=False)
    path = cut_mid_gop(clip, tmp_path / f"camera.{container[:3]}", 3, timecode=label)
    with av.open(str(path)) as source:
        stamps = [(p.pts, p.is_keyframe) for p in source.demux(source.streams.video[0]) if p.size]
    assert sum(pts < next(pts for pts, key in stamps if key) for pts, _ in stamps) == 9
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(out)) as output:
        assert {k.lower(): v for k, v in output.streams.video[0].metadata.items()}["timecode"] == written
        if into is MP4:
            assert [s.metadata.get("timecode") for s in output.streams.data] == [written]
    assert report.frames == 24


def test_the_timecode_of_a_video_trimmed_by_an_edit_list_stays_its_first_shown_frames(tmp_path, smooth_model):
    """The frames an edit list hides are no frames of the source: its timecode labels the first
    one shown, where the output starts too, and does not move on by the hidden ones."""
    clip = make_clip(tmp_path / "clip.mov", frames=24, rate=25, options={"g": "12", "bf": "0"}, audio=False)
    path = trim_by_edit_list(clip, tmp_path / "trimmed.mov", frames=5, timecode="01:02:03:04")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    with av.open(str(tmp_path / "out.mp4")) as output:
        assert [s.metadata.get("timecode") for s in output.streams.data] == ["01:02:03:04"]
    assert report.frames == 19


def test_a_timecode_at_a_rate_no_tmcd_track_counts_in_stays_on_a_matroska_video(tmp_path, smooth_model):
    """A tmcd track holds up to 255 frames a second, a Matroska tag any timecode: a 300 fps
    clip's was left out of Matroska too."""
    path = timecoded_clip(tmp_path / "fast.mkv", "01:02:03:04", "matroska", on_file=True, rate=300)
    out = tmp_path / "out.mkv"
    render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=MATROSKA)
    with av.open(str(out)) as output:
        assert {k.lower(): v for k, v in output.streams.video[0].metadata.items()}["timecode"] == "01:02:03:04"


@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_streams_the_output_has_no_place_for_are_named_with_the_reason(tmp_path, smooth_model, into):
    """A camera MP4 with a preview track, GoPro telemetry and a cover picture: the video is
    upscaled with its audio, and what is left out is listed (it went unmentioned); the cover is
    kept (below)."""
    main = video_tracks(tmp_path / "two.mp4", [((96, 64), 24, True), ((32, 24), 6, True)])
    path = with_telemetry_and_cover(main, tmp_path / "camera.mp4")
    _, _, report = render_and_join(path, tmp_path / f"out.{into.name}", smooth_model, ONE_SECOND,
                                   tmp_path / "pieces", into=into)
    assert [(d["type"], d["codec"], d["title"], d["reason"]) for d in report.streams_dropped] == [
        ("video", "h264", None, "one video is upscaled, stream 0"),
        ("data", "bin_data", "GoPro MET", "data streams are not carried")]
    assert frame_count(tmp_path / f"out.{into.name}") == report.frames == 24


def test_a_tmcd_track_whose_timecode_the_video_keeps_is_not_listed_as_dropped(tmp_path, smooth_model):
    path = timecoded_clip(tmp_path / "camera.mov", "01:02:03:04", "mov")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert report.streams_dropped == []


@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_an_mp4s_cover_picture_is_kept_as_the_outputs_cover(tmp_path, smooth_model, into):
    """A music video's or a podcast's cover art (MP4's covr): MP4 keeps it as its cover, Matroska
    as a cover.jpg attachment; it was left out unmentioned."""
    path = with_telemetry_and_cover(make_clip(tmp_path / "clip.mp4", frames=24), tmp_path / "podcast.mp4")
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(out)) as output:
        covers = [s for s in output.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(covers) == 1 and bytes(next(output.demux(covers[0]))) == COVER_JPEG
        assert output.streams.video[0].codec_context.width == 128  # the video comes first, upscaled
    assert report.attachments == [{"name": "cover.jpg", "mimetype": "image/jpeg", "bytes": len(COVER_JPEG)}]
    assert frame_count(out) == report.frames == 24


def test_two_unnamed_cover_pictures_get_names_of_their_own_in_matroska(tmp_path, smooth_model):
    """An MP4's covers have no names: two JPEGs both became cover.jpg, and Matroska tells its
    attachments apart by name (players, mkvextract writing one over the other)."""
    path = with_telemetry_and_cover(make_clip(tmp_path / "clip.mp4", frames=12), tmp_path / "album.mp4", covers=2)
    _, _, report = render_and_join(path, tmp_path / "out.mkv", smooth_model, ONE_SECOND, tmp_path / "pieces",
                                   into=MATROSKA)
    assert [a["name"] for a in report.attachments] == ["cover.jpg", "cover-2.jpg"]


def test_a_cover_picture_whose_size_cannot_be_read_is_listed_as_dropped_from_mp4(tmp_path, smooth_model):
    """A JPEG attached as image/png, as taggers write it: FFmpeg reads it as a PNG of no size, and
    the MP4 muxer failed the whole file over it ("dimensions not set"); one that reads goes on."""
    pictures = [("cover.png", "image/png", COVER_JPEG), ("small_cover.jpg", "image/jpeg", COVER_JPEG)]
    path = with_attachments(make_clip(tmp_path / "clip.mp4", frames=24), tmp_path / "tagged.mkv", pictures)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert report.attachments_dropped == [{"name": "cover.png", "mimetype": "image/png",
                                           "reason": "its picture is not the png it is said to be, or is damaged"}]
    assert [a["name"] for a in report.attachments] == ["small_cover.jpg"]
    with av.open(str(tmp_path / "out.mp4")) as output:
        covers = [s for s in output.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert [bytes(next(output.demux(cover))) for cover in covers] == [COVER_JPEG]
    assert frame_count(tmp_path / "out.mp4") == report.frames == 24


@pytest.mark.parametrize("into", [MP4, MATROSKA])
def test_a_raw_dv_capture_keeps_its_frame_rate_and_its_tapes_timecode(tmp_path, smooth_model, into):
    path = camcorder_dv(tmp_path / "tape.dv")
    out = tmp_path / f"out.{into.name}"
    _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / "pieces", into=into)
    with av.open(str(out)) as output:
        video = output.streams.video[0]
        assert video.average_rate == 25
        assert {k.lower(): v for k, v in video.metadata.items()}["timecode"] == "10:00:00:00"
    assert frame_count(out) == report.frames == 10


@pytest.mark.parametrize("compatibility, transfer", [(4, 18), (1, 16)])  # HLG as iPhones record, PQ
def test_dolby_vision_is_upscaled_as_its_base_layer_with_no_dolby_vision_box_left(tmp_path, smooth_model,
                                                                                 compatibility, transfer):
    """Profile 8 (an iPhone's HDR video): the HEVC base layer is upscaled and tagged as it was; no
    dvcC box goes out, which would have players look for RPUs that no longer describe the pixels
    (found right by the camera-inputs sweep)."""
    x265 = f"colorprim=bt2020:transfer={ {18: 'arib-std-b67', 16: 'smpte2084'}[transfer]}:colormatrix=bt2020nc"
    hevc = make_clip(tmp_path / "hevc.mp4", frames=12, codec="libx265", pix_fmt="yuv420p10le",
                     options={"x265-params": x265 + ":log-level=error"})
    path = with_dolby_vision_config(hevc, tmp_path / "dolby.mp4", 8, compatibility)
    assert b"dvcC" in path.read_bytes()
    for into in (MP4, MATROSKA):
        out = tmp_path / f"out.{into.name}"
        _, _, report = render_and_join(path, out, smooth_model, ONE_SECOND, tmp_path / into.name, codec="libx265",
                                       into=into)
        with av.open(str(out)) as output:
            ctx = output.streams.video[0].codec_context
            assert (ctx.color_primaries, ctx.color_trc, ctx.colorspace) == (9, transfer, 9)
        assert b"dvcC" not in out.read_bytes() and b"dvvC" not in out.read_bytes() and b"dvwC" not in out.read_bytes()
        assert frame_count(out) == report.frames == 12


def test_an_audio_track_of_a_codec_ffmpeg_does_not_know_is_dropped_and_listed(tmp_path, smooth_model):
    """It has no codec context: the probe failed on it, and so the task."""
    path = with_unknown_codec(make_clip(tmp_path / "clip.mp4", frames=24, languages=("eng", "und")),
                              tmp_path / "phone.mp4", b"mp4a", b"esds")
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert [a["index"] for a in report.audio_copied] == [1]
    assert report.audio_dropped == [
        {"index": 2, "codec": "unknown", "language": "und", "reason": "FFmpeg does not know the track's codec"}]
    assert frame_count(tmp_path / "out.mp4") == report.frames == 24


def test_a_video_track_of_a_codec_ffmpeg_does_not_know_beside_the_video_is_listed(tmp_path, smooth_model):
    main = video_tracks(tmp_path / "two.mp4", [((96, 64), 24, True), ((32, 24), 6, True)])
    path = with_unknown_codec(main, tmp_path / "camera.mp4", b"avc1", b"avcC")
    info, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, ONE_SECOND, tmp_path / "pieces")
    assert info.stream_index == 0 and frame_count(tmp_path / "out.mp4") == report.frames == 24
    assert [(d["index"], d["codec"]) for d in report.streams_dropped] == [(1, "unknown")]


def test_a_decode_time_that_goes_back_is_moved_on_in_the_segment_file(tmp_path):
    # As FFmpeg reads a one-minute soft-telecine VOB: a packet's decode time goes back, between two
    # packets one tick apart. NUT refused it and the task failed ("video could not be decoded
    # (Invalid argument)"); moved on by a whole tick, it ran into the next packet's times.
    path = make_clip(tmp_path / "clip.mkv", frames=12, rate=1000, audio=False, options={"x264-params": "bframes=0"})
    info = probe_video(path)
    times = {index: (index, index) for index in range(12)}  # (pts, dts) in ms, one tick a frame
    times[5] = (20, 1)  # shown later (its frame's label only), decoded "before" the one before it
    times.update({index: (index - 1, index - 1) for index in range(6, 12)})
    segment = Segment(0, 0, 11, tuple(sorted(pts for pts, _ in times.values())))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        piece = _SegmentFile(segment, stream, "nut", with_tag=True)
        for index, packet in enumerate(p for p in container.demux(stream) if p.size):
            packet.pts, packet.dts = times[index]
            if index == 3:
                packet.duration = None  # a duration the container does not know
            piece.add(packet)
        data = piece.close()
    decoded = [pts for batch in decode_segment(data, info, segment, 4) for pts in batch.pts]
    assert sorted(decoded) == list(segment.pts)


def test_a_video_counted_in_nanoseconds_decodes_segment_by_segment_to_the_frames_of_one_decode(tmp_path):
    # its segment files' time base, a sixteenth of a nanosecond, did not fit FFmpeg's rational:
    # the task failed with an OverflowError where every frame decodes
    path = make_clip(tmp_path / "clip.mp4", frames=36, audio=False, time_base=Fraction(1, 10 ** 9),
                     pts=[i * 10 ** 9 // 12 for i in range(36)], options={"x264-params": "keyint=6:bframes=2"})
    plan, frames = segment_decode(path)
    assert len(plan.segments) >= 3
    expected = whole_decode(path)
    assert [pts for pts, _ in frames] == [pts for pts, _ in expected]
    for (pts, got), (_, want) in zip(frames, expected):
        assert np.array_equal(got, want), f"frame at {pts}"


def test_a_frame_whose_stored_time_a_bit_error_moved_ahead_is_refused_saying_so(tmp_path):
    """A Matroska block 4 s late: cutting it failed as 'video could not be decoded (Invalid
    argument)', NUT's word for a frame shown before its decode time, read as a decoder's fault."""
    source = make_clip(tmp_path / "in.mkv", frames=48, rate=24, codec="libvpx-vp9", container="matroska", audio=False)
    path = with_block_time_moved(source, tmp_path / "moved.mkv", 10, 4000)
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting())
    with pytest.raises(InputError, match=r"^the video's frame times go back: a frame shown at 0\.458 s is stored "
                                         r"after one at 4\.417 s \(a damaged timestamp\)$"):
        list(extract_segments(path, info, plan.segments))


def test_an_h264_keyframe_growing_the_picture_over_the_pixel_limit_is_refused(tmp_path):
    """H.264's decoder refuses a picture over its max_pixels as invalid data, which was taken for a
    keyframe that needs what came before it: the plan kept the header's 96x64 and the 640x480
    frames went on past the limit."""
    path = growing_broadcast(tmp_path / "broadcast.ts", [((96, 64), 12), ((640, 480), 24)])
    with pytest.raises(InputError, match="keyframe whose picture is over the limit of 100,000 pixels"):
        plan_segments(path, probe_video(path), Cutting(), max_pixels=100_000)


def test_a_keyframe_growing_the_picture_to_exactly_the_pixel_limit_is_planned_at_its_size(tmp_path):
    path = growing_recording(tmp_path / "call.webm", [((64, 48), 4), ((200, 100), 4)])
    assert plan_segments(path, probe_video(path), Cutting(), max_pixels=200 * 100).picture_size == (200, 100)


def test_segments_of_a_vp8_stream_with_hidden_frames_are_not_decoded_again(tmp_path, monkeypatch):
    """A segment owning a hidden packet (an alternate reference) comes short of its planned frames
    by it: each such segment was decoded twice again, on one thread, to find damage it has not."""
    path = vp8_with_hidden_frames(tmp_path)
    again = []
    told = damage_stage.damage_told_on_one_thread
    monkeypatch.setattr(damage_stage, "damage_told_on_one_thread", lambda *args: again.append(args) or told(*args))
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert len(plan.segments) == 5 and [pts for pts, _ in frames] == [pts for pts, _ in whole_decode(path)]
    assert len(frames) == 45 and not again


def test_a_damaged_last_vp8_packet_whose_damage_cleared_its_show_bit_fails_its_segment(tmp_path):
    """Dropped unsaid by frame threads as the segment's decode drained, it was counted a hidden
    frame: the last segment passed short of a frame (47 of 48 out)."""
    source = make_clip(tmp_path / "in.webm", frames=48, rate=24, audio=False, codec="libvpx")
    show_bit_cleared = with_frames_hidden(source, tmp_path / "hidden.webm", [47])
    path = with_packets_damaged(show_bit_cleared, tmp_path / "damaged.webm", [47], keep=1)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.9\d s is damaged"):
        cut_and_decode(path, Cutting(segment_s=0.5))


@pytest.mark.parametrize("kind", LIVE_KINDS)
def test_the_packet_index_of_a_recording_over_the_length_limit_stops_where_it_is_over(tmp_path, monkeypatch, kind):
    """A source that states no length was indexed whole before the limits saw it; a 20 s recording
    under a limit of 2 s (or of 50 frames) is refused at its first few seconds."""
    path = live_source(tmp_path, kind)
    info = probe_video(path)
    read = DemuxCount(monkeypatch, segments_stage)
    for limits, refusal in SHORT_LIMITS.values():
        with pytest.raises(InputError, match=refusal):
            plan_segments(path, info, Cutting(), limits=limits)
    assert read.packets < 2 * packets_in(path) / 4
    plan_segments(path, info, Cutting(), limits=LengthLimits(600, 20.5))  # each of its frames, all 20 s


TS_KEYFRAME = 23  # in decode order: the third GOP's (its packet, run into the next, gives the frame at 1.00 s)


@pytest.mark.parametrize("segment_s", [2.0, 0.5])  # one segment; one cut at the GOP before
@pytest.mark.parametrize("keep", [0, 11])  # its access unit delimiter damaged too, or kept
def test_a_transport_streams_damaged_keyframe_whose_gop_the_decoder_drops_without_a_word_fails_saying_where(
        tmp_path, segment_s, keep):
    """No slice start code left, FFmpeg's parser ran the keyframe's packet into the next, and H.264's
    decoder gave no frame of the GOP and no error, even told the errors it conceals: 38 of the 48
    frames came out and the task completed."""
    path = damaged_raw_stream(tmp_path, "mpegts", [TS_KEYFRAME], keep)
    with pytest.raises(InputError, match=r"^video could not be decoded: 9 frames from about 1\.04 s are missing"):
        cut_and_decode(path, Cutting(segment_s=segment_s))


def planned_and_dropped(path, segment_s: float) -> tuple:
    """The frames the plan holds, and the damaged packets each segment's decode that repeats them
    counts, together."""
    info = probe_video(path, repeat_damaged=True)
    plan = plan_segments(path, info, Cutting(segment_s=segment_s))
    dropped = 0
    for segment, data in extract_segments(path, info, plan.segments, repeat_damaged=True):
        damaged = DamagedPackets(repeat=True, limit_share=False)
        list(decode_segment(data, info, segment, 8, damaged=damaged))
        dropped += damaged.dropped
    return plan.frames, dropped


@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_transport_streams_gop_lost_without_a_word_is_counted_when_repeated(tmp_path, segment_s):
    """The segment's frames the decoder did not give were filled in (10), none counted."""
    path = damaged_raw_stream(tmp_path, "mpegts", [TS_KEYFRAME], keep=11)
    assert planned_and_dropped(path, segment_s) == (47, 9)



@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_transport_streams_picture_whose_start_code_is_damaged_fails_saying_where(tmp_path, segment_s):
    """FFmpeg's parser ran the picture's bytes into a neighbour's packet: 47 frames planned and out,
    no error, and the task completed a frame short."""
    path = damaged_raw_stream(tmp_path, "mpegts", [20], keep=0)
    with pytest.raises(InputError, match=r"^video could not be decoded: 1 frame from about 0\.88 s is missing"):
        cut_and_decode(path, Cutting(segment_s=segment_s))


@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_transport_streams_picture_whose_start_code_is_damaged_is_counted_when_repeated(tmp_path, segment_s):
    """47 frames planned and out, none counted: the plan holds none for it to fill in."""
    assert planned_and_dropped(damaged_raw_stream(tmp_path, "mpegts", [20], keep=0), segment_s) == (47, 1)


@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_transport_streams_picture_whose_first_slices_start_code_is_damaged_is_given_in_its_segment(tmp_path, segment_s):
    """Its packet starts at its second slice and the decoder gives the picture: 48 frames. Counted
    lacking, the task failed ('1 frame from about 0.92 s is missing')."""
    source = start_code_stream(tmp_path, "mpegts", FRAME_NUM_ORDER_OPTIONS + ":slices=4:scenecut=0")
    path = with_start_codes_damaged(source, tmp_path / "damaged.ts", [22])
    assert len(cut_and_decode(path, Cutting(segment_s=segment_s))[1]) == 48
    assert planned_and_dropped(path, segment_s) == (48, 0)


@pytest.mark.parametrize("options", ["keyint=12:bframes=2:slices=4", "open-gop=1:keyint=12:bframes=3:b-adapt=0",
                                     "keyint=24:bframes=3:b-pyramid=strict"], ids=["slices", "open GOP", "pyramid"])
@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_good_transport_stream_cut_into_segments_counts_no_picture_lacking(tmp_path, options, segment_s):
    path = make_clip(tmp_path / "in.ts", frames=48, rate=24, audio=False, container="mpegts",
                     options={"x264-params": options})
    assert len(cut_and_decode(path, Cutting(segment_s=segment_s))[1]) == 48
    assert planned_and_dropped(path, segment_s) == (48, 0)

@pytest.mark.parametrize("segment_s", [2.0, 0.5])
def test_a_thinned_transport_stream_cut_into_segments_counts_no_picture_lacking(tmp_path, segment_s):
    """Every second unreferenced picture dropped for trick play: the old check failed it, its counts skipping."""
    path = with_unreferenced_pictures_dropped(start_code_stream(tmp_path, "mpegts"), tmp_path / "thinned.ts", every=2)
    assert len(cut_and_decode(path, Cutting(segment_s=segment_s))[1]) == 34
    assert planned_and_dropped(path, segment_s) == (34, 0)


# a webcam's intra refresh: a recovery point each 0.5 s, no B-frames
WEBCAM_REFRESH = "keyint=12:bframes=0:scenecut=0"
INTRA_REFRESH_CLIPS = [("mkv", "keyint=30:bframes=2"), ("ts", "keyint=30:bframes=2"), ("avi", WEBCAM_REFRESH)]


@pytest.mark.parametrize("suffix, params", INTRA_REFRESH_CLIPS, ids=["mkv", "ts", "avi"])
def test_an_intra_refresh_stream_cut_at_a_recovery_point_decodes_every_frame_from_the_gop_before(
        tmp_path, suffix, params):
    """The segment's decoder, started at a keyframe that is no IDR picture, gave no frame of it
    with no word (47 of 48 frames; the AVI 42, each segment after the first short of 2): started
    at the keyframe before, it gives them all, as the whole decode does."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=params)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert (plan.frames, len(frames)) == (48, 48)
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole_decode(path)))


@pytest.mark.parametrize("suffix, params", INTRA_REFRESH_CLIPS, ids=["mkv", "ts", "avi"])
def test_an_intra_refresh_streams_segment_repeating_damage_decodes_its_pre_roll_once(tmp_path, suffix, params):
    """Its pre-roll's recovery point does not decode alone, and the GOP before was put before it
    (the AVI's each 12 packets), the decoder flushed at the recovery point: twice the pre-roll, and
    the frame before given as one more (13 frames of 12)."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=params)
    info = probe_video(path, repeat_damaged=True)
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    frames = []
    for segment, data in extract_segments(path, info, plan.segments, repeat_damaged=True):
        assert segment.gop_before == 0
        damaged = DamagedPackets(repeat=True, limit_share=False)
        frames += [frame for batch in decode_segment(data, info, segment, 8, damaged=damaged) for frame in batch.frames]
    assert len(frames) == 48
    assert all(np.array_equal(got, made) for got, (_, made) in zip(frames, whole_decode(path)))


@pytest.mark.parametrize("rekey_max_bytes, cuts", [(256 << 20, [(0, False), (0, True), (12, True), (24, True)]),
                                                   (0, [(0, False), (0, False), (12, False), (24, False)])],
                         ids=["re-keyed", "not re-keyed"])
def test_an_intra_refresh_streams_segment_past_the_pre_roll_bound_decodes_from_the_keyframe_before_its_recovery_point(
        tmp_path, rekey_max_bytes, cuts):
    """Past ``max_preroll_frames`` (a GOP of 12 against 11), segments started at their recovery
    points (packets 12, 24, 36), their first frames not whole: now the cutting pass re-keys them,
    decoding from the keyframe before; not re-keying, each segment decodes that GOP as pre-roll,
    past the bound by a frame (waiting for a keyframe that fits made it all one segment)."""
    path = intra_refresh_clip(tmp_path / "in.avi", params=WEBCAM_REFRESH)
    cutting = Cutting(segment_s=0.5, max_preroll_frames=11, rekey_max_bytes=rekey_max_bytes)
    plan = plan_segments(path, probe_video(path), cutting)
    assert [(s.first_packet, s.rekeyed) for s in plan.segments] == cuts


@pytest.mark.parametrize("suffix", ["avi", "mkv"])
def test_an_intra_refresh_stream_not_re_keyed_whose_gop_passes_the_pre_roll_bound_is_cut_at_its_recovery_points(
        tmp_path, suffix):
    """No recovery point's pre-roll (its GOP before) fits the bound, and the cut waited for one that
    did: the whole stream was one segment (48 frames; a long recording held whole on one replica).
    Now cut at each recovery point, decoded from the keyframe before."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=WEBCAM_REFRESH)
    cutting = Cutting(segment_s=0.5, max_preroll_frames=8, rekey_max_bytes=0)
    plan, frames = cut_and_decode(path, cutting)
    whole = whole_decode(path)
    assert [len(s.pts) for s in plan.segments] == [12, 12, 12, 12]
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole]
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


@pytest.mark.parametrize("suffix", ["avi", "mkv"])
def test_an_intra_refresh_streams_re_keyed_segment_runs_on_through_recovery_points_past_the_pre_roll_bound(
        tmp_path, suffix):
    """A re-keyed segment ended at the next keyframe, where a new sequence may start; a recovery
    point starts none, and one past the bound is re-keyed too: each segment was one GOP long (12
    frames of the 24 asked), a long stream cut into twice the segments."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=WEBCAM_REFRESH)
    plan, frames = cut_and_decode(path, Cutting(segment_s=1.0, max_preroll_frames=8))
    whole = whole_decode(path)
    assert [(len(s.pts), s.rekeyed) for s in plan.segments] == [(24, False), (24, True)]
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole]
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


# intra-refresh streams whose recovery points are past the pre-roll bound, stepped back to: B-frames
# referring past them (a good TS failed, 'a frame at about 0.58 s is damaged'), a webcam's (42 of 48 out)
PAST_BOUND_CLIPS = [("mp4", "keyint=12:bframes=3:ref=4", 14), ("mkv", "keyint=12:bframes=3:ref=4", 14),
                    ("ts", "keyint=12:bframes=3:ref=4", 14), ("avi", WEBCAM_REFRESH, 8), ("mkv", WEBCAM_REFRESH, 8)]


@pytest.mark.parametrize("rekey_max_bytes", [256 << 20, 0], ids=["re-keyed", "not re-keyed"])
@pytest.mark.parametrize("repeat", [False, True], ids=["fail", "repeat"])
@pytest.mark.parametrize("suffix, params, max_preroll", PAST_BOUND_CLIPS,
                         ids=["mp4 b-frames", "mkv b-frames", "ts b-frames", "avi webcam", "mkv webcam"])
def test_an_intra_refresh_stream_whose_recovery_points_are_past_the_pre_roll_bound_gives_every_frame_whole(
        tmp_path, suffix, params, max_preroll, repeat, rekey_max_bytes):
    """A segment cut where its decode could not start from the keyframe before its recovery point
    within the bound started at the recovery point: its frames not whole yet, failed as damaged,
    repeated, or left out without a word."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=params)
    cutting = Cutting(segment_s=0.3, max_preroll_frames=max_preroll, rekey_max_bytes=rekey_max_bytes)
    plan, frames = cut_and_decode(path, cutting, repeat_damaged=repeat)
    whole = whole_decode(path)
    assert (plan.frames, len(plan.segments) > 1) == (48, True)
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole]
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


def test_a_recording_started_inside_an_intra_refresh_stream_decodes_as_its_whole_decode_does(tmp_path):
    """Its first segment starts at its first keyframe, a recovery point, as before, and gives the
    frames the whole decode gives (34); each later one gave 2 fewer (30 in all). The 2 frames shown
    before the stream has recovered, which no decoder gives, are not planned (36 were)."""
    source = intra_refresh_clip(tmp_path / "in.avi", params=WEBCAM_REFRESH)
    path = cut_mid_gop(source, tmp_path / "recording.avi", packets=5)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    whole = whole_decode(path)
    assert (plan.frames, plan.segments[0].first_packet, len(frames), len(whole)) == (34, 7, 34, 34)
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


@pytest.mark.parametrize("repeat", [False, True], ids=["fail", "repeat"])
@pytest.mark.parametrize("suffix", ["mkv", "ts", "mp4"])
def test_a_recording_started_inside_an_intra_refresh_stream_with_b_frames_cut_into_segments_gives_the_frames_ffmpeg_gives(
        tmp_path, suffix, repeat):
    """Cut at 0.25 s, its first segment owned only frames shown before the stream recovers, which no
    decoder gives: 'segment 0 of the video holds no decodable frame', with repeat too. They are not
    planned (36 were), as the packets before its first keyframe are not."""
    path = intra_refresh_recording(tmp_path, suffix)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.25), repeat_damaged=repeat)
    whole = whole_decode(path)
    assert (plan.frames, len(plan.segments) > 1) == (28, True)
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole] == plain_decode_stamps(path)
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


@pytest.mark.parametrize("place, segment_s", [(6, 1000), (3, 0.25)], ids=["one-segment", "lead-cut"])
@pytest.mark.parametrize("suffix", ["mkv", "mp4"])
def test_a_recording_started_inside_an_intra_refresh_stream_damaged_before_it_recovers_gives_every_frame_it_shows_when_repeated(
        tmp_path, suffix, place, segment_s):
    """A packet of a frame shown before the stream recovers, damaged. As one segment: frame threads
    gave no frame until the keyframe after (17 of the 28 planned, no word), one thread gives all 28.
    Before the keyframe, cut at 0.25 s (from its first packet, see _lead_damaged): its first
    segments owned only frames no decoder gives ('no frame of the 6 packets around it could be
    read to show in its place'). The whole decode gives all 28, whole."""
    (tmp_path / "good").mkdir()
    good = whole_decode(intra_refresh_recording(tmp_path / "good", suffix))
    path = intra_refresh_recording(tmp_path, suffix, damaged=[place])
    plan, frames = cut_and_decode(path, Cutting(segment_s=segment_s), repeat_damaged=True)
    assert (plan.frames, [pts for pts, _ in frames]) == (28, [pts for pts, _ in good])
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, good))


def test_a_picture_lost_to_a_damaged_start_code_at_a_segments_edge_fails_where_the_whole_decode_does(tmp_path):
    """An intra-refresh TS (B-frames) from its IDR, its packet 25 damaged: the TS parser runs that
    picture into the packet before, one segment's own, and the gap it leaves in the picture order
    is the next segment's, which read the damaged bytes as pre-roll: neither told it, 47 of 48
    frames and no word at 0.25 s, where the whole decode fails."""
    source = intra_refresh_clip(tmp_path / "in.ts", params="keyint=12:bframes=3:ref=4")
    path = with_packets_damaged(source, tmp_path / "damaged.ts", [25])
    for segment_s in (1000, 0.25):
        with pytest.raises(InputError, match="1 frame from about 1.08 s is missing"):
            cut_and_decode(path, Cutting(segment_s=segment_s))


def test_the_search_for_the_first_frame_a_recording_started_at_a_recovery_point_gives_stops_at_the_pre_roll_bound_past_the_keyframe_after(
        tmp_path, monkeypatch):
    """It decoded from the start until a frame came out: a stream that never recovers was read
    whole. It stops max_preroll_frames packets past the keyframe after the first (the sweep takes
    a GOP): through the keyframe after (its 18th packet) and 4 more; the frames before a frame
    found are left out of the plan (28 of 36) with a bound of 4 too (it gave up at 8 packets)."""
    path = intra_refresh_recording(tmp_path, "mkv")
    searched = []
    search = segments_stage._first_shown
    monkeypatch.setattr(segments_stage, "_first_shown",
                        lambda path, info, packets: searched.append(packets) or search(path, info, packets))
    plan = plan_segments(path, probe_video(path), Cutting(segment_s=1000, max_preroll_frames=4))
    assert (plan.frames, searched) == (28, [18 + 4])


@pytest.mark.parametrize("rekey_max_bytes", [256 << 20, 0], ids=["re-keyed", "not re-keyed"])
@pytest.mark.parametrize("repeat", [False, True], ids=["fail", "repeat"])
@pytest.mark.parametrize("suffix", ["mkv", "ts", "mp4"])
def test_a_recording_started_inside_an_intra_refresh_stream_recovering_past_the_pre_roll_bound_gives_the_frames_ffmpeg_gives(
        tmp_path, suffix, repeat, rekey_max_bytes):
    """Its first frame comes 12 packets past its keyframe (a GOP and B-frames' delay), past a
    pre-roll bound of 8: the plan's search for it stopped at the bound and kept the 8 frames shown
    before the stream recovers, which no decoder gives: 'segment 0 of the video holds no decodable
    frame', or '8 frames from about 0.50 s are missing', a good recording failing (a keyint of 600
    against the default 300 does so too). The search runs through the keyframe after."""
    path = intra_refresh_recording(tmp_path, suffix)
    cutting = Cutting(segment_s=0.25, max_preroll_frames=8, rekey_max_bytes=rekey_max_bytes)
    plan, frames = cut_and_decode(path, cutting, repeat_damaged=repeat)
    whole = whole_decode(path)
    assert (plan.frames, len(plan.segments) > 1) == (28, True)
    assert [pts for pts, _ in frames] == [pts for pts, _ in whole] == plain_decode_stamps(path)
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole))


def test_a_frame_lost_after_a_recording_started_inside_an_intra_refresh_stream_recovered_fails_where_it_is(tmp_path):
    """Its damaged packet, run by the TS parser into the one before, loses a frame with no word,
    decoded as one segment: the frames shown before the stream recovered are no loss, and that one
    is told where it is (it failed at the recovery point, 'a frame at about 0.58 s is damaged')."""
    path = intra_refresh_recording(tmp_path, "ts", damaged=[20])
    with pytest.raises(InputError, match="1 frame from about 1.08 s is missing"):
        cut_and_decode(path, Cutting(segment_s=1000))


@pytest.mark.parametrize("suffix", ["mp4", "mkv", "ts"])
def test_an_intra_refresh_streams_re_keyed_segment_extracted_alone_decodes_from_the_keyframe_before_its_recovery_point(
        tmp_path, suffix):
    """As a resumed task extracts the segments not done: the re-keyed segment's own decode started
    at its recovery point (packet 10), and gave 5 of its 6 frames with no word (B-frames referring
    past it); cut shorter (0.15 s), one failed, 'holds no decodable frame'."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params="keyint=12:bframes=3:ref=4")
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.3, max_preroll_frames=9))
    whole = dict(whole_decode(path))
    rekeyed = [s for s in plan.segments if s.rekeyed]
    assert rekeyed
    for alone in rekeyed:
        for segment, data in extract_segments(path, info, [alone]):
            frames = [(pts, frame) for batch in decode_segment(data, info, segment, 8)
                      for pts, frame in zip(batch.pts, batch.frames)]
            assert [pts for pts, _ in frames] == list(segment.pts)
            assert all(np.array_equal(frame, whole[pts]) for pts, frame in frames)


@pytest.mark.parametrize("suffix, params", INTRA_REFRESH_CLIPS, ids=["mkv", "ts", "avi"])
def test_an_intra_refresh_stream_cut_into_segments_joins_every_frame_a_frame_apart(
        tmp_path, smooth_model, suffix, params):
    """The segment cut at a recovery point lacked its first frames: a 48-frame video came out short."""
    path = intra_refresh_clip(tmp_path / f"in.{suffix}", params=params)
    _, _, report = render_and_join(path, tmp_path / "out.mp4", smooth_model, Cutting(segment_s=0.5),
                                   tmp_path / "pieces")
    frames, _, _ = output_frames(tmp_path / "out.mp4")
    assert (report.frames, len(frames)) == (48, 48)
    assert np.allclose([time for time, _ in frames], np.arange(48) / 24, atol=0.001)


# the Matroska file's times step 1 ms (the helper's ticks as Matroska's): one segment
@pytest.mark.parametrize("format, suffix, segments", [("avi", "avi", 5), ("matroska", "mkv", 1)])
def test_parameter_sets_stored_as_a_packet_of_their_own_own_no_frame_and_reach_each_segments_decoder(
        tmp_path, format, suffix, segments):
    """An AVI's chunk of a keyframe's SPS/PPS (a Matroska file's too): planned as a frame, each
    segment of the good capture failed '2 frames from about 0.04 s are missing' (Matroska: 14 from
    0.00 s); cut at the keyframe after it, a segment after the splice (CAVLC to CABAC) lacked its
    new parameter sets."""
    source = spliced_encodes(tmp_path / "capture.ts", [(24, "keyint=12:cabac=0"), (24, "keyint=12:cabac=1")])
    path = with_parameter_sets_apart(source, tmp_path / f"capture.{suffix}", format)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert (plan.frames, len(plan.segments), len(frames)) == (48, segments, 48)
    assert all(np.array_equal(got, made) for (_, got), (_, made) in zip(frames, whole_decode(source)))
