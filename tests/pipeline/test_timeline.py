"""Sources whose clock jumps (joined transport streams) made continuous before planning."""

from __future__ import annotations

import tracemalloc
from fractions import Fraction

import av
import pytest

from tests.helpers import (COVER_JPEG, LIVE_KINDS, SHORT_LIMITS, DemuxCount, live_source, packets_in, FONT_BYTES, anime_matroska, broadcast_with_bit_errors, cut_and_decode, joined_fragments, joined_recordings, long_capture,
                           make_clip, recording_with_audio_gap, with_audio_ahead, with_block_time_moved,
                           with_cluster_time_moved, with_flv_tag_time_moved, with_fragment_repeated, with_matroska_duration,
                           with_tfdt_moved)
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline import timeline
from tmlsr_ray.pipeline.container import open_container
from tmlsr_ray.pipeline.length import LengthLimits
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.segment_plan import Cutting
from tmlsr_ray.pipeline.segments import plan_segments
from tmlsr_ray.pipeline.timeline import _packet_times, continuous_source

RATE = 12
RESTARTS = {"at 0": (0, 0), "after 0, before the part before ended": (0, 1.0), "twice, three parts": (0, 0, 0)}
JUMPS = {"the same start twice": (0, 0), "ten minutes forward": (0, 600),
         "a minute and more back (read as the clock wrapping)": (100, 0)}


def stamps(path, kind: str):
    with av.open(str(path)) as container:
        stream = container.streams.get(**{kind: 0})[0]
        return sorted(float(p.pts * p.time_base) for p in container.demux(stream) if p.pts is not None)


def join_steps(video):
    """The step between frames within the parts, and the step at the join (after frame 24)."""
    steps = [b - a for a, b in zip(video, video[1:])]
    return steps[:23] + steps[24:], steps[23]


@pytest.mark.parametrize("starts", JUMPS.values(), ids=JUMPS.keys())
def test_a_jump_in_the_clock_is_closed_the_next_part_a_moment_after_the_last(tmp_path, starts):
    """A moment: where the first part's audio runs on past its video, the second part starts after
    that audio (its last frame shows that much longer), so each part keeps its own sync."""
    path = joined_recordings(tmp_path / "joined.ts", starts)
    repaired = continuous_source(path, tmp_path / "continuous.ts")
    assert repaired == tmp_path / "continuous.ts"
    video = stamps(repaired, "video")
    assert len(video) == 48
    within, join = join_steps(video)
    assert all(step == pytest.approx(1 / RATE, abs=0.002) for step in within)
    assert 1 / RATE - 0.002 <= join <= 1 / RATE + 0.25


@pytest.mark.parametrize("starts", JUMPS.values(), ids=JUMPS.keys())
def test_each_part_keeps_the_sync_of_its_audio_and_video_and_all_its_audio(tmp_path, starts):
    path = joined_recordings(tmp_path / "joined.ts", starts)
    part = tmp_path / "joined-part0.ts"
    lead = stamps(part, "audio")[0] - stamps(part, "video")[0]
    repaired = continuous_source(path, tmp_path / "continuous.ts")
    video, audio = stamps(repaired, "video"), stamps(repaired, "audio")
    assert len(audio) == 2 * len(stamps(part, "audio"))
    assert audio[len(audio) // 2] - video[24] == pytest.approx(lead, abs=0.002)
    assert all(b > a for a, b in zip(audio, audio[1:]))


def test_a_source_whose_clock_runs_on_is_used_as_it_is(tmp_path):
    for path in (make_clip(tmp_path / "plain.ts", container="mpegts"), make_clip(tmp_path / "plain.mp4"),
                 make_clip(tmp_path / "late.ts", container="mpegts", start_s=3600.0)):
        assert continuous_source(path, tmp_path / "continuous.ts") == path
        assert not (tmp_path / "continuous.ts").exists()


def test_only_a_transport_stream_is_copied_not_a_joined_program_stream_nor_a_matroska(tmp_path):
    """MPEG-PS may jump too, but its demuxer's video decode times step back here and there, which
    a copy had to move out of sync (see CLOSED_FORMATS); a Matroska's times are the file's own."""
    parts = [make_clip(tmp_path / f"p{n}.mpg", frames=24, codec="mpeg2video", audio_codec="mp2", container="mpeg")
             for n in range(2)]
    joined = tmp_path / "joined.mpg"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    for path in (joined, make_clip(tmp_path / "clip.mkv", container="matroska", frames=24)):
        assert continuous_source(path, tmp_path / "continuous") == path
        assert not (tmp_path / "continuous").exists()


def test_the_copy_keeps_each_stream_its_language(tmp_path):
    parts = [make_clip(tmp_path / f"p{n}.ts", container="mpegts", languages=("jpn", "eng"), frames=24)
             for n in range(2)]
    path = tmp_path / "joined.ts"
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    repaired = continuous_source(path, tmp_path / "continuous.ts")
    assert repaired != path
    with av.open(str(repaired)) as container:
        assert [s.language for s in container.streams.audio] == ["jpn", "eng"]
        assert Fraction(container.streams.video[0].average_rate) == RATE


@pytest.mark.parametrize("starts", [(0, 0), (100, 0)], ids=["the same start twice", "a jump back"])
def test_a_part_whose_audio_is_read_before_the_last_frame_of_the_part_before_keeps_its_sync(tmp_path, starts):
    """A recording's first audio often comes before its first video, and FFmpeg hands the last
    frame of the part before over only when the next video starts: that frame was moved with the
    next part, froze the picture for a part's length and left its audio out of place."""
    parts = [with_audio_ahead(make_clip(tmp_path / f"p{n}.ts", frames=24, rate=RATE, container="mpegts",
                                        options={"g": "6"}, start_s=start)) for n, start in enumerate(starts)]
    path = tmp_path / "joined.ts"
    path.write_bytes(b"".join(p.read_bytes() for p in parts))
    lead = stamps(parts[0], "audio")[0] - stamps(parts[0], "video")[0]
    repaired = continuous_source(path, tmp_path / "continuous.ts")
    video, audio = stamps(repaired, "video"), stamps(repaired, "audio")
    within, join = join_steps(video)
    assert all(step == pytest.approx(1 / RATE, abs=0.002) for step in within)
    assert 1 / RATE - 0.002 <= join <= 1 / RATE + 0.25
    assert audio[len(audio) // 2] - video[24] == pytest.approx(lead, abs=0.002)


def test_an_audio_dropout_while_the_video_runs_on_is_not_a_jump_in_the_clock(tmp_path):
    """Fifteen seconds without audio, the video running on: closed as a jump, every later sound
    came fifteen seconds early, out of sync for the rest of the recording."""
    path = recording_with_audio_gap(tmp_path / "dropout.ts", seconds=30, gap=(5, 20))
    assert continuous_source(path, tmp_path / "continuous.ts") == path


def test_a_packet_whose_time_a_bit_error_moved_hours_on_is_placed_by_its_neighbours(tmp_path):
    """One stray frame and one stray sound among regular neighbours, no jump: left in, the video
    froze for 6.6 hours and the output said it lasted 47,722 s."""
    clean = make_clip(tmp_path / "clean.ts", frames=48, rate=24, container="mpegts", options={"g": "12", "bf": "2"})
    path = broadcast_with_bit_errors(tmp_path / "flipped.ts")
    repaired = continuous_source(path, tmp_path / "continuous.ts")
    assert repaired == tmp_path / "continuous.ts"
    for kind in ("video", "audio"):
        assert stamps(repaired, kind) == pytest.approx(stamps(clean, kind), abs=0.001)


@pytest.mark.parametrize("codecs", [{"codec": "flv1"}, {"codec": "libx264", "audio_codec": "aac"}], ids=["flv1", "h264"])
@pytest.mark.parametrize("kind,index,milliseconds", [(9, 10, 3_000_000), (9, 20, -1_000_000), (8, 5, 3_000_000)],
                         ids=["a frame late", "a frame early", "a sound late"])
def test_an_flv_tag_whose_time_a_bit_error_moved_is_placed_by_its_neighbours(tmp_path, codecs, kind, index,
                                                                             milliseconds):
    """An FLV video tag's time 3,000 s late froze a 2 s clip's frame for 100 minutes (the TS
    copy's strays were mended, an FLV's not); FFmpeg takes no FLV clock to jump, nor does this."""
    clean = make_clip(tmp_path / "clean.flv", frames=48, rate=24, container="flv", **codecs)
    path = with_flv_tag_time_moved(clean, tmp_path / "stray.flv", kind, index, milliseconds)
    repaired = continuous_source(path, tmp_path / "continuous.flv")
    assert repaired == tmp_path / "continuous.flv"
    for stream_kind in ("video", "audio"):  # halfway between its neighbours: within FLV's 1 ms tick
        assert stamps(repaired, stream_kind) == pytest.approx(stamps(clean, stream_kind), abs=0.0015)
    assert continuous_source(clean, tmp_path / "again.flv") == clean


@pytest.mark.parametrize("kind,index", [(8, 1), (9, 0), (9, 47)], ids=["the first sound", "the first frame",
                                                                     "the last frame"])
def test_a_first_or_last_flv_tag_whose_time_a_bit_error_moved_goes_a_step_from_its_neighbours(tmp_path, kind, index):
    """With one neighbour it kept its time: a fuzzed FLV whose first sound tag said 37 days
    before the rest came out 3,221,227 s long."""
    clean = make_clip(tmp_path / "clean.flv", frames=48, rate=24, container="flv", codec="flv1")
    path = with_flv_tag_time_moved(clean, tmp_path / "stray.flv", kind, index, 3_000_000)  # sound tag 0: AAC's config
    repaired = continuous_source(path, tmp_path / "continuous.flv")
    assert repaired == tmp_path / "continuous.flv"
    for stream_kind in ("video", "audio"):
        assert stamps(repaired, stream_kind) == pytest.approx(stamps(clean, stream_kind), abs=0.0015)


def test_the_scan_of_a_long_capture_keeps_each_packets_times_in_a_few_dozen_bytes(tmp_path):
    """A record for each packet (a tuple of ints and a shared Fraction) took 233 bytes: 115 MiB
    held for the 515,520 packets of a 2-hour capture, on top of the decoder's and the model's."""
    path = long_capture(tmp_path / "capture.ts", seconds=120)
    with open_container(path) as source:
        tracemalloc.start()
        try:
            times = _packet_times(source)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    packets = sum(len(stream) for stream in times.values())
    assert packets > 8000 and held / packets < 48, f"{held:,} bytes for {packets:,} packets"
    with av.open(str(path)) as source:
        demuxed = [(n, p.pts, p.dts, p.duration) for n, p in enumerate(source.demux()) if p.stream.index == 0][:50]
    assert [(p.number, p.pts, p.dts, p.duration) for p in times[0][:50]] == demuxed


@pytest.mark.parametrize("starts", RESTARTS.values(), ids=RESTARTS.keys())
def test_a_fragmented_mp4_whose_fragment_times_restart_keeps_every_frame_its_times_running_on(tmp_path, starts):
    """FFmpeg's MP4 demuxer flagged discard the first fragment after each restart (read as one
    that overlaps the last): 12 of every 48 frames lost, without a word."""
    path = joined_fragments(tmp_path / "joined.mp4", starts)
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    assert repaired == tmp_path / "continuous.mp4"
    video = stamps(repaired, "video")
    assert len(video) == 48 * len(starts)
    steps = [b - a for a, b in zip(video, video[1:])]
    joins = steps[47::48]
    assert all(step == pytest.approx(1 / 24, abs=0.002) for n, step in enumerate(steps) if n % 48 != 47)
    assert all(1 / 24 - 0.002 <= join <= 1 / 24 + 0.25 for join in joins)
    with av.open(str(repaired)) as container:
        assert not any(packet.is_discard for packet in container.demux())
    with av.open(str(repaired)) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(video)


@pytest.mark.parametrize("starts", RESTARTS.values(), ids=RESTARTS.keys())
def test_each_part_of_a_fragmented_mp4_whose_times_restart_keeps_its_sync_and_all_its_audio(tmp_path, starts):
    path = joined_fragments(tmp_path / "joined.mp4", starts)
    part = tmp_path / "joined-part0.mp4"
    sounds = len(stamps(part, "audio"))
    lead = stamps(part, "audio")[0] - stamps(part, "video")[0]
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    video, audio = stamps(repaired, "video"), stamps(repaired, "audio")
    assert len(audio) == sounds * len(starts)
    assert all(b > a for a, b in zip(audio, audio[1:]))
    for n in range(len(starts)):
        assert audio[n * sounds] - video[n * 48] == pytest.approx(lead, abs=0.002)


def test_the_segments_of_a_fragmented_mp4_whose_times_restart_hold_every_frame_in_order(tmp_path):
    """Planned from the source, one segment held 84 of the 96 frames."""
    path = continuous_source(joined_fragments(tmp_path / "joined.mp4", (0, 0)), tmp_path / "continuous.mp4")
    plan, frames = cut_and_decode(path, Cutting(segment_s=1.0))
    shown = [pts for pts, _ in frames]
    assert len(frames) == 96 and len(plan.segments) > 1
    assert shown == sorted(shown) and len(set(shown)) == 96


@pytest.mark.parametrize("starts", [(0, 2.0), (0, 30.0)], ids=["running on", "a jump forward"])
def test_a_fragmented_mp4_whose_times_run_on_or_jump_forward_is_used_as_it_is(tmp_path, starts):
    """A jump forward in an MP4 is time the file states: FFmpeg loses no frame of it, nor shows it
    other than as stated."""
    path = joined_fragments(tmp_path / "joined.mp4", starts)
    assert continuous_source(path, tmp_path / "continuous.mp4") == path
    assert not (tmp_path / "continuous.mp4").exists()


def test_a_fragment_written_twice_is_no_restart_and_the_mp4_is_used_as_it_is(tmp_path):
    """A downloader's retry wrote one fragment twice: FFmpeg drops the second as the overlap it is,
    where the copy took it for a restart and showed its 12 frames twice (60 of 48)."""
    clip = make_clip(tmp_path / "clip.mp4", frames=48, rate=24, options={"g": "12", "bf": "2"},
                     container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    path = with_fragment_repeated(clip, tmp_path / "retried.mp4", 1)
    assert continuous_source(path, tmp_path / "continuous.mp4") == path
    with av.open(str(path)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 48


def test_a_fragmented_mp4_with_chapters_whose_times_restart_keeps_every_frame_and_each_parts_chapters(tmp_path):
    """The MP4 muxer refused the chapter track as packets: the copy failed and 12 of 48 frames were
    lost again; given the chapters as read, it squeezed the second part's into a millisecond each."""
    chapters = [(0, 1, "opening"), (1, 2, "closing")]
    path = joined_fragments(tmp_path / "joined.mp4", (0, 0), chapters=chapters)
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    assert repaired == tmp_path / "continuous.mp4"
    assert len(stamps(repaired, "video")) == 96
    with av.open(str(repaired)) as container:
        found = [(float(c["start"] * c["time_base"]), c["metadata"]["title"]) for c in container.chapters()]
    assert [title for _, title in found] == ["opening", "closing"] * 2
    assert [start for start, _ in found] == pytest.approx([0, 1, 2, 3], abs=0.25)


def test_a_fragment_written_twice_in_an_mp4_whose_times_restart_is_left_out_of_its_copy(tmp_path):
    """Its packets, passed to the copy at the times they repeat, failed the muxer (times back): the
    copy was given up and the restart's 12 frames lost (84 of 96)."""
    joined = joined_fragments(tmp_path / "joined.mp4", (0, 0))
    path = with_fragment_repeated(joined, tmp_path / "retried.mp4", 1)
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    assert repaired == tmp_path / "continuous.mp4"
    assert stamps(repaired, "video") == stamps(continuous_source(joined, tmp_path / "once.mp4"), "video")
    assert len(stamps(repaired, "audio")) == len(stamps(joined, "audio"))


def test_the_subtitles_of_a_fragmented_mp4_whose_times_restart_run_on_with_their_part(tmp_path):
    """The end of the first part's last cue, demuxed after the second part's first frame, took the
    jump with it and sat after the second part's cues: the MP4 muxer's guess at a cue's length
    came out below 0 and FFmpeg aborted the process (movenc.c: Assertion next_dts >= 0)."""
    cues = ((100, 500, "Plain words"), (600, 900, "More words"))
    path = joined_fragments(tmp_path / "joined.mp4", (0, 0), cues=cues)
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    video = stamps(repaired, "video")
    with av.open(str(repaired)) as container:
        shown = [float(p.pts * p.time_base) for p in container.demux(subtitles=0) if p.pts is not None and p.size > 2]
    moved = video[48] - video[0]  # how far the second part moved
    assert len(video) == 96
    assert shown == pytest.approx([0.1, 0.6, moved + 0.1, moved + 0.6], abs=0.01)


MATROSKA_CODING = {"B-frames": {"x264-params": "keyint=12:bframes=2:b-adapt=0"},
                   "no B-frames": {"x264-params": "keyint=12:bframes=0"}}
# A block's own time is 16-bit milliseconds from its cluster's: no bit error moves it more than 32 s
MATROSKA_STRAYS = {"a block 3 s late": (with_block_time_moved, 10, 3_000),
                   "a block 30 s late": (with_block_time_moved, 11, 30_000),
                   "a block 3 s early": (with_block_time_moved, 30, -3_000),
                   "a cluster an hour late": (with_cluster_time_moved, 1, 3_600_000),
                   "a cluster 3 s late": (with_cluster_time_moved, 2, 3_000),
                   "a block 1.5 s late": (with_block_time_moved, 10, 1_500)}


def matroska_clip(path, options):
    """48 frames at 24 fps with audio, from 70 s on (a cluster's time takes three bytes, room for an
    hour more), a cluster each half second."""
    return make_clip(path, frames=48, rate=24, container="matroska", options=options, start_s=70,
                     container_options={"cluster_time_limit": "500"})


@pytest.mark.parametrize("options", MATROSKA_CODING.values(), ids=MATROSKA_CODING.keys())
@pytest.mark.parametrize("moved,number,milliseconds", MATROSKA_STRAYS.values(), ids=MATROSKA_STRAYS.keys())
def test_a_matroska_block_or_cluster_whose_time_a_bit_error_moved_is_placed_by_its_neighbours(tmp_path, options,
                                                                                             moved, number,
                                                                                             milliseconds):
    """Planned as it was, the task failed saying the video's frame times go back (or, with repeat,
    the output lasted the hour); a Matroska's blocks state the time they show, so a B-frame's
    stands before the one decoded ahead of it, which is no stray."""
    clean = matroska_clip(tmp_path / "clean.mkv", options)
    path = moved(clean, tmp_path / "stray.mkv", number, milliseconds)
    repaired = continuous_source(path, tmp_path / "continuous.mkv")
    assert repaired == tmp_path / "continuous.mkv"
    for kind in ("video", "audio"):
        assert stamps(repaired, kind) == pytest.approx(stamps(clean, kind), abs=0.002)
    assert continuous_source(clean, tmp_path / "again.mkv") == clean


def test_a_matroska_cluster_longer_than_it_is_late_is_placed_by_its_neighbours(tmp_path):
    """A cluster of 2 s (a keyframe each 2 s: FFmpeg's and mkvmerge's clusters end at one) 3 s
    late: the frames after it start a second from its first, and it was taken for a gap and left,
    its frames' times going back 3 s; so was a block 1.5 s late."""
    clean = make_clip(tmp_path / "clean.mkv", frames=144, rate=24, container="matroska", start_s=70,
                      options={"x264-params": "keyint=48:bframes=2:b-adapt=0"},
                      container_options={"cluster_time_limit": "5000"})
    path = with_cluster_time_moved(clean, tmp_path / "stray.mkv", 1, 3_000)
    repaired = continuous_source(path, tmp_path / "continuous.mkv")
    assert repaired == tmp_path / "continuous.mkv"
    for kind in ("video", "audio"):
        assert stamps(repaired, kind) == pytest.approx(stamps(clean, kind), abs=0.002)


@pytest.mark.parametrize("options", MATROSKA_CODING.values(), ids=MATROSKA_CODING.keys())
def test_two_matroska_blocks_a_frame_apart_whose_times_a_burst_of_errors_moved_are_each_placed(tmp_path, options):
    """The second stray, among the packets after the first, was taken for the frames the first
    ran on to, and the packet between them stepped back from the first: neither was placed, and
    the frame times went back."""
    clean = matroska_clip(tmp_path / "clean.mkv", options)
    once = with_block_time_moved(clean, tmp_path / "once.mkv", 10, 3_000)
    path = with_block_time_moved(once, tmp_path / "stray.mkv", 13, 3_000)
    repaired = continuous_source(path, tmp_path / "continuous.mkv")
    assert repaired == tmp_path / "continuous.mkv"
    assert stamps(repaired, "video") == pytest.approx(stamps(clean, "video"), abs=0.002)


MATROSKA_CUT = {"H.264 with B-frames, a cluster an hour late": ("libx264", with_cluster_time_moved, 1, 3_600_000),
                "VP9, a block 4 s late": ("libvpx-vp9", with_block_time_moved, 10, 4_000)}


@pytest.mark.parametrize("codec,moved,number,milliseconds", MATROSKA_CUT.values(), ids=MATROSKA_CUT.keys())
def test_a_matroska_whose_time_a_bit_error_moved_is_cut_into_segments_holding_every_frame_in_order(tmp_path, codec,
                                                                                                moved, number,
                                                                                                milliseconds):
    """Cut as stored, the cluster's 12 frames came an hour after the rest (the output's frames
    spanned 3,602 s for 2), and the VP9 task failed saying its frame times go back."""
    clean = make_clip(tmp_path / "clean.mkv", frames=48, rate=24, codec=codec, container="matroska", start_s=70,
                      options=MATROSKA_CODING["B-frames"] if codec == "libx264" else {},
                      container_options={"cluster_time_limit": "500"})
    path = moved(clean, tmp_path / "stray.mkv", number, milliseconds)
    plan, frames = cut_and_decode(continuous_source(path, tmp_path / "continuous.mkv"), Cutting(segment_s=1.0))
    shown = [pts for pts, _ in frames]
    assert len(frames) == 48 and len(plan.segments) > 1
    assert shown == sorted(shown) and shown[-1] - shown[0] < 2_000  # milliseconds: Matroska's ticks


def test_a_matroska_block_under_a_second_late_is_placed_between_its_neighbours(tmp_path):
    """Block 40 of 48 (24 fps) 0.9 s late: a step under a second was taken for no stray, the plan
    fell to one untimed segment, and its output played 2.61 s with frame 40 after frame 47."""
    clean = make_clip(tmp_path / "clean.mkv", frames=48, rate=24, audio=False, codec="libvpx")
    path = with_block_time_moved(clean, tmp_path / "stray.mkv", 40, 900)
    plan, frames = cut_and_decode(continuous_source(path, tmp_path / "continuous.mkv"), Cutting(segment_s=1.0))
    assert len(plan.segments) > 1
    assert [pts / 1000 for pts, _ in frames] == pytest.approx(stamps(clean, "video"), abs=0.002)  # ms ticks


def test_a_matroska_whose_last_block_time_is_a_stray_is_placed_before_the_end_it_states(tmp_path):
    """2 s of video (its Duration 2 s) whose last block says 0.86 s late: left at 2.818 s (the
    frame before it held 0.9 s), its output played 2.86 s; placed after its neighbour, 2.0 s."""
    clean = make_clip(tmp_path / "clean.mkv", frames=48, rate=24, audio=False, codec="libvpx")
    path = with_block_time_moved(clean, tmp_path / "stray.mkv", 47, 860)
    plan, frames = cut_and_decode(continuous_source(path, tmp_path / "continuous.mkv"), Cutting(segment_s=1.0))
    shown = [pts for pts, _ in frames]
    assert [pts / 1000 for pts in shown] == pytest.approx(stamps(clean, "video"), abs=0.002)  # ms ticks
    assert (shown[-1] + plan.last_frame_ticks - shown[0]) / 1000 == pytest.approx(2.0, abs=0.002)


def test_a_matroska_whose_duration_is_short_of_its_frames_keeps_their_times(tmp_path):
    """A Duration a tool wrote from its own clock (5 s for 40 slides 2 s apart) is no stray: the
    frames past it are many, and do not fit before it."""
    slides = make_clip(tmp_path / "slides.webm", frames=40, audio=False, codec="libvpx", container="webm",
                       time_base=Fraction(1, 1000), pts=[2000 * n for n in range(40)])
    path = with_matroska_duration(slides, tmp_path / "short.webm", 5000.0)
    assert continuous_source(path, tmp_path / "continuous.webm") == path


def test_a_matroska_whose_times_run_on_with_b_frames_a_variable_rate_or_a_gap_is_used_as_it_is(tmp_path):
    """A gap every later packet keeps (a dropout, a still shown for seconds) is time the file
    states, nor does a B-frame shown before the frame decoded ahead of it stray."""
    variable = [0, 40, 80, 200, 240, 1000, 1040, 4000, 4040, 4080, 4120, 9000] + [9000 + 40 * n for n in range(1, 13)]
    for path in (matroska_clip(tmp_path / "b-frames.mkv", MATROSKA_CODING["B-frames"]),
                 make_clip(tmp_path / "variable.mkv", frames=24, container="matroska", time_base=Fraction(1, 1000),
                           pts=variable, options=MATROSKA_CODING["B-frames"]),
                 make_clip(tmp_path / "gap.mkv", frames=24, container="matroska", time_base=Fraction(1, 1000),
                           pts=[n * 83 + (20_000 if n >= 12 else 0) for n in range(24)]),
                 recording_with_audio_gap(tmp_path / "dropout.mkv", seconds=30, gap=(5, 20), container="matroska")):
        assert continuous_source(path, tmp_path / "continuous.mkv") == path, path.name
        assert not (tmp_path / "continuous.mkv").exists()


def test_the_copy_of_a_matroska_with_a_stray_block_keeps_its_chapters_subtitles_font_and_cover(tmp_path):
    """The copy lost the chapters, and wrote the cover picture as a video track of one frame."""
    clean = anime_matroska(tmp_path / "anime.mkv", frames=48, rate=24)
    path = with_block_time_moved(clean, tmp_path / "stray.mkv", 12, 3_000)
    repaired = continuous_source(path, tmp_path / "continuous.mkv")
    assert repaired == tmp_path / "continuous.mkv"

    def kept(mkv):
        with av.open(str(mkv)) as container:
            streams = [(s.type, int(s.disposition), s.metadata.get("filename")) for s in container.streams]
            chapters = [chapter["metadata"]["title"] for chapter in container.chapters()]
            font = bytes(container.streams.attachments[0].data)
            cover = next(bytes(p) for p in container.demux(video=1) if p.size)
        with av.open(str(mkv)) as container:
            cues = sum(1 for p in container.demux(subtitles=0) if p.size)
        return streams, chapters, font, cover, cues

    assert kept(repaired) == kept(clean)
    assert kept(repaired)[2:4] == (FONT_BYTES, COVER_JPEG)


@pytest.mark.parametrize("number", [2, 5, 8], ids=["a video fragment", "a sound fragment", "a later video fragment"])
def test_a_fragment_of_an_mp4_whose_stated_time_a_bit_error_moved_hours_on_is_placed_by_its_neighbours(tmp_path, number):
    """Its tfdt 12 h on, the fragment after it stepped back: closed as a restart, every later frame
    went 12 h on with it and the output's frames spanned 43,202 s for 2."""
    clean = make_clip(tmp_path / "clean.mp4", frames=48, rate=24, options={"g": "12", "bf": "2"},
                      container_options={"movflags": "frag_keyframe+empty_moov+default_base_moof"})
    path = with_tfdt_moved(clean, tmp_path / "stray.mp4", number, 12 * 3600)
    repaired = continuous_source(path, tmp_path / "continuous.mp4")
    assert repaired == tmp_path / "continuous.mp4"
    for kind in ("video", "audio"):
        assert stamps(repaired, kind) == pytest.approx(stamps(clean, kind), abs=0.002)


def test_a_matroska_whose_lone_frame_between_two_stills_is_decoded_ahead_of_its_b_frames_is_used_as_it_is(tmp_path):
    """A screen recording's frame after a 10 s still, shown alone before 10 s more of it, is
    decoded ahead of the B-frames before the still, and the frames after it show 10 s later: it
    stands 10 s from its decode neighbours but three frames from its place, as a B-frame does. Taken
    for a block 10 s late, it was moved to 0.28 s (or the copy failed)."""
    stills = [n * 33 for n in range(8)] + [10_000] + [20_000 + n * 33 for n in range(15)]
    path = make_clip(tmp_path / "stills.mkv", frames=24, container="matroska", time_base=Fraction(1, 1000),
                     pts=stills, options={"x264-params": "keyint=250:bframes=3:b-adapt=0:scenecut=0"})
    with av.open(str(path)) as container:
        decoded = [packet.pts for packet in container.demux(video=0) if packet.pts is not None]
    assert decoded.index(10_000) < decoded.index(231)  # decoded ahead of the B-frames before the still
    assert continuous_source(path, tmp_path / "continuous.mkv") == path
    assert not (tmp_path / "continuous.mkv").exists()


@pytest.mark.parametrize("kind", LIVE_KINDS)
@pytest.mark.parametrize("limits,refusal", SHORT_LIMITS.values(), ids=SHORT_LIMITS.keys())
def test_a_recording_over_the_length_limit_is_refused_without_its_scan_reading_the_rest(tmp_path, monkeypatch,
                                                                                         kind, limits, refusal):
    """A live recording states no length: its packets were read whole (minutes of a multi-GB one)
    before the limits saw it."""
    path = live_source(tmp_path, kind)
    read = DemuxCount(monkeypatch, timeline)
    with pytest.raises(InputError, match=refusal):
        continuous_source(path, tmp_path / "continuous", limits)
    assert read.packets < packets_in(path) / 4


@pytest.mark.parametrize("starts", JUMPS.values(), ids=JUMPS.keys())
def test_a_jump_of_the_clock_is_no_length_to_the_scans_limits(tmp_path, starts):
    """Two parts of 2 s, however far apart their clocks (a restart, ten minutes on, a wrap of the
    clock): the copy, 4 s long, is what is measured and refused."""
    path = joined_recordings(tmp_path / "joined.ts", starts)
    enough, short = LengthLimits(500_000, 4.5), LengthLimits(500_000, 3.0)
    repaired = continuous_source(path, tmp_path / "continuous.ts", enough, probe_video(path).stream_index)
    plan_segments(repaired, probe_video(repaired), Cutting(), limits=enough)
    with pytest.raises(InputError, match="video lasts longer than the limit of 3 s"):
        plan_segments(repaired, probe_video(repaired), Cutting(), limits=short)


def test_a_fragment_written_twice_or_a_stray_time_is_no_length_to_the_scans_limits(tmp_path):
    """48 frames in 2 s, a fragment of them read twice or one read 3 hours on: still 48 frames in 2 s."""
    clean = joined_fragments(tmp_path / "clean.mp4", (0,))
    twice = with_fragment_repeated(clean, tmp_path / "twice.mp4", 1)
    stray = with_tfdt_moved(clean, tmp_path / "stray.mp4", 2, 3 * 3600)
    for path in (twice, stray):
        continuous_source(path, tmp_path / f"continuous-{path.name}", LengthLimits(48, 2.0))
