"""One segment on a replica, without Ray: batches, SeedVR2's overlap inside the segment, the piece."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest

from tests.helpers import damaged_raw_stream, first_keyframe_wiped, make_clip, with_packets_damaged
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.damage import refuse_mostly_damaged
from tmlsr_ray.pipeline.encode import EncodeOptions
from tmlsr_ray.pipeline.probe import probe_video
from tmlsr_ray.pipeline.render import SEED_STRIDE, MissingFrames, SegmentJob, render_segment
from tmlsr_ray.pipeline.segment_plan import Cutting
from tmlsr_ray.pipeline.segments import extract_segments, plan_segments, planned_info


def nearest_x2(batch):
    return np.stack([cv2.resize(f, None, fx=2, fy=2, interpolation=cv2.INTER_NEAREST) for f in batch.frames])


def segments_of(tmp_path, frames=20, rate=10, segment_s=1.0):
    path = make_clip(tmp_path / "c.mp4", frames=frames, rate=rate, audio=False, options={"x264-params": "keyint=5"})
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=segment_s))
    return info, list(extract_segments(path, info, plan.segments))


def test_overlapping_batches_stay_inside_their_segment_and_meet_the_next_at_a_plain_cut(tmp_path):
    info, extracted = segments_of(tmp_path)
    assert len(extracted) == 2
    seen = []

    def recording(batch):
        seen.append((batch.index, list(batch.pts)))
        return nearest_x2(batch)

    for segment, data in extracted:
        job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast"), batch_frames=5, overlap=2, seed=7)
        seen.clear()
        items = list(render_segment(job, data, recording))
        stamps = [pts for _, batch in seen for pts in batch]
        assert set(stamps) == set(segment.pts), "a batch took a frame of another segment"
        assert seen[1][1][:2] == seen[0][1][-2:], "consecutive batches share the overlap frames"
        encoded, piece = items[-1]
        assert sum(items[:-1]) == piece.frames == len(segment.pts)
        assert piece.first_pts == segment.pts[0] and piece.index == segment.index
        with av.open(io.BytesIO(encoded)) as container:
            assert len(list(container.decode(video=0))) == len(segment.pts)


def test_each_batch_gets_its_own_seed_the_same_on_any_replica(tmp_path):
    info, extracted = segments_of(tmp_path)
    (first, _), (second, _) = extracted
    options = EncodeOptions(preset="ultrafast")
    job = SegmentJob(second, info, (128, 96), options, batch_frames=5, seed=42)
    from tmlsr_ray.pipeline.decode import FrameBatch

    batch = FrameBatch(3, np.zeros((1, 2, 2, 3), np.uint8), [0])
    assert job.batch_seed(batch) == 42 + SEED_STRIDE + 3
    assert SegmentJob(first, info, (128, 96), options, batch_frames=5).batch_seed(batch) is None


def test_a_segment_upscaled_into_the_encoders_planes_encodes_the_frames_of_the_rgb_path(tmp_path):
    """What a GPU replica hands the encoder (4:2:0 planes converted where the model ran) makes the
    same piece as RGB frames converted by the encoder's swscale, within a level (lossless x264)."""
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2, weight_scale=0.05), device="cpu")
    info, extracted = segments_of(tmp_path, frames=10)
    segment, data = extracted[0]
    job = SegmentJob(segment, info, (120, 90), EncodeOptions(preset="ultrafast", crf=0), batch_frames=4)
    assert job.yuv420.bits == 8 and job.yuv420.matrix == "ITU601"  # the clip is untagged
    decoded = []
    for convert in (None, job.yuv420):
        items = list(render_segment(job, data, lambda batch: model.upscale_samples(batch.frames, job.target, convert)))
        with av.open(io.BytesIO(items[-1][0])) as container:
            decoded.append(np.stack([f.to_ndarray() for f in container.decode(video=0)]).astype(int))
    assert decoded[0].shape == decoded[1].shape == (len(segment.pts), 135, 120)
    assert np.abs(decoded[0] - decoded[1]).max() <= 1


def test_a_prores_segment_hands_the_model_rgb_and_encodes_a_quicktime_piece_of_422_hq(tmp_path):
    """ProRes is 4:2:2: a GPU replica's 4:2:0 planes would not fit its encoder, so the model hands
    RGB frames; MP4 holds no ProRes, so its piece is QuickTime."""
    info, extracted = segments_of(tmp_path, frames=10)
    segment, data = extracted[0]
    job = SegmentJob(segment, info, (120, 90), EncodeOptions("prores_ks"), batch_frames=4)
    assert job.yuv420 is None
    items = list(render_segment(job, data, lambda batch: np.repeat(np.repeat(batch.frames, 2, 1), 2, 2)[:, :90, :120]))
    with av.open(io.BytesIO(items[-1][0])) as container:
        stream = container.streams.video[0]
        assert container.format.name.startswith("mov") and stream.codec_context.name == "prores"
        assert (stream.codec_context.pix_fmt, stream.codec_context.profile) == ("yuv422p10le", "HQ")
        assert sum(1 for _ in container.decode(stream)) == len(segment.pts) == items[-1][1].frames


def test_a_segment_decoded_into_planes_for_the_model_encodes_the_frames_of_the_rgb_path(tmp_path):
    """What a GPU replica asks the decoder for (its 4:2:0 planes, made RGB where the model runs)
    makes the same piece as the decoder's RGB, within the conversions' level (lossless x264)."""
    from tests.helpers import save_srvgg
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.models.yuv import Yuv420Frames

    model = RealESRGANModel(save_srvgg(tmp_path / "m.pth", scale=2, weight_scale=0.05), device="cpu")
    info, extracted = segments_of(tmp_path, frames=10)
    segment, data = extracted[0]
    decoded, kinds = [], []

    def upscale(batch):
        kinds.append(type(batch.frames))
        return model.upscale_samples(batch.frames, (120, 90))

    for planes_in in (False, True):
        job = SegmentJob(segment, info, (120, 90), EncodeOptions(preset="ultrafast", crf=0), batch_frames=4,
                         planes_in=planes_in)
        items = list(render_segment(job, data, upscale))
        with av.open(io.BytesIO(items[-1][0])) as container:
            decoded.append(np.stack([f.to_ndarray() for f in container.decode(video=0)]).astype(int))
    assert kinds[0] is np.ndarray and kinds[-1] is Yuv420Frames
    assert decoded[0].shape == decoded[1].shape == (len(segment.pts), 135, 120)
    off = np.abs(decoded[0] - decoded[1])
    assert off.max() <= 2 and (off > 0).mean() < 0.05


def test_a_tone_map_or_a_cross_fade_keeps_the_decoders_rgb(tmp_path):
    info, extracted = segments_of(tmp_path, frames=10)
    segment = extracted[0][0]
    options = EncodeOptions(preset="ultrafast")
    assert SegmentJob(segment, info, (128, 96), options, 4, planes_in=True).input_planes is not None
    assert SegmentJob(segment, info, (128, 96), options, 4, planes_in=True, tone_map=True).input_planes is None
    assert SegmentJob(segment, info, (128, 96), options, 4, overlap=2, planes_in=True).input_planes is None


def test_frames_a_segment_planned_and_the_decoder_did_not_give_are_the_frame_before():
    missing = MissingFrames([0, 10, 20, 30, 40, 50, 60])
    frames, pts = missing.fill(np.array([[1], [3]]), [10, 30])  # 0 and 20 not given
    assert (frames.ravel().tolist(), pts) == ([1, 1, 1, 3], [0, 10, 20, 30])
    frames, pts = missing.fill(np.array([[5]]), [50])
    assert (frames.ravel().tolist(), pts) == ([3, 5], [40, 50])
    frames, pts = missing.flush()
    assert (frames.ravel().tolist(), pts, missing.repeated) == ([5], [60], 4)
    untouched = np.array([[7], [8]])
    assert MissingFrames([]).fill(untouched, [3, 4])[0] is untouched


def test_a_frame_the_decoder_gives_after_later_ones_keeps_the_repeat_in_its_place():
    """After a damaged keyframe H.264's reorder buffer gave a frame after a later one (0.92 s after
    1.38 s), and the segment failed: 'the video's frame times go back or repeat'."""
    missing = MissingFrames([0, 10, 20, 30])
    frames, pts = missing.fill(np.array([[1], [4], [3]]), [0, 30, 20])
    assert (frames.ravel().tolist(), pts, missing.repeated) == ([1, 1, 1, 4], [0, 10, 20, 30], 2)
    assert missing.fill(np.array([[2]]), [10])[1] == [] and missing.flush()[1] == []


def test_damaged_frames_repeated_keep_every_segments_frame_count_and_times(tmp_path):
    """A bit error in one frame failed the whole task after the model had worked on every frame
    before it; asked to, each damaged frame's place shows the frame before (lossless here, so a
    repeat is exact)."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [5, 20])
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    info = planned_info(info, plan)
    repeated = damaged = 0
    for segment, data in extract_segments(path, info, plan.segments):
        job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast", crf=0), batch_frames=5,
                         repeat_damaged=True)
        encoded, piece = list(render_segment(job, data, nearest_x2))[-1]
        with av.open(io.BytesIO(encoded)) as container:
            shown = [(frame.pts, frame.to_ndarray(format="rgb24")) for frame in container.decode(video=0)]
        assert piece.frames == len(shown) == len(segment.pts)
        repeats = [at for at in range(1, len(shown)) if np.array_equal(shown[at][1], shown[at - 1][1])]
        assert len(repeats) == piece.repeated_frames  # the clip's own frames all differ
        repeated, damaged = repeated + piece.repeated_frames, damaged + piece.damaged_packets
    assert damaged == 2 and repeated >= 2


def rendered_with_damage_repeated(path, cutting, max_preroll=Cutting.max_preroll_frames):
    """Each piece of the damaged video cut and rendered with damaged_frames "repeat" (lossless, so
    a repeat is exact), by index, and its frames as decoded from its bytes."""
    info = probe_video(path, repeat_damaged=True)  # as the runner probes such a task
    plan = plan_segments(path, info, cutting)
    info = planned_info(info, plan)
    pieces, frames = {}, {}
    for segment, data in extract_segments(path, info, plan.segments, repeat_damaged=True, max_preroll=max_preroll):
        job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast", crf=0), batch_frames=5,
                         repeat_damaged=True)
        encoded, pieces[segment.index] = list(render_segment(job, data, nearest_x2))[-1]
        with av.open(io.BytesIO(encoded)) as container:
            frames[segment.index] = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return plan, [pieces[index] for index in sorted(pieces)], [frames[index] for index in sorted(frames)]


def test_a_damaged_frame_in_a_re_keyed_long_gop_fails_saying_where_or_is_repeated_when_asked(tmp_path):
    """The cutting pass decodes a long GOP to re-key it, and a damaged frame there failed the task
    as 'video could not be decoded (Invalid data found when processing input)', with
    damaged_frames "repeat" too."""
    source = make_clip(tmp_path / "screen.mp4", frames=72, rate=24, audio=False,
                       options={"x264-params": "keyint=1000:min-keyint=1000:scenecut=0:bframes=2"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [30])
    cutting = Cutting(segment_s=0.25, max_preroll_frames=8)
    plan, pieces, _ = rendered_with_damage_repeated(path, cutting)
    assert sum(s.rekeyed for s in plan.segments) >= 3
    assert sum(p.frames for p in pieces) == 72 and sum(p.damaged_packets for p in pieces) == 1
    assert sum(p.repeated_frames for p in pieces) >= 1
    info = probe_video(path)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.\d\d s is damaged"):
        list(extract_segments(path, info, plan_segments(path, info, cutting).segments))


def test_a_damaged_packet_two_segments_decode_is_counted_once(tmp_path):
    """Cut inside a GOP, the next segment decodes the packets before its cut again as pre-roll:
    2 damaged packets were reported as damaged_packets_dropped 4."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [2, 3])
    plan, pieces, _ = rendered_with_damage_repeated(path, Cutting(segment_s=0.25, max_preroll_frames=8))
    assert sum(p.frames for p in pieces) == 48 and sum(p.damaged_packets for p in pieces) == 2


def test_a_burst_of_damage_over_most_of_one_segment_is_repeated_where_most_of_the_video_is_whole(tmp_path):
    """FFmpeg's -max_error_rate counts over the whole video: judged per segment, 9 damaged
    packets of a 0.5 s segment failed the task though 39 of its 48 frames were whole (a burst of
    seconds in a 2-hour recording failed it the same way)."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", list(range(24, 33)))
    plan, pieces, _ = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert sum(p.frames for p in pieces) == 48 and sum(p.damaged_packets for p in pieces) == 9
    refuse_mostly_damaged(9, plan.frames)
    with pytest.raises(InputError, match=r"^video could not be decoded: 33 of its 48 packets are damaged"):
        refuse_mostly_damaged(33, plan.frames)


def test_a_damaged_last_frame_of_a_two_frame_segment_shows_the_frame_before(tmp_path):
    """The frame-threaded decoder dropped the whole frame before along with the damaged one, and
    the segment, left no frame to repeat, failed the task: '1 of its 2 packets are damaged'."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [47])  # the last GOP: 2 frames
    plan, pieces, _ = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert len(plan.segments[-1].pts) == 2
    assert [p.frames for p in pieces][-1] == 2 and pieces[-1].damaged_packets == 1
    assert sum(p.frames for p in pieces) == 48


def test_a_damaged_keyframe_shows_the_frame_before_over_its_gop(tmp_path):
    """The decoder drops a damaged keyframe's GOP and then gave its frames out of order, which
    failed the task ('frame times go back')."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [23], keep=5)  # the keyframe at 0.96 s
    _, pieces, _ = rendered_with_damage_repeated(path, Cutting())
    assert [(p.frames, p.damaged_packets) for p in pieces] == [(48, 1)] and pieces[0].repeated_frames >= 10


def test_a_segment_cut_at_a_damaged_keyframe_shows_the_last_frame_of_the_gop_before_over_its_gop(tmp_path):
    """Cut at a damaged keyframe, a segment had no frame to show in place of its GOP's and failed
    the task ('no frame of the 11 packets around it could be read'); a player shows the frame
    before, the GOP before's last, decoded now at the segment file's start. Where that GOP is
    longer than a pre-roll may be (or there is none: the video's first segment), it still fails
    saying so."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [23], keep=5)  # the keyframe at 0.96 s
    plan, pieces, frames = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert [p.frames for p in pieces] == [len(s.pts) for s in plan.segments] and sum(p.frames for p in pieces) == 48
    assert [p.first_pts for p in pieces] == [s.pts[0] for s in plan.segments]
    damaged = next(index for index, segment in enumerate(plan.segments) if segment.first_packet == 23)
    assert (pieces[damaged].damaged_packets, pieces[damaged].repeated_frames) == (1, len(plan.segments[damaged].pts))
    last_before = frames[damaged - 1][-1]
    assert all(np.array_equal(frame, last_before) for frame in frames[damaged])
    assert not np.array_equal(frames[damaged - 1][-2], last_before)  # the clip's own frames all differ
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about \d\.\d\d s is damaged "
                                         r"\(Invalid data found when processing input\), and no frame of the 11 packets"):
        rendered_with_damage_repeated(path, Cutting(segment_s=0.5), max_preroll=11)  # the GOP before is 12


def test_a_whole_streams_damaged_frames_are_repeated_and_counted_in_its_piece(tmp_path):
    """A raw H.264 stream is decoded whole, which plans no frames to fill in: its damaged last
    packet came out 45 of 48 frames, none counted."""
    path = damaged_raw_stream(tmp_path, None, [47], keep=5)
    plan, pieces, frames = rendered_with_damage_repeated(path, Cutting())
    assert plan.whole and [(p.frames, p.damaged_packets, p.repeated_frames) for p in pieces] == [(48, 1, 1)]
    assert sum(np.array_equal(a, b) for a, b in zip(frames[0], frames[0][1:])) == 1


def test_segments_cut_at_two_damaged_keyframes_in_a_row_show_the_last_frame_of_the_gop_before_both(tmp_path):
    """The GOP before the second damaged keyframe gives no frame, its own keyframe damaged: the
    segment cut there failed the task ('no frame of the 23 packets around it could be read'). It
    walks back to the GOP before that, within a pre-roll's length (GOPs of 12 here); past it, it
    still fails saying so."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [11, 23], keep=5)  # keyframes at 0.46, 0.96 s
    plan, pieces, frames = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert [p.frames for p in pieces] == [len(s.pts) for s in plan.segments] and sum(p.frames for p in pieces) == 48
    cuts = [index for index, segment in enumerate(plan.segments) if segment.first_packet in (11, 23)]
    assert cuts == [1, 2] and [pieces[cut].repeated_frames for cut in cuts] == [len(plan.segments[cut].pts) for cut in cuts]
    last_whole = frames[0][-1]
    assert all(np.array_equal(frame, last_whole) for cut in cuts for frame in frames[cut])
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.96 s is damaged "
                                         r"\(Invalid data found when processing input\), and no frame of the 11 packets"):
        rendered_with_damage_repeated(path, Cutting(segment_s=0.5), max_preroll=22)  # the two GOPs before are 23


def test_a_first_keyframe_whose_damage_wiped_its_flag_is_repeated_over_its_gop_or_fails_saying_where(tmp_path):
    """Its GOP was left out as a recording's frames before its first keyframe: 37 of 48 frames
    out, none counted. As any damaged first keyframe, its segment shows the first frame given in
    place of each frame it lost, or, where it gives none (cut there), fails saying where."""
    path = first_keyframe_wiped(tmp_path)
    plan, pieces, _ = rendered_with_damage_repeated(path, Cutting())
    assert [(p.frames, p.damaged_packets, p.repeated_frames) for p in pieces] == [(48, 1, 11)]
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.00 s is damaged "
                                         r"\(Invalid data found when processing input\), and no frame of the 11 packets"):
        rendered_with_damage_repeated(path, Cutting(segment_s=0.5))


@pytest.mark.parametrize("segment_s", [2.0, 0.5])  # one segment; one cut at the damaged keyframe
def test_a_hevc_keyframe_whose_data_is_lost_fails_saying_where_or_is_repeated_and_counted(tmp_path, segment_s):
    """HEVC's decoder drops the GOP of a keyframe it cannot read without a word: one segment came
    out 36 of its 48 frames with no error, and, with "repeat", filled but counted 0; the segment
    cut there failed with 'segment 2 of the video holds no decodable frame', not where, and, with
    "repeat", decoded on one thread after the GOP before, repeated 12 frames but counted 0."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False, codec="libx265",
                       options={"x265-params": "keyint=12:min-keyint=12:bframes=2:log-level=none"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [24], keep=6)  # the keyframe at 1.00 s
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=segment_s))
    info = planned_info(info, plan)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 1\.00 s is damaged"):
        for segment, data in extract_segments(path, info, plan.segments):
            job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast"), batch_frames=5)
            list(render_segment(job, data, nearest_x2))
    _, pieces, _ = rendered_with_damage_repeated(path, Cutting(segment_s=segment_s))
    assert sum(p.frames for p in pieces) == 48 and sum(p.repeated_frames for p in pieces) == 12
    assert sum(p.damaged_packets for p in pieces) == 12  # the keyframe, and each frame that refers to it


@pytest.mark.parametrize("damaged", [[21, 23], [22, 23], [19, 20, 21, 22, 23]])
def test_a_burst_over_a_damaged_keyframe_and_the_gop_before_shows_the_last_frame_given_before_it(tmp_path, damaged):
    """A burst of damage hits the GOP before a damaged keyframe too (its last frame, 0.92 s, at
    [21]; the B-frame before it, whose loss took the frames beside it in the frame-threaded
    decoder): the segment cut there kept none of that GOP's frames and failed the task ('segment 2
    of the video holds no decodable frame'); now it shows the last frame given before it."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", damaged, keep=5)  # the keyframe at 0.96 s: [23]
    plan, pieces, frames = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert [p.frames for p in pieces] == [len(s.pts) for s in plan.segments] and sum(p.frames for p in pieces) == 48
    cut = next(index for index, segment in enumerate(plan.segments) if segment.first_packet == 23)
    assert pieces[cut].repeated_frames == len(plan.segments[cut].pts)
    # the GOP before decoded on one thread: its frames beside the damage, which the segment before's
    # frame threads lost, may be given, and the latest of them shows
    assert all(np.array_equal(frame, frames[cut][0]) for frame in frames[cut])


def test_a_damaged_packet_among_a_segments_last_fails_the_task_or_is_counted_when_repeated(tmp_path):
    """Frame threads drain a segment's last packets without a word of the damaged one: segment 1
    of a clip cut every 0.5 s, its last packet damaged, came out 9 of its 12 frames long with no
    error, where damage fails the task; with "repeat", its frames were filled but it was not
    counted (damaged_packets_dropped 0). (Frame threads: more than one CPU.)"""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [22])  # segment 1's last, 0.88 s
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    info = planned_info(info, plan)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 0\.88 s is damaged"):
        for segment, data in extract_segments(path, info, plan.segments):
            job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast"), batch_frames=5)
            list(render_segment(job, data, nearest_x2))
    _, pieces, _ = rendered_with_damage_repeated(path, Cutting(segment_s=0.5))
    assert sum(p.frames for p in pieces) == 48 and sum(p.damaged_packets for p in pieces) == 1



@pytest.mark.parametrize("damaged, seconds", [(5, "0.17"), (9, "0.42")])
def test_a_damaged_packet_of_a_copied_segment_fails_the_task_saying_where_it_is(tmp_path, damaged, seconds):
    """Frame threads tell a damaged packet a few packets late, on a neighbour's frame, and one
    among the segment's last as they drain the decoder, where no packet says when: packet 9 of
    the first segment failed the task with 'a frame is damaged' and no time, packet 5 at 0.33 s
    (which of them the drain tells depends on the CPUs: packet 5 with more)."""
    source = make_clip(tmp_path / "in.mp4", frames=48, rate=24, audio=False,
                       options={"x264-params": "keyint=12:bframes=2:b-adapt=0"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [damaged])
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.5))
    info = planned_info(info, plan)
    segment, data = next(extract_segments(path, info, plan.segments))
    job = SegmentJob(segment, info, (128, 96), EncodeOptions(preset="ultrafast"), batch_frames=5)
    with pytest.raises(InputError, match=rf"^video could not be decoded: a frame at about {seconds} s is damaged"):
        list(render_segment(job, data, nearest_x2))


@pytest.mark.parametrize("damaged", [71, 70])
def test_a_damaged_packet_among_a_re_keyed_long_gops_last_fails_saying_where_or_is_counted_when_repeated(
        tmp_path, damaged):
    """The cutting pass's frame threads drain the long GOP's last packets: its last damaged, they
    said not a word of it, frames beside it lost, and the clip came out 69 of its 72 frames long
    with no error; the one before it, they said 'a frame is damaged', not where. With "repeat"
    both were filled but counted 0."""
    source = make_clip(tmp_path / "screen.mp4", frames=72, rate=24, audio=False,
                       options={"x264-params": "keyint=1000:min-keyint=1000:scenecut=0:bframes=2"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [damaged])
    cutting = Cutting(segment_s=0.25, max_preroll_frames=8)
    info = probe_video(path)
    with pytest.raises(InputError, match=r"^video could not be decoded: a frame at about 2\.\d\d s is damaged"):
        list(extract_segments(path, info, plan_segments(path, info, cutting).segments))
    plan, pieces, _ = rendered_with_damage_repeated(path, cutting)
    assert sum(s.rekeyed for s in plan.segments) >= 3
    assert sum(p.frames for p in pieces) == 72 and sum(p.damaged_packets for p in pieces) == 1


@pytest.mark.parametrize("damaged, seconds", [(20, "0.79"), (50, "2.12")])
def test_a_damaged_packet_inside_a_re_keyed_long_gop_fails_the_task_saying_where_it_is(tmp_path, damaged, seconds):
    """The cutting pass's frame threads told a damaged packet of the GOP a few packets late, on
    a neighbour's frame: its frame at 0.79 s said 1.00 s, at 2.12 s said 2.25 s (on 2 CPUs)."""
    source = make_clip(tmp_path / "screen.mp4", frames=72, rate=24, audio=False,
                       options={"x264-params": "keyint=1000:min-keyint=1000:scenecut=0:bframes=2"})
    path = with_packets_damaged(source, tmp_path / "damaged.mp4", [damaged])
    info = probe_video(path)
    plan = plan_segments(path, info, Cutting(segment_s=0.25, max_preroll_frames=8))
    with pytest.raises(InputError, match=rf"^video could not be decoded: a frame at about {seconds} s is damaged"):
        list(extract_segments(path, info, plan.segments))
