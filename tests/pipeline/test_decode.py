"""The decoder's 4:2:0 planes, handed to a model as they are (a GPU replica's input), against the
RGB the decoder's own swscale makes of them."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from tests.helpers import (intra_refresh_recording, plain_decode_stamps, SHARED, FRAME_NUM_ORDER_OPTIONS, cut_and_decode, frame_count, resized_mid_stream, two_video_streams_ts, cut_mid_gop, damaged_clip, damaged_raw_stream, intra_refresh_clip, make_clip,
                           mpeg2_back_to_back, opens_spied, spliced_encodes, raw_hevc_recording, raw_stream_ending_with, STRAY_NAL_UNITS, with_an_empty_video_pid, vp8_with_hidden_frames, with_frames_hidden, with_packets_damaged,
                           with_parameter_sets_apart, POC_STREAM_OPTIONS, joined_by_memory_reset, start_code_stream,
                           with_picture_order_rewritten, with_start_codes_damaged, with_unreferenced_pictures_dropped)
from tmlsr_ray.errors import InputError
from tmlsr_ray.models.yuv import SITINGS, Yuv420Frames
from tmlsr_ray.pipeline import damage as damage_stage
from tmlsr_ray.pipeline.damage import DamagedPackets
from tmlsr_ray.pipeline.decode import iter_batches, measured_siting, planar_layout
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.segment_plan import Cutting

VIDEOS = sorted(p.name for p in (SHARED / "media" / "video").glob("*")) if (SHARED / "media").is_dir() else []

# x264's chromaloc (the VUI's chroma_sample_loc_type) → where the decoder sites the chroma
CHROMALOC = {0: "left", 1: "center", 2: "topleft", 3: "top"}


def tagged_clip(path, rotation=0, **tags):
    """make_clip's frames (the noisy corner tells the sitings apart) with colour tags and a
    rotation set on the stream."""
    path = make_clip(path, frames=6, size=(96, 64), audio=False, options={"x264-params": "keyint=4"})
    if not (rotation or tags):
        return path
    out_path = path.with_name("tagged-" + path.name)
    with av.open(str(path)) as source, av.open(str(out_path), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        for name, value in tags.items():
            setattr(stream.codec_context, name, value)
        if rotation:
            stream.set_display_rotation(rotation)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    return out_path


def noise_frame_clip(path, chromaloc):
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10, options={"x264-params": f"chromaloc={chromaloc}", "qp": "0"})
        video.width, video.height, video.pix_fmt = 96, 64, "yuv420p"
        rng = np.random.default_rng(chromaloc)
        for _ in range(3):
            frame = av.VideoFrame.from_ndarray(rng.integers(16, 236, (96, 96), dtype=np.uint8), format="yuv420p")
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
    return path


@pytest.mark.parametrize("chromaloc", sorted(CHROMALOC))
def test_the_chroma_siting_is_measured_as_the_decoder_reads_it(tmp_path, chromaloc):
    path = noise_frame_clip(tmp_path / "c.mp4", chromaloc)
    info = probe_video(path)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    assert measured_siting(frame, planar_layout(info)) == SITINGS[CHROMALOC[chromaloc]]


def test_batches_that_start_on_a_flat_frame_are_rgb_until_one_tells_the_sitings_apart(tmp_path):
    """A fade from grey: the first batch's first frame cannot tell where the chroma is sited."""
    rng = np.random.default_rng(0)
    with av.open(str(tmp_path / "fade.mp4"), "w") as out:
        video = out.add_stream("libx264", rate=10, options={"qp": "0"})
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        for index in range(8):
            pixels = np.full((48, 64, 3), 90, np.uint8) if index < 4 else rng.integers(0, 256, (48, 64, 3), np.uint8)
            out.mux(video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")))
        out.mux(video.encode(None))
    info = probe_video(tmp_path / "fade.mp4")
    batches = list(iter_batches(tmp_path / "fade.mp4", info, 4, planes=planar_layout(info)))
    assert [type(b.frames) for b in batches] == [np.ndarray, Yuv420Frames]
    assert batches[0].frames.shape == (4, 48, 64, 3) and batches[1].frames.siting == SITINGS["left"]


@pytest.mark.parametrize("rotation", [0, 90, 270])
@pytest.mark.parametrize("tags", [{}, {"colorspace": 1, "color_range": 1}, {"colorspace": 5, "color_range": 2}])
def test_planes_for_the_model_become_the_rgb_the_decoder_makes(tmp_path, rotation, tags):
    path = tagged_clip(tmp_path / "t.mp4", rotation=rotation, **tags)
    info = probe_video(path)
    layout = planar_layout(info)
    planar = list(iter_batches(path, info, 4, planes=layout))
    rgb = list(iter_batches(path, info, 4))
    assert all(isinstance(b.frames, Yuv420Frames) for b in planar)
    assert [b.pts for b in planar] == [b.pts for b in rgb]
    for ours, theirs in zip(planar, rgb):
        assert ours.frames.size == theirs.frames.shape[1:3] == (info.height, info.width)
        off = np.abs(ours.frames.rgb().astype(int) - theirs.frames.astype(int))
        assert (off <= 1).mean() >= 0.999


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le", "yuv422p"])
def test_ten_bit_or_422_video_is_converted_by_the_decoder(tmp_path, pix_fmt):
    path = make_clip(tmp_path / "deep.mp4", audio=False, pix_fmt=pix_fmt)
    info = probe_video(path)
    assert planar_layout(info) is None
    assert isinstance(next(iter_batches(path, info, 4, planes=planar_layout(info))).frames, np.ndarray)


@pytest.mark.parametrize("pix_fmt,colorspace,color_range", [("yuvj420p", 1, 2), ("yuv420p", 6, 1)])
def test_a_frame_whose_range_or_matrix_changed_mid_stream_is_brought_into_the_streams(pix_fmt, colorspace,
                                                                                       color_range):
    """A concatenated clip whose second part is full range, or in another matrix."""
    from tmlsr_ray.models.yuv import Yuv420
    from tmlsr_ray.pipeline.decode import _in_layout, frame_to_rgb

    frame = changed_frame(pix_fmt, colorspace, color_range)
    layout = Yuv420("ITU709", False)
    got = Yuv420Frames(_in_layout(frame, layout, (48, 32)).to_ndarray()[None], layout).rgb()[0].astype(int)
    off = np.abs(got - frame_to_rgb(frame, "rgb24", 0).astype(int))
    # one more pass through 4:2:0 costs a level on average; planes read in the wrong range or
    # matrix are 7-8 levels off on average here (19-23 at most)
    assert off.mean() < 1.5 and off.max() <= 8


def test_a_frame_whose_size_changed_mid_stream_is_scaled_to_the_streams():
    from tmlsr_ray.models.yuv import Yuv420
    from tmlsr_ray.pipeline.decode import _in_layout

    converted = _in_layout(changed_frame("yuv420p", 1, 1), Yuv420("ITU709", False), (32, 24))
    assert (converted.width, converted.height) == (32, 24)


def test_rgb_batches_of_a_stream_whose_size_changes_hold_frames_of_its_size(tmp_path):
    # a broadcast's 64x48 ident, then its 96x64 programme: a batch holding both sizes failed
    # the task (numpy could not stack them) where the planes above were already scaled
    parts = [make_clip(tmp_path / f"{w}x{h}.m2v", size=(w, h), rate=25, audio=False, codec="mpeg2video",
                       container="mpeg2video", options={"g": "6"}) for w, h in [(64, 48), (96, 64)]]
    path = mpeg2_back_to_back(tmp_path / "broadcast.ts", parts)
    info = probe_video(path)
    shapes = {frame.shape for batch in iter_batches(path, info, 16) for frame in batch.frames}
    assert (info.width, info.height) == (64, 48) and shapes == {(48, 64, 3)}


def changed_frame(pix_fmt: str, colorspace: int, color_range: int):
    """A 48×32 frame of smooth colour (a round trip through 4:2:0 keeps it), in the given format,
    matrix and range."""
    y, x = np.mgrid[0:32, 0:48]
    rgb = np.stack([128 + 100 * np.sin(x / 9), 128 + 100 * np.cos(y / 7), 40 + 3 * x], -1).round().astype(np.uint8)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
        format=pix_fmt, dst_colorspace={1: "ITU709", 6: "ITU601"}[colorspace],
        dst_color_range="JPEG" if color_range == 2 else "MPEG")
    frame.colorspace, frame.color_range = colorspace, color_range
    return frame


@pytest.mark.parametrize("name", VIDEOS or [None])
def test_every_shared_clip_in_planes_becomes_the_rgb_the_decoder_makes(name):
    if name is None:
        pytest.skip("no shared media (../shared/media/video) on this machine")
    path = SHARED / "media" / "video" / name
    info = probe_video(path)
    layout = planar_layout(info)
    if layout is None:
        pytest.skip(f"{name}: {info.pix_fmt} frames are converted by the decoder either way")
    planar = 0
    for ours, theirs in zip(iter_batches(path, info, 8, planes=layout), iter_batches(path, info, 8)):
        assert ours.pts == theirs.pts
        if isinstance(ours.frames, Yuv420Frames):
            planar += 1
            assert np.abs(ours.frames.rgb().astype(int) - theirs.frames.astype(int)).max() <= 1
    assert planar > 0, "no batch went as planes"


def test_a_frame_the_decoder_cannot_read_fails_the_decode_saying_about_where_it_is(tmp_path):
    """It failed as 'video could not be decoded (Invalid data found when processing input)',
    which did not say where, nor that the rest of the video was whole."""
    path = damaged_clip(tmp_path, [20])  # shown at 0.79 s; a decoder's threads report it a few frames on
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about (\d\.\d\d) s is damaged "
                                         r"\(Invalid data found when processing input\); damaged_frames \"repeat\"") as caught:
        list(iter_batches(path, probe_video(path), 8))
    assert 0.79 <= float(caught.value.args[0].split("about ")[1].split(" s")[0]) < 1.5


def repeats(frames):
    """How many frames equal the one before (make_clip's own frames all differ)."""
    return sum(np.array_equal(a, b) for a, b in zip(frames, frames[1:]))


def decoded(path, damaged=None):
    """The whole stream decoded: its stamps and frames."""
    batches = list(iter_batches(path, probe_video(path, repeat_damaged=damaged is not None), 8, damaged=damaged))
    return [pts for b in batches for pts in b.pts], [frame for b in batches for frame in b.frames]


def test_frames_the_decoder_cannot_read_show_the_frame_before_in_their_place_and_are_counted_when_asked(tmp_path):
    """A whole stream's decode plans no frames for the segment's fill-in to keep: they were left
    out, 46 of the 48 frames out, each gap a frame long."""
    path = damaged_clip(tmp_path, [5, 20])
    damaged = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, damaged)
    assert (damaged.damaged, damaged.read, damaged.repeated) == (2, 48, 2)
    assert stamps == decoded(tmp_path / "in.mp4")[0] and repeats(frames) == 2


def test_a_whole_decode_that_hevc_left_short_without_a_word_fails_saying_where(tmp_path):
    """HEVC's decoder drops the GOP of a keyframe it cannot read without a word: 36 of the 48
    frames came out, no error; errors it conceals are told where a decode comes short."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False, codec="libx265",
                       options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [24], keep=6)  # the keyframe at 1.00 s
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.00 s is damaged"):
        decoded(path)


def test_a_whole_decode_that_hevc_left_short_without_a_word_shows_the_frame_before_in_place_of_each_lost_one(
        tmp_path):
    """Asked to repeat damaged frames, 36 of the 48 frames came out and none was counted: the
    decoder gives none of a damaged keyframe's GOP, and tells no error unless its concealed ones
    are told. Each of the GOP's 12 packets is counted, and stood in for at its own time."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False, codec="libx265",
                       options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [24], keep=6)  # the keyframe at 1.00 s
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    assert (len(frames), told.dropped, told.repeated) == (48, 12, 12)
    assert stamps == decoded(source)[0] and repeats(frames) == 12


def test_a_long_run_of_stand_ins_in_a_millisecond_time_base_leaves_every_later_frame_at_its_time(tmp_path):
    """A lost GOP of 60 at 60 fps in Matroska (1 ms ticks): each stand-in's time rounded from the
    one before ran 3 ms past the next frame, and the clock stamped every later frame 23 ms late
    (70 of 132 stamps off); measured from the frame stood in for, each is within the ms rounding."""
    source = make_clip(tmp_path / "in.mkv", frames=132, rate=60, audio=False, codec="libx265",
                       options={"x265-params": "keyint=60:min-keyint=60:bframes=2:log-level=none"})
    path = with_packets_damaged(source, tmp_path / "damaged.mkv", [60], keep=6)  # the keyframe at 1.00 s
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    source_stamps = decoded(source)[0]
    assert (len(frames), told.dropped, told.repeated) == (132, 60, 60)
    assert stamps[:60] + stamps[120:] == source_stamps[:60] + source_stamps[120:]
    assert all(abs(got - made) <= 1 for got, made in zip(stamps, source_stamps))


# a 24 fps Matroska HEVC video whose third GOP runs at 48 fps (B-frames, a GOP of 12)
VFR_PTS = ([round(n * 1000 / 24) for n in range(24)] + [1000 + round(n * 1000 / 48) for n in range(12)]
           + [1250 + round(n * 1000 / 24) for n in range(12)])


def variable_rate_hevc(tmp_path):
    return make_clip(tmp_path / "in.mkv", frames=48, rate=24, audio=False, codec="libx265", pts=VFR_PTS,
                     time_base=Fraction(1, 1000),
                     options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})


def test_a_gop_lost_in_a_variable_frame_rate_streams_faster_stretch_is_stood_in_for_at_its_own_times(tmp_path):
    """A 24 fps Matroska video whose third GOP runs at 48 fps: stepped at the average, 6 of the
    lost GOP's 12 stand-ins went in its gap and 6 after the video's end (to 1.96 s, past its last
    frame at 1.71 s)."""
    source = variable_rate_hevc(tmp_path)
    path = with_packets_damaged(source, tmp_path / "damaged.mkv", [24], keep=6)  # the keyframe at 1.00 s
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    assert (len(frames), told.dropped, told.repeated, repeats(frames)) == (48, 12, 12, 12)
    assert stamps == decoded(source)[0] == VFR_PTS


def test_a_gop_lost_at_the_end_of_a_variable_frame_rate_stream_is_stood_in_for_at_its_own_times(tmp_path):
    """Stepped at the stream's average from the 48 fps stretch's last frame (1.229 s), the lost last
    GOP's 12 stand-ins each fell half a frame off its own time (1.271 s for 1.250 s, ...)."""
    path = with_packets_damaged(variable_rate_hevc(tmp_path), tmp_path / "damaged.mkv", [36], keep=6)
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    assert (len(frames), told.dropped, told.repeated, repeats(frames)) == (48, 12, 12, 12)
    assert stamps == VFR_PTS


def test_a_gop_lost_at_the_start_of_a_timed_stream_is_counted_not_shown_after_the_videos_end(tmp_path):
    """Nothing can be stamped before the first frame: the lost first GOP's 12 stand-ins went after
    the video's end (1.75 s to 2.21 s, past its last frame at 1.71 s)."""
    path = with_packets_damaged(variable_rate_hevc(tmp_path), tmp_path / "damaged.mkv", [0], keep=6)
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    assert (len(frames), told.dropped, told.repeated) == (36, 12, 0)
    assert stamps == VFR_PTS[12:]


def test_a_whole_decode_that_hevc_left_no_frame_without_a_word_fails_saying_where_as_a_segments_does(tmp_path):
    """A decode that failed with no damage told (HEVC gives no frame of a GOP whose keyframe it
    cannot read) is decoded again with the errors its decoder conceals told: a segment's decode
    said where, a whole one only 'the video stream holds no decodable frame'."""
    source = make_clip(tmp_path / "in.mp4", frames=12, rate=24, audio=False, codec="libx265",
                       options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [0], keep=6)  # its only keyframe
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.00 s is damaged"):
        list(iter_batches(path, probe_video(source), 8))


# recordings started inside a GOP: HEVC in a TS, H.264 in Matroska, an open-GOP H.264 MP4
STARTED_INSIDE_A_GOP = [("ts", "libx265", {"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"}),
                        ("mkv", "libx264", {"x264-params": "keyint=12:bframes=3:b-pyramid=normal"}),
                        ("mp4", "libx264", {"x264-params": "keyint=12:bframes=3:open-gop=1"})]


@pytest.mark.parametrize("suffix, codec, options", STARTED_INSIDE_A_GOP)
def test_a_whole_decode_of_a_recording_started_inside_a_gop_gives_every_frame_from_its_first_keyframe(
        tmp_path, suffix, codec, options):
    """Its packets before the first keyframe (and HEVC's leading pictures after it, before it in
    time) decode to nothing without a word, and the decode came short of its packets: told the
    errors the decoder conceals (their references are missing), the check of that failed the good
    recording, 'a frame at about 0.00 s is damaged'."""
    source = make_clip(tmp_path / f"in.{suffix}", frames=60, rate=24, audio=False, codec=codec, options=options)
    path = cut_mid_gop(source, tmp_path / f"recording.{suffix}", packets=6)
    assert len(decoded(path)[0]) == len(from_first_keyframe(path))


def test_a_raw_hevc_recording_started_inside_an_open_gop_gives_every_frame_and_no_damage(tmp_path):
    """Its first keyframe's RASL pictures refer to pictures the recording has not, and a raw
    stream's packets carry no time that tells them for the keyframe's leading pictures: the good
    recording failed 'a frame at about 0.33 s is damaged', and with repeat (its decoder told the
    errors it conceals) gave 37 frames, one counted damaged, where a player gives 36."""
    path = raw_hevc_recording(tmp_path)
    with av.open(str(path)) as container:
        played = len(list(container.decode(video=0)))
    assert len(decoded(path)[1]) == played
    told = DamagedPackets(repeat=True)
    assert (len(decoded(path, told)[1]), told.damaged) == (played, 0)


def test_a_whole_decode_of_a_recording_started_inside_a_gop_is_not_decoded_again(tmp_path, monkeypatch):
    """It comes short by its packets before the first keyframe only: decoded twice again, on one
    thread, to find damage it has not (two of its three decodes)."""
    source = make_clip(tmp_path / "in.ts", frames=60, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=3:b-pyramid=normal"})
    path = cut_mid_gop(source, tmp_path / "recording.ts", packets=6)
    again = []
    told = damage_stage.damage_told_on_one_thread
    monkeypatch.setattr(damage_stage, "damage_told_on_one_thread", lambda *args: again.append(args) or told(*args))
    assert len(decoded(path)[0]) == len(from_first_keyframe(path)) and not again


def shown_stamps(path):
    """The times of the frames one thread decodes of the stream, as FFmpeg gives them."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "SLICE"
        return [frame.pts for frame in container.decode(stream)]


def test_a_whole_decode_of_a_vp8_stream_with_hidden_frames_is_not_decoded_again(tmp_path, monkeypatch):
    """Its hidden packets give no frame, and the decode came short of its packets: decoded twice
    again, on one thread, to find damage it has not (three decodes for every such video)."""
    path = vp8_with_hidden_frames(tmp_path)
    again = []
    told = damage_stage.damage_told_on_one_thread
    monkeypatch.setattr(damage_stage, "damage_told_on_one_thread", lambda *args: again.append(args) or told(*args))
    stamps, _ = decoded(path)
    assert len(stamps) == 45 and stamps == shown_stamps(path) and not again


@pytest.mark.parametrize("packet, seconds", [(20, r"0\.8\d"), (47, r"1\.9\d")])
def test_a_damaged_packet_of_a_vp8_stream_with_hidden_frames_fails_the_whole_decode_saying_where(
        tmp_path, packet, seconds):
    """Its hidden packets are not counted as damage, nor do they hide a damaged one (the last,
    drained by frame threads without a word)."""
    path = with_packets_damaged(vp8_with_hidden_frames(tmp_path), tmp_path / "damaged.webm", [packet], keep=3)
    with pytest.raises(InputError, match=rf"^video could not be decoded: a frame at about {seconds} s is damaged"):
        decoded(path)


def test_a_damaged_last_vp8_packet_whose_damage_cleared_its_show_bit_fails_the_whole_decode(tmp_path):
    """Frame threads drop a damaged packet among a decode's last without a word: its show bit
    cleared, it was counted a hidden frame, and the decode passed 47 of its 48 frames."""
    source = make_clip(tmp_path / "in.webm", frames=48, rate=24, audio=False, codec="libvpx")
    show_bit_cleared = with_frames_hidden(source, tmp_path / "hidden.webm", [47])
    path = with_packets_damaged(show_bit_cleared, tmp_path / "damaged.webm", [47], keep=1)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.9\d s is damaged"):
        decoded(path)


def from_first_keyframe(path):
    """The times of a stream's packets from its first keyframe on, in decode order and in time."""
    with av.open(str(path)) as container:
        packets = [(p.is_keyframe, p.pts) for p in container.demux(video=0) if p.size]
    first = next(at for at, (keyframe, _) in enumerate(packets) if keyframe)
    return [pts for _, pts in packets[first:] if pts >= packets[first][1]]


def test_a_damaged_keyframe_of_a_recording_started_inside_a_gop_fails_the_whole_decode_saying_where(tmp_path):
    """HEVC drops the damaged keyframe's GOP without a word; told the errors it conceals, the
    recording's first packets, whose references are missing, said 'at about 0.00 s'."""
    source = make_clip(tmp_path / "in.ts", frames=60, rate=24, audio=False, codec="libx265",
                       options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})
    recording = cut_mid_gop(source, tmp_path / "recording.ts", packets=6)
    with av.open(str(recording)) as container:
        stream = container.streams.video[0]
        keyframes = [(at, p.pts) for at, p in enumerate(p for p in container.demux(stream) if p.size) if p.is_keyframe]
        at, pts = keyframes[2]
        seconds = float((pts - stream.start_time) * stream.time_base)
    path = with_packets_damaged(recording, tmp_path / "damaged.ts", [at], keep=6)
    with pytest.raises(InputError, match=rf"^video could not be decoded: a frame at about {seconds:.2f} s is damaged"):
        decoded(path)


RAW_STREAMS = [(None, 5), ("mpegts", 11)]  # an MPEG-TS's packets start with an access unit delimiter


@pytest.mark.parametrize("container, keep", RAW_STREAMS)
def test_a_damaged_last_packet_fails_a_whole_decode_saying_where(tmp_path, container, keep):
    """Frame threads drained it without a word: 45 of the 48 frames came out, no error."""
    path = damaged_raw_stream(tmp_path, container, [47], keep)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.9\d s is damaged "
                                         r"\(Invalid data found when processing input\); damaged_frames \"repeat\""):
        decoded(path)


@pytest.mark.parametrize("container, keep", RAW_STREAMS)
def test_a_damaged_packet_of_a_whole_decode_is_told_at_its_own_frame(tmp_path, container, keep):
    """Frame threads told it on a frame a few packets on: the TS's packet 20, its frame at 0.79 s,
    said 0.96 s; a raw stream's packets carry no time, and it said none."""
    path = damaged_raw_stream(tmp_path, container, [20], keep)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.(79|83) s is damaged"):
        decoded(path)


@pytest.mark.parametrize("container, keep", RAW_STREAMS)
@pytest.mark.parametrize("damaged", [[47], [20, 21]])
def test_damaged_packets_of_a_whole_decode_show_the_frame_before_in_their_place_when_asked(
        tmp_path, container, keep, damaged):
    """The last packet damaged, frame threads drained 45 of the 48 frames, none counted; one
    inside, 47 came out, none repeated."""
    path = damaged_raw_stream(tmp_path, container, damaged, keep)
    told = DamagedPackets(repeat=True)
    stamps, frames = decoded(path, told)
    assert (told.damaged, told.repeated, len(frames)) == (len(damaged), len(damaged), 48)
    assert stamps == decoded(path.with_name("in" + path.suffix))[0] and repeats(frames) == len(damaged)


@pytest.mark.parametrize("damaged", [20, 30])
def test_a_raw_streams_damaged_frame_is_stood_in_for_at_its_place_in_decode_order(tmp_path, damaged):
    """A raw stream's frames carry no time to find a lost frame's place by: its stand-in went in as
    the loss was told, while the decoder and the reordering of times still held 6 frames shown
    before it (packet 20's at frame 14). It goes where the packet was decoded, within the B-frames'
    reordering (2 here) of where the frame showed."""
    path = damaged_raw_stream(tmp_path, None, [damaged], keep=5)
    _, frames = decoded(path, DamagedPackets(repeat=True))
    stand_ins = [index for index in range(1, len(frames)) if np.array_equal(frames[index], frames[index - 1])]
    assert len(stand_ins) == 1 and abs(stand_ins[0] - damaged) <= 2


@pytest.mark.parametrize("damaged", [[12, 13], [20, 21]])
def test_a_raw_streams_frames_lost_one_after_another_are_stood_in_for_one_after_another(tmp_path, damaged):
    """Two packets lost side by side in a raw stream: the second's stand-in went in after the
    frame that followed the first's (frames 20 and 22 for packets 20 and 21), that frame shown
    between two copies of the one before."""
    path = damaged_raw_stream(tmp_path, None, damaged, keep=5)
    _, frames = decoded(path, DamagedPackets(repeat=True))
    stand_ins = [index for index in range(1, len(frames)) if np.array_equal(frames[index], frames[index - 1])]
    assert len(stand_ins) == 2 and stand_ins[1] == stand_ins[0] + 1 and abs(stand_ins[0] - damaged[0]) <= 2


def start_code_damaged(tmp_path, container, packets, byte: int = 1):
    """The 48 frames' stream after start codes (raw or TS), the start codes of ``packets`` hit."""
    source = start_code_stream(tmp_path, container)
    return with_start_codes_damaged(source, tmp_path / f"damaged{source.suffix}", packets, byte)


@pytest.mark.parametrize("container, seconds", [(None, "0.75"), ("mpegts", "0.79")])
def test_a_picture_whose_start_code_is_damaged_fails_a_whole_decode_saying_where(tmp_path, container, seconds):
    """FFmpeg's parser ran the picture's bytes into a neighbour's packet: 47 packets, 47 frames
    out, no error, and the task completed a frame short."""
    with pytest.raises(InputError, match=rf"^video could not be decoded: 1 frame from about {seconds} s is missing"):
        decoded(start_code_damaged(tmp_path, container, [20]))


@pytest.mark.parametrize("container", [None, "mpegts"])
def test_a_picture_whose_start_code_is_damaged_is_stood_in_for_and_counted_when_asked(tmp_path, container):
    """47 frames came out, none counted, every frame after it a frame early against the sound."""
    told = DamagedPackets(repeat=True)
    _, frames = decoded(start_code_damaged(tmp_path, container, [20]), told)
    assert (told.read, len(frames), told.dropped, told.repeated) == (47, 48, 1, 1)
    assert repeats(frames) == 1


@pytest.mark.parametrize("container", [None, "mpegts"])
@pytest.mark.parametrize("options", [POC_STREAM_OPTIONS + ":slices=4", FRAME_NUM_ORDER_OPTIONS + ":slices=4:scenecut=0"],
                         ids=["count in the slice headers", "count from frame_num"])
def test_a_picture_whose_first_slices_start_code_is_damaged_is_given_and_not_stood_in_for(tmp_path, container, options):
    """The decoder gives the picture from its later slices: 48 frames. It was counted lacking: the
    whole decode failed ('1 frame ... is missing'), and with repeat 49 frames came out, one stood in
    for a picture that was there, every frame after it late."""
    source = start_code_stream(tmp_path, container, options)
    path = with_start_codes_damaged(source, tmp_path / f"damaged{source.suffix}", [22])
    assert passed_whole(path) == (48, 48, 0, 0)


def test_a_reference_picture_lost_without_a_trace_of_its_start_code_fails_a_whole_decode(tmp_path):
    """00 80 00 01 left no byte a NAL unit may not hold: the frame_num after tells it."""
    with pytest.raises(InputError, match=r"^video could not be decoded: 1 frame from about 0\.88 s is missing"):
        decoded(start_code_damaged(tmp_path, None, [22], byte=3))


@pytest.mark.parametrize("container, seconds", [(None, "0.83"), ("mpegts", "0.92")])
def test_a_picture_of_a_stream_without_b_frames_whose_start_code_is_damaged_fails_a_whole_decode_saying_where(
        tmp_path, container, seconds):
    """x264 without B-frames counts the order from frame_num (type 2), left unchecked: 47 frames
    out, no word. Every picture is a reference: the next one's frame_num skips."""
    source = start_code_stream(tmp_path, container, FRAME_NUM_ORDER_OPTIONS)
    path = with_start_codes_damaged(source, tmp_path / f"damaged{source.suffix}", [22])
    with pytest.raises(InputError, match=rf"^video could not be decoded: 1 frame from about {seconds} s is missing"):
        decoded(path)
    told = DamagedPackets(repeat=True)
    assert (len(decoded(path, told)[1]), told.dropped, told.repeated) == (48, 1, 1)


GOOD_SKIPPING_STREAMS = {
    "thinned of every unreferenced picture": (lambda source, path: with_unreferenced_pictures_dropped(source, path), 20),
    "thinned of every second unreferenced picture": (
        lambda source, path: with_unreferenced_pictures_dropped(source, path, every=2), 34),
    "counting capture time": (lambda source, path: with_picture_order_rewritten(
        source, path, lambda lsb: lsb + 2 * (lsb >= 14)), 48)}


@pytest.mark.parametrize("container", [None, "mpegts"])
@pytest.mark.parametrize("made, frames", GOOD_SKIPPING_STREAMS.values(), ids=GOOD_SKIPPING_STREAMS.keys())
def test_a_good_stream_whose_picture_order_skips_passes_whole(tmp_path, container, made, frames):
    """Trick play's thinned stream, a camera's whose count follows its clock: the old check failed
    them ('14 frames from about 0.08 s are missing'), or stood in for frames never there."""
    source = start_code_stream(tmp_path, container)
    path = made(source, tmp_path / f"good{source.suffix}")
    told = DamagedPackets(repeat=True)
    assert len(decoded(path)[1]) == frames
    assert (len(decoded(path, told)[1]), told.dropped, told.repeated) == (frames, 0, 0)


def test_a_stream_whose_count_starts_over_at_mmco_5_passes_whole(tmp_path):
    """The old check read the counts before and after MMCO 5 as one run, and failed it: 6 frames missing."""
    first, second = (start_code_stream(tmp_path, None, POC_STREAM_OPTIONS.replace("keyint=12", "keyint=100"), name,
                                       frames) for name, frames in (("first", 42), ("second", 48)))
    assert len(decoded(joined_by_memory_reset(first, second, tmp_path / "joined.h264", step=8))[1]) == 90


def passed_whole(path):
    """The frames a whole decode gives; with damaged frames repeated, those and how many were
    counted dropped and stood in for."""
    told = DamagedPackets(repeat=True)
    return len(decoded(path)[1]), len(decoded(path, told)[1]), told.dropped, told.repeated


# x264's encodes whose pictures the picture order check reads past more of: B-frames referred to
# (frame_num steps between them), weight tables and reference list changes before a picture's
# marking, a picture's later slices, 16 references; without B-frames, no count in the slice
# headers (type 2), frame_num alone read
GOOD_X264_ENCODES = {"B-pyramid": "keyint=24:bframes=3:b-pyramid=normal",
                     "strict B-pyramid": "keyint=24:bframes=3:b-pyramid=strict",
                     "weighted prediction": "keyint=24:bframes=2:weightp=2",
                     "four slices a picture": "keyint=12:bframes=2:slices=4",
                     "16 references": "keyint=48:bframes=3:ref=16",
                     "no B-frames": "keyint=12:bframes=0", "no B-frames, four slices a picture": "keyint=12:bframes=0:slices=4:scenecut=0",
                     "no B-frames, intra refresh": "intra-refresh=1:keyint=30:bframes=0"}


@pytest.mark.parametrize("container", [None, "mpegts"])
@pytest.mark.parametrize("options", GOOD_X264_ENCODES.values(), ids=GOOD_X264_ENCODES.keys())
def test_a_good_x264_stream_after_start_codes_passes_whole_no_frame_stood_in(tmp_path, container, options):
    path = start_code_stream(tmp_path, container, options)
    assert (frame_count(path), passed_whole(path)) == (48, (48, 48, 0, 0))


@pytest.mark.parametrize("container", [None, "mpegts"])
def test_a_good_stream_whose_size_changes_mid_stream_passes_whole_no_frame_stood_in(tmp_path, container):
    """Two encodes joined, 64x48 then 96x64: the second's frame_num and count start over at its
    IDR picture, after new parameter sets."""
    path = resized_mid_stream(tmp_path / ("in.ts" if container else "in.h264"), container)
    assert (frame_count(path), passed_whole(path)) == (48, (48, 48, 0, 0))


def test_a_good_ts_of_two_video_streams_passes_whole_its_other_streams_pictures_unread(tmp_path):
    """The decoded stream's pictures alone are read: the other's, of their own GOPs, read as one
    stream with them, skip 432 reference pictures' frame_num."""
    path = two_video_streams_ts(tmp_path / "in.ts")
    assert (frame_count(path), passed_whole(path)) == (48, (48, 48, 0, 0))


RAW_KEYFRAME = 23  # in decode order: the third GOP's, its frame at 0.96 s


@pytest.mark.parametrize("keep", [0, 5])  # its start code damaged too, or kept: no slice start code is left either way
def test_a_raw_streams_damaged_keyframe_whose_gop_the_decoder_drops_without_a_word_fails_saying_where(
        tmp_path, keep):
    """H.264's decoder gave no frame of the GOP and no error, even told the errors it conceals: 38
    of the 48 frames came out and the task completed."""
    path = damaged_raw_stream(tmp_path, None, [RAW_KEYFRAME], keep)
    with pytest.raises(InputError, match=r"^video could not be decoded: 9 frames from about 0\.96 s are missing"):
        decoded(path)


@pytest.mark.parametrize("keep, packets, dropped", [(5, 47, 9), (41, 48, 10)])
def test_a_raw_streams_gop_lost_without_a_word_is_stood_in_for_and_counted_when_asked(tmp_path, keep, packets,
                                                                                     dropped):
    """38 of the 48 frames came out, none counted (or only the keyframe, where its slice header was
    kept: 39). Where no slice start code was left, FFmpeg's parser ran the keyframe's packet into
    the next, and a raw stream's packets cannot tell it was two: 47 come out."""
    path = damaged_raw_stream(tmp_path, None, [RAW_KEYFRAME], keep)
    told = DamagedPackets(repeat=True)
    _, frames = decoded(path, told)
    assert (told.read, len(frames), told.dropped, told.repeated) == (packets, packets, dropped, dropped)


@pytest.mark.parametrize("suffix", ["mkv", "ts"])
def test_a_recording_started_inside_an_intra_refresh_stream_passes_though_its_recovery_point_gives_no_frame(
        tmp_path, suffix):
    """Started at a keyframe that is no IDR picture, the decoder gives no frame of it, with no
    word: a good recording failed as damaged ('1 frames are missing'), and with repeat counted one."""
    path = cut_mid_gop(intra_refresh_clip(tmp_path / f"in.{suffix}"), tmp_path / f"recording.{suffix}", packets=5)
    assert len(decoded(path)[1]) == 17
    told = DamagedPackets(repeat=True)
    decoded(path, told)
    assert (told.damaged, told.dropped) == (0, 0)


@pytest.mark.parametrize("repeat", [False, True], ids=["fail", "repeat"])
@pytest.mark.parametrize("suffix", ["mkv", "ts", "mp4"])
def test_a_recording_started_inside_an_intra_refresh_stream_with_b_frames_gives_the_frames_ffmpeg_gives(
        tmp_path, suffix, repeat):
    """Told the errors it conceals, the decoder refused the recovery point it started at (its
    B-frames refer past it): the good recording failed ('a frame at about 0.50 s is damaged'). The
    frames shown before its pictures are whole, which FFmpeg gives none of, are no damage."""
    path = intra_refresh_recording(tmp_path, suffix)
    told = DamagedPackets(repeat=True) if repeat else None
    stamps, _ = decoded(path, told)
    assert (len(stamps), stamps) == (28, plain_decode_stamps(path))
    assert told is None or (told.damaged, told.repeated) == (0, 0)


@pytest.mark.parametrize("codec, units", STRAY_NAL_UNITS.values(), ids=STRAY_NAL_UNITS.keys())
def test_a_raw_stream_ending_with_nal_units_of_no_picture_gives_every_frame_and_no_damage(tmp_path, codec, units):
    """FFmpeg's parser makes them a packet of their own, which its decoder refuses ('no frame!'):
    a stray access unit delimiter or SEI message after the last picture (H.264; parameter sets;
    HEVC's SEI) failed the good stream as 'a frame at about 2.00 s is damaged', and with repeat
    gave 49 frames, one counted damaged."""
    path = raw_stream_ending_with(tmp_path, units, codec)
    assert len(decoded(path)[1]) == 48
    told = DamagedPackets(repeat=True)
    _, frames = decoded(path, told)
    assert (len(frames), told.damaged, told.repeated) == (48, 0, 0)


@pytest.mark.parametrize("format, suffix", [("avi", "avi"), ("matroska", "mkv")])
def test_parameter_sets_stored_as_a_packet_of_their_own_reach_the_decoder(tmp_path, format, suffix):
    """An AVI may store a keyframe's parameter sets as a chunk of their own (a Matroska file too,
    NAL lengths before them): skipped as a packet of no picture, a splice's new ones (CAVLC to
    CABAC) never reached the decoder, and the good capture failed 'a frame at about 1.25 s is
    damaged' (Matroska: 0.00 s), with repeat 13 of its 48 frames counted damaged (Matroska: 34,
    and refused)."""
    source = spliced_encodes(tmp_path / "capture.ts", [(24, "keyint=12:cabac=0"), (24, "keyint=12:cabac=1")])
    path = with_parameter_sets_apart(source, tmp_path / f"capture.{suffix}", format)
    frames = decoded(path)[1]
    assert len(frames) == 48 and all(np.array_equal(a, b) for a, b in zip(frames, decoded(source)[1]))
    told = DamagedPackets(repeat=True)
    decoded(path, told)
    assert (told.read, told.damaged, told.frames) == (48, 0, 48)


def test_a_video_most_of_whose_frames_are_damaged_fails_even_when_damage_is_repeated(tmp_path):
    """FFmpeg's command line gives up past two thirds (its -max_error_rate)."""
    path = damaged_clip(tmp_path, list(range(2, 42)))
    with pytest.raises(InputError, match=r"^video could not be decoded: 40 of its 48 packets are damaged"):
        list(iter_batches(path, probe_video(path, repeat_damaged=True), 8, damaged=DamagedPackets(repeat=True)))


@pytest.mark.parametrize("lead_s", [8, 30])
def test_a_recording_whose_audio_runs_seconds_ahead_of_its_first_picture_is_read_whole(tmp_path, lead_s):
    """FFmpeg learns the streams from a file's first 5 s: a broadcast recording whose audio ran 8 s
    ahead of its picture was refused as "the video stream has no picture size (corrupt header)"."""
    rate = 12
    path = make_clip(tmp_path / "late-picture.ts", frames=24, rate=rate, container="mpegts", audio_s=lead_s + 2,
                     pts=[lead_s * rate + n for n in range(24)])
    info = probe_video(path)
    assert (info.width, info.height, len(info.audio)) == (64, 48, 1)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert len(frames) == 24 and len(plan.segments) == 4
    assert lead_s <= float(frames[0][0] * info.time_base) < lead_s + 0.1  # the picture starts where it did


def test_a_video_stream_with_no_picture_size_however_far_read_is_read_long_by_the_probe_alone(tmp_path, monkeypatch):
    """Each of a task's opens read it with the long probe (200 MB, 120 s) after the usual one:
    3 long reads to cut and decode it (one in each of a task's ~15 opens), where the long probe
    learnt nothing more."""
    path = with_an_empty_video_pid(tmp_path / "empty-pid.ts")
    opens = opens_spied(monkeypatch)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert len(frames) == 48 and len(plan.segments) == 4
    assert sum(opens) == 1 and len(opens) == 4  # the probe's, both ways; then the plan's, its check's, the cut's


def test_a_recording_whose_audio_runs_seconds_ahead_is_opened_with_the_long_probe_the_probe_chose(
        tmp_path, monkeypatch):
    """Each open after the probe opened it the usual way first, to find its picture size missing."""
    rate = 12
    path = make_clip(tmp_path / "late-picture.ts", frames=24, rate=rate, container="mpegts", audio_s=10,
                     pts=[8 * rate + n for n in range(24)])
    opens = opens_spied(monkeypatch)
    plan, frames = cut_and_decode(path, Cutting(segment_s=0.5))
    assert len(frames) == 24 and opens.count(False) == 1 and opens.count(True) == len(opens) - 1


