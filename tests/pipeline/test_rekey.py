"""Re-keyed segments: a GOP too long to cut at its keyframes is decoded once where the video is
cut, and each segment's frames are stored without loss in a file of its own. The frames a replica
decodes from those files must be the frames of one plain decode of the source: the same pixels,
timestamps and colour conversion, for every layout a long-GOP codec decodes to."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from fractions import Fraction
from types import SimpleNamespace

import av
import numpy as np
import pytest

from tests.helpers import (SHARED, cut_and_decode, interlaced_clip, make_clip, palette_clip, shared_path,
                           spliced_encodes, trim_by_edit_list, whole_decode, with_keyframe_flags)
from tmlsr_ray.errors import CanceledError, InputError
from tmlsr_ray.pipeline import rekey
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.rekey import ChromaSiting, lossless_layout, raw_frame_bytes
from tmlsr_ray.pipeline.segment_plan import Cutting, PacketEntry
from tmlsr_ray.pipeline.segments import cut_packets, extract_segments, plan_segments

SHARED_VIDEOS = sorted(p.name for p in (SHARED / "media" / "video").glob("*")) if (SHARED / "media").is_dir() else []
# 6-frame segments of a 24 fps clip; past 8 frames of pre-roll a segment is re-keyed
SHORT = Cutting(segment_s=0.25, max_preroll_frames=8)

ONE_GOP = "keyint=1000:min-keyint=1000:scenecut=0"
LONG_GOPS = {
    "h264 open GOP, B-frames": dict(options={"x264-params": f"{ONE_GOP}:bframes=3:open-gop=1"}),
    "h264 full range": dict(pix_fmt="yuvj420p", options={"x264-params": f"{ONE_GOP}:bframes=2"}),
    "h264 4:4:4 BT.709": dict(pix_fmt="yuv444p", options={
        "x264-params": f"{ONE_GOP}:colorprim=bt709:transfer=bt709:colormatrix=bt709"}),
    "h264 4:2:2": dict(pix_fmt="yuv422p", options={"x264-params": ONE_GOP}),
    "h264 gray": dict(pix_fmt="gray", options={"x264-params": ONE_GOP}),
    "hevc 10-bit PQ": dict(codec="libx265", pix_fmt="yuv420p10le", options={"x265-params": (
        "keyint=1000:min-keyint=1000:scenecut=0:colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc"
        ":log-level=error")}),
    "vp9": dict(codec="libvpx-vp9", options={"g": "1000", "deadline": "realtime", "cpu-used": "8"}),
    # 4:2:0 of an odd width and height, which Ut Video refuses
    "vp9 odd size": dict(codec="libvpx-vp9", size=(63, 47), options={"g": "1000", "deadline": "realtime", "cpu-used": "8"}),
    "h264, a keyframe every 30 frames": dict(options={"x264-params": "keyint=30:min-keyint=30:scenecut=0:bframes=2"}),
}


def long_gop(path, frames=72, size=(64, 48), **kwargs):
    return make_clip(path, frames=frames, rate=24, size=size, audio=False, **kwargs)


def assert_same_frames(got, expected):
    assert [pts for pts, _ in got] == [pts for pts, _ in expected], "frames lost, doubled or moved"
    for (pts, ours), (_, theirs) in zip(got, expected):
        assert np.array_equal(ours, theirs), f"frame at {pts} differs"


@pytest.mark.parametrize("name", sorted(LONG_GOPS))
def test_re_keyed_segments_decode_to_the_frames_of_one_decode(tmp_path, name):
    path = long_gop(tmp_path / ("clip.webm" if name.startswith("vp9") else "clip.mp4"), **LONG_GOPS[name])
    plan, frames = cut_and_decode(path, SHORT)
    assert sum(s.rekeyed for s in plan.segments) >= 3
    assert_same_frames(frames, whole_decode(path))


@pytest.mark.parametrize("name", SHARED_VIDEOS or [None])
def test_every_shared_clip_re_keyed_throughout_decodes_to_the_frames_of_one_decode(name):
    # no pre-roll allowed: every segment that does not start on a keyframe is re-keyed (real
    # H.264, VP9, AV1, 10-bit HEVC, a GIF's BGRA, a rotated VFR phone clip)
    path = shared_path("media", "video", name) if name else shared_path("media", "video")
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5, max_preroll_frames=0))
    assert any(s.rekeyed for s in plan.segments)
    assert_same_frames(frames, whole_decode(path))


def test_re_keyed_segments_hand_a_gpu_replica_the_planes_of_one_decode(tmp_path):
    # the planes path measures the chroma siting from the frames: a re-keyed file's decoder must
    # site it as the source's decoder does (H.264's left siting, which NUT does not keep)
    path = long_gop(tmp_path / "clip.mp4", options={"x264-params": f"{ONE_GOP}:bframes=2"})
    plan, planar = cut_and_decode(path, SHORT, planes=True)
    assert any(s.rekeyed for s in plan.segments)
    _, copied = cut_and_decode(path, replace(SHORT, rekey_max_bytes=0), planes=True)
    assert_same_frames(planar, copied)


def test_the_chroma_siting_of_a_4_2_2_stream_is_told_by_its_first_frame(tmp_path):
    # its sitings apart only down (left, top left, bottom left) convert alike: asked among all six,
    # every frame of the GOP was converted seven times and the siting never known
    path = long_gop(tmp_path / "clip.mp4", frames=2, pix_fmt="yuv422p", options={"x264-params": ONE_GOP})
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    siting = ChromaSiting(frame.format.name)
    siting.observe(frame)
    assert siting.known and siting.location == "left"  # H.264's default


def test_frames_of_flat_colour_are_not_converted_to_tell_the_chroma_siting(tmp_path, monkeypatch):
    """A recording that opens on black (every chroma sample alike: any siting converts it alike)
    was converted to RGB up to seven times a frame, until a frame with colour came."""
    path = tmp_path / "black-then-colour.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24, options={"x264-params": ONE_GOP})
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for index in range(48):
            pixels = np.zeros((48, 64, 3), np.uint8)
            if index >= 40:
                pixels[21:, 31:] = (200, 40, 90)  # edges across and down: every siting told apart
            out.mux(stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(stream.encode(None))
    conversions = []
    original = rekey.frame_to_rgb
    monkeypatch.setattr(rekey, "frame_to_rgb", lambda *args: conversions.append(1) or original(*args))
    _, frames = cut_and_decode(path, SHORT)
    assert_same_frames(frames, whole_decode(path))
    assert 0 < len(conversions) <= 7, "the 40 black frames were converted"


def test_an_interlaced_long_gop_is_deinterlaced_once_across_its_re_keyed_segments(tmp_path):
    path = interlaced_clip(tmp_path / "tv.mp4", frames=60, gop=1000)
    assert probe_video(path).interlaced
    plan, frames = cut_and_decode(path, SHORT)
    rekeyed = {pts for s in plan.segments if s.rekeyed for pts in s.pts}
    assert len(rekeyed) >= 18
    # x264's scene cuts start two copied segments on keyframes, where the frame before them would
    # take more pre-roll than SHORT allows: their first frames have no context before them
    assert_same_frames([f for f in frames if f[0] in rekeyed], [f for f in whole_decode(path) if f[0] in rekeyed])


def test_a_long_gop_is_cut_at_the_segment_length_and_its_later_segments_re_keyed(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", frames=96, options={"x264-params": ONE_GOP})
    plan = plan_segments(path, probe_video(path), Cutting(segment_s=1.0, max_preroll_frames=30))
    assert [len(s.pts) for s in plan.segments] == [24, 24, 24, 24]
    # the first decodes from the keyframe, the second drops 24 frames of pre-roll, the rest would drop more
    assert [s.rekeyed for s in plan.segments] == [False, False, True, True]
    assert all(s.first_packet == 0 for s in plan.segments)


def test_a_re_keyed_segment_holds_at_most_its_share_of_decoded_bytes(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", frames=96, options={"x264-params": ONE_GOP})
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=1.0, max_preroll_frames=0, rekey_max_bytes=5 * raw_frame_bytes(info)))
    sizes = [len(s.pts) for s in plan.segments]
    assert sizes[0] == 24 and not plan.segments[0].rekeyed  # it starts on the keyframe
    assert all(s.rekeyed and len(s.pts) <= 5 for s in plan.segments[1:]) and sum(sizes) == 96
    files = dict(extract_segments(path, info, plan.segments))
    assert max(len(files[s]) for s in plan.segments[1:]) <= 5 * raw_frame_bytes(info)


def test_a_re_keyed_segment_ends_at_a_keyframe_that_changes_the_colour_tags(tmp_path):
    # 60 fps at the frame cap: the cut after a 24-frame segment looks for no keyframe past it, and
    # the re-keyed segment there held the new programme's first frames tagged with the old matrix
    path = spliced_encodes(tmp_path / "capture.ts", [(26, f"{ONE_GOP}:colormatrix=smpte170m"),
                                                     (34, f"{ONE_GOP}:colormatrix=bt709")])
    info = probe_video(path)
    cutting = Cutting(segment_s=1.0, max_frames=24, max_preroll_frames=8, rekey_max_bytes=10 * raw_frame_bytes(info))
    plan, frames = cut_and_decode(path, cutting)
    assert_same_frames(frames, whole_decode(path))
    assert [len(s.pts) for s in plan.segments if s.rekeyed][:1] == [2]  # frames 24 and 25, then the keyframe


def test_long_gops_run_on_to_the_next_keyframe_where_re_keying_is_off(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", frames=96, options={"x264-params": ONE_GOP})
    plan = plan_segments(path, probe_video(path), Cutting(segment_s=1.0, max_preroll_frames=50, rekey_max_bytes=0))
    # past 50 frames of pre-roll no cut is made: the rest is one longer segment
    assert [len(s.pts) for s in plan.segments] == [24, 24, 48] and not any(s.rekeyed for s in plan.segments)
    assert all(s.first_packet == 0 for s in plan.segments)  # one keyframe: every segment decodes from it


def test_a_layout_no_lossless_codec_here_holds_is_not_re_keyed():
    assert lossless_layout("yuvj420p", 64, 48).pix_fmt == "yuv420p"
    assert lossless_layout("yuv420p10le", 64, 48).codec == "ffv1"
    assert lossless_layout("rgb555le", 64, 48) is None  # Microsoft Video 1: such a GOP runs on as before


@pytest.mark.parametrize("codec,pix_fmt", [("qtrle", "rgb24"), ("qtrle", "argb"), ("zmbv", "pal8"), ("smc", "pal8"),
                                           ("zmbv", "bgr0")])
def test_long_gops_of_packed_rgb_and_palettes_are_re_keyed_to_the_frames_of_one_decode(tmp_path, codec, pix_fmt):
    """A QuickTime Animation screen recording (rgb24, argb) or a DOSBox capture (ZMBV, pal8) with
    one keyframe ran on to its next keyframe as one segment: no lossless codec here held its
    layout. The same samples planar are Ut Video's gbrp (gbrap with alpha)."""
    options = {"g": "1000"}
    path = tmp_path / f"{codec}.{'avi' if codec == 'zmbv' else 'mov'}"
    if pix_fmt == "pal8":
        path = palette_clip(path, codec, frames=48, options=options)
    else:
        path = make_clip(path, frames=48, rate=24, codec=codec, pix_fmt=pix_fmt, options=options, audio=False)
    plan, frames = cut_and_decode(path, SHORT)
    assert sum(s.rekeyed for s in plan.segments) >= 3
    assert_same_frames(frames, whole_decode(path))


def test_rgb_with_a_padding_byte_or_alpha_is_stored_in_ut_video_at_three_times_ffv1s_speed():
    assert lossless_layout("bgr0", 64, 48) == rekey.LosslessLayout("utvideo", "gbrp")  # a DOSBox 32-bit capture
    assert lossless_layout("bgra", 63, 47) == rekey.LosslessLayout("utvideo", "gbrap")  # a GIF


def test_frames_ut_video_cannot_hold_are_stored_in_ffv1():
    assert lossless_layout("yuv420p", 64, 48).codec == "utvideo" and lossless_layout("yuv444p", 63, 47).codec == "utvideo"
    assert lossless_layout("yuv420p", 64, 47).codec == lossless_layout("yuv422p", 63, 48).codec == "ffv1"


def test_a_palette_long_gop_after_a_short_one_is_re_keyed_with_its_palette(tmp_path):
    """QuickTime sends a pal8 codec's palette with the first packet only: the re-keying pass,
    starting at a later keyframe, decoded its GOP with no palette, every frame black."""
    source = palette_clip(tmp_path / "rle.mov", "msrle", frames=48, options={"g": "6"})
    path = with_keyframe_flags(source, tmp_path / "long.mov", lambda index, keyframe: keyframe and index < 12)
    plan, frames = cut_and_decode(path, SHORT)
    assert any(s.rekeyed and s.first_packet > 0 for s in plan.segments)
    assert_same_frames(frames, whole_decode(path))


def test_a_resumed_attempt_re_keys_only_the_segments_it_lacks_into_the_same_files(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", options={"x264-params": ONE_GOP})
    info = probe_video(path)
    plan = plan_segments(path, info, SHORT)
    first = dict((s.index, data) for s, data in extract_segments(path, info, plan.segments))
    missing = [s for s in plan.segments if s.rekeyed][2::3]
    again = dict((s.index, data) for s, data in extract_segments(path, info, missing))
    assert sorted(again) == [s.index for s in missing]
    assert all(again[i] == first[i] for i in again)


def test_a_cancel_stops_the_re_keying_pass(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", options={"x264-params": ONE_GOP})
    info = probe_video(path)
    plan = plan_segments(path, info, SHORT)
    stop = threading.Event()
    extracted = extract_segments(path, info, plan.segments, stop)
    next(extracted)
    stop.set()
    with pytest.raises(CanceledError):
        list(extracted)


def test_an_hour_in_one_gop_is_cut_into_bounded_segments_in_linear_time():
    # one keyframe for an hour (a surveillance or screen capture): 360 segments, where before
    # there were three and the last held 86,160 frames, decoded, upscaled and encoded on one replica
    frames = 3600 * 24
    entries = [PacketEntry(i, i, i == 0) for i in range(frames)]
    info = SimpleNamespace(average_rate=Fraction(24), time_base=Fraction(1, 24), pix_fmt="yuv420p", interlaced=False,
                           coded_width=1280, coded_height=720)
    start = time.perf_counter()
    segments = list(cut_packets(entries, info, Cutting(segment_s=10.0)))
    assert time.perf_counter() - start < 3.0
    assert max(len(s.pts) for s in segments) <= 240 and sum(len(s.pts) for s in segments) == frames
    assert [s.rekeyed for s in segments[:3]] == [False, False, True] and all(s.rekeyed for s in segments[2:])


def test_a_long_gop_trimmed_by_an_edit_list_re_keys_only_the_frames_it_shows(tmp_path):
    source = long_gop(tmp_path / "source.mp4", options={"x264-params": f"{ONE_GOP}:bframes=2"})
    path = trim_by_edit_list(source, tmp_path / "trimmed.mp4", frames=5)
    plan, frames = cut_and_decode(path, SHORT)
    assert sum(s.rekeyed for s in plan.segments) >= 3
    assert_same_frames(frames, whole_decode(path))
    assert len(frames) == 67


def test_a_re_keyed_segment_none_of_whose_frames_decode_fails_readably(tmp_path):
    path = long_gop(tmp_path / "clip.mp4", options={"x264-params": ONE_GOP})
    info = probe_video(path)
    plan = plan_segments(path, info, SHORT)
    lost = next(s for s in plan.segments if s.rekeyed)
    segments = [replace(s, pts=tuple(p + 1 for p in s.pts)) if s is lost else s for s in plan.segments]
    with pytest.raises(InputError, match=f"segment {lost.index} of the video holds no decodable frame"):
        list(extract_segments(path, info, segments))
