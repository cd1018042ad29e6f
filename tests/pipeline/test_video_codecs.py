"""Decode and encode of videos, without the service: stream choice, rotation, depth, tags, timing."""

from pathlib import Path

import av
import numpy as np
import pytest

from tests.helpers import make_clip, shared_path
from tmlsr_ray.errors import InputError
from tmlsr_ray.pipeline.decode import iter_batches
from tmlsr_ray.pipeline.encode import EncodeOptions, PieceWriter, even_size
from tmlsr_ray.pipeline.mux import assemble
from tmlsr_ray.pipeline.probe import probe_video


def marked_clip(path: Path, rotation: int = 0, frames: int = 3) -> Path:
    """A 64x32 clip, black with a white block in the top-left corner of the stored picture."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(frames):
            pixels = np.zeros((32, 64, 3), np.uint8)
            pixels[:8, :8] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def write_video(out: Path, source: Path, info, size, options: EncodeOptions, frames, pts):
    """Frames encoded as one piece and joined with the source's audio and subtitles, as a video task does."""
    writer = PieceWriter(0, info, size, options)
    writer.write(frames, pts)
    data, piece = writer.close()
    piece_path = out.with_name(out.stem + ".piece.mp4")
    piece_path.write_bytes(data)
    return assemble(out, source, info, [(piece_path, piece)])


def all_frames(path: Path):
    info = probe_video(path)
    batches = list(iter_batches(path, info, 8))
    return info, np.concatenate([b.frames for b in batches]), [p for b in batches for p in b.pts]


def test_unrotated_clip_decodes_as_stored(tmp_path):
    info, frames, pts = all_frames(marked_clip(tmp_path / "a.mp4"))
    assert (info.width, info.height, info.rotation) == (64, 32, 0)
    assert frames.shape == (3, 32, 64, 3) and frames[0, 2, 2].min() > 200
    assert pts == sorted(set(pts))


@pytest.mark.parametrize("rotation,corner", [(90, (-3, 2)), (-90, (2, -3)), (180, (-3, -3))])
def test_rotation_metadata_is_applied_to_the_pixels(tmp_path, rotation, corner):
    info, frames, _ = all_frames(marked_clip(tmp_path / "r.mp4", rotation=rotation))
    expected = (64, 32) if rotation == 180 else (32, 64)
    assert (info.width, info.height) == expected
    assert frames.shape[1:3] == (expected[1], expected[0])
    # The stored top-left block ends where a player shows it after the rotation.
    assert frames[0][corner].min() > 200


def test_the_best_video_stream_is_chosen_like_ffmpeg():
    info = probe_video(shared_path("media", "video", "live_nasa_2video_2aac_2movtext_16.6s.mp4"))
    assert (info.width, info.height, info.stream_index) == (480, 270, 3)
    assert len(info.audio) == 2 and len(info.subtitles) == 2


def test_ten_bit_input_decodes_to_sixteen_bit_samples_without_banding():
    info, frames, _ = all_frames(shared_path("media", "video", "testsrc2_hevc_yuv420p10le_200x200_1s.mp4"))
    assert info.bit_depth == 10 and frames.dtype == np.uint16
    assert len(np.unique(frames[0])) > 256  # more levels than 8 bits can hold


def test_ten_bit_output_option_writes_yuv420p10le(tmp_path):
    source = marked_clip(tmp_path / "s.mp4")
    info, frames, pts = all_frames(source)
    write_video(tmp_path / "o.mp4", source, info, (64, 32), EncodeOptions(preset="ultrafast", ten_bit=True), frames, pts)
    with av.open(str(tmp_path / "o.mp4")) as out:
        assert out.streams.video[0].codec_context.pix_fmt == "yuv420p10le"


def test_colour_tags_are_carried_over(tmp_path):
    source = shared_path("media", "video", "animation_bbb_320x180_vp9_opus_5s.webm")
    info = probe_video(source)
    batch = next(iter_batches(source, info, 4))
    write_video(tmp_path / "o.mp4", source, info, (320, 180), EncodeOptions(preset="ultrafast"), batch.frames, batch.pts)
    with av.open(str(tmp_path / "o.mp4")) as out:
        ctx = out.streams.video[0].codec_context
        tags = {"color_primaries": ctx.color_primaries, "color_trc": ctx.color_trc,
                "colorspace": ctx.colorspace, "color_range": ctx.color_range}
    assert tags == info.color == {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}


def test_variable_frame_rate_timestamps_survive_encoding(tmp_path):
    source = shared_path("media", "video", "phone_fire_vfr_rot180_h264_aac_2.4s.mp4")
    info, frames, pts = all_frames(source)
    small = np.ascontiguousarray(frames[:, ::4, ::4])
    write_video(tmp_path / "o.mp4", source, info, (info.width // 4, info.height // 4), EncodeOptions(preset="ultrafast"),
                small, pts)
    with av.open(str(tmp_path / "o.mp4")) as out:
        times = [float(f.pts * f.time_base) for f in out.decode(video=0)]
    gaps_in = np.diff(np.array(pts) * float(info.time_base))
    assert len(times) == len(pts) and np.allclose(np.diff(times), gaps_in, atol=1e-3)
    assert gaps_in.std() > 0.001  # the clip really is VFR


def test_even_size_rounds_odd_dimensions_down():
    assert even_size(101, 77) == (100, 76) and even_size(1, 1) == (2, 2) and even_size(64, 32) == (64, 32)


def test_text_is_not_a_video(tmp_path):
    path = tmp_path / "x.mp4"
    path.write_text("<html></html>")
    with pytest.raises(InputError, match="not a readable video"):
        probe_video(path)


def test_audio_mp4_cannot_hold_is_reencoded_to_aac_and_kept_in_length(tmp_path):
    source = tmp_path / "pcm.mov"
    with av.open(str(source), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.width, video.height, video.pix_fmt = 32, 32, "yuv420p"
        audio = out.add_stream("pcm_s16le", rate=8000)
        audio.layout = "mono"
        for i in range(10):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")))
        out.mux(video.encode(None))
        samples = (np.sin(np.arange(8000) / 5) * 8000).astype(np.int16)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    info, frames, pts = all_frames(source)
    report = write_video(tmp_path / "o.mp4", source, info, (32, 32), EncodeOptions(preset="ultrafast"), frames, pts)
    assert report.audio_reencoded and report.audio_reencoded[0]["codec"] == "pcm_s16le"
    with av.open(str(tmp_path / "o.mp4")) as out:
        stream = out.streams.audio[0]
        assert stream.codec_context.name == "aac"
        decoded = sum(f.samples for f in out.decode(stream))
    assert abs(decoded - 8000) <= 2048  # one second of sound, give or take the AAC priming


def test_crf_zero_asks_svt_av1_for_its_best_quality_not_its_default(tmp_path):
    """FFmpeg's libsvtav1 passes a crf of 0 as none: SVT-AV1 encoded at its default CRF 35. The
    output's metadata says the crf it ran at (it said 0)."""
    from tmlsr_ray.pipeline.media import video_metadata

    if "libsvtav1" not in av.codecs_available:
        pytest.skip("this FFmpeg has no SVT-AV1")
    source = make_clip(tmp_path / "in.mp4", frames=4, size=(128, 96), audio=False)
    info, frames, pts = all_frames(source)
    sizes, stated = {}, {}
    for crf in (0, 1, 35):
        out, options = tmp_path / f"crf{crf}.mp4", EncodeOptions("av1", crf, "ultrafast")
        report = write_video(out, source, info, (128, 96), options, frames, pts)
        sizes[crf] = out.stat().st_size
        stated[crf] = video_metadata(info, out, report, options, (128, 96))["crf"]
    assert sizes[0] == sizes[1] > sizes[35]
    assert stated == {0: 1, 1: 1, 35: 35}


def test_the_writer_uses_the_encoder_auto_picks_and_reports_it(tmp_path):
    from tmlsr_ray.pipeline.output_formats import resolve_codec

    source = marked_clip(tmp_path / "in.mp4", frames=6)
    info, frames, pts = all_frames(source)
    big = np.stack([np.kron(f, np.ones((4, 4, 1), np.uint8)) for f in frames])
    report = write_video(tmp_path / "out.mp4", source, info, (256, 128), EncodeOptions("auto", 20, "fast"), big, pts)
    assert report.encoder == resolve_codec("auto", (256, 128)) and report.frames == 6
    _, out_frames, out_pts = all_frames(tmp_path / "out.mp4")
    assert out_frames.shape == (6, 128, 256, 3) and out_pts == pts
    assert out_frames[0, :24, :24].mean() > 200 and out_frames[0, 40:, 40:].mean() < 30


def test_an_hevc_output_keeps_the_hvc1_sample_entry_apple_players_require(tmp_path):
    source = marked_clip(tmp_path / "s.mp4")
    info, frames, pts = all_frames(source)
    write_video(tmp_path / "o.mp4", source, info, (64, 32), EncodeOptions("libx265", preset="ultrafast"), frames, pts)
    with av.open(str(tmp_path / "o.mp4")) as out:
        assert (out.streams.video[0].codec_context.name, out.streams.video[0].codec_tag) == ("hevc", "hvc1")
    assert b"hev1" not in (tmp_path / "o.mp4").read_bytes()


def test_a_sixteen_bit_rgb_video_decodes_to_sixteen_bit_samples(tmp_path):
    """PNG in MOV as rgb48: the format's name has no 'p16', and its depth was read as 8 (banded)."""
    ramp = (np.arange(64 * 32, dtype=np.uint32).reshape(32, 64) * 31).astype(np.uint16)
    with av.open(str(tmp_path / "deep.mov"), "w") as out:
        stream = out.add_stream("png", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "rgb48be"
        for _ in range(2):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.stack([ramp] * 3, axis=-1), format="rgb48le")))
        out.mux(stream.encode(None))
    info, frames, _ = all_frames(tmp_path / "deep.mov")
    assert info.bit_depth == 16 and frames.dtype == np.uint16
    assert np.array_equal(frames[0, :, :, 0], ramp)


@pytest.mark.parametrize("codec,encoder", [("prores", "prores_ks"), ("prores_aw", "prores_aw")])
def test_a_prores_piece_is_quicktime_422_hq_encoded_with_whole_frames_on_each_thread(tmp_path, codec, encoder):
    """prores_ks on slices scaled to 1.65x on 2 threads, on frames to 1.98x (1440p, bench/encoder.py).
    An operator's prores_aw is ProRes too: its pieces went into MP4, which holds none."""
    info = probe_video(make_clip(tmp_path / "clip.mp4", frames=2, audio=False))
    writer = PieceWriter(0, info, (128, 96), EncodeOptions(codec, threads=2))
    writer.write(np.zeros((2, 96, 128, 3), np.uint8), [0, 1])
    assert writer._video.codec_context.thread_type == av.codec.context.ThreadType.FRAME
    data, piece = writer.close()
    assert piece.frames == 2 and piece.encoder == encoder
    piece_path = tmp_path / "piece"
    piece_path.write_bytes(data)
    with av.open(str(piece_path)) as container:
        video = container.streams.video[0].codec_context
        assert (container.format.name.startswith("mov"), video.name, video.pix_fmt, video.profile) == (
            True, "prores", "yuv422p10le", "HQ")


@pytest.mark.parametrize("pts", [[0, 2, 1], [0, 1, 1]])
def test_a_frame_time_that_goes_back_or_repeats_fails_the_piece_readably(tmp_path, pts):
    """libx264 refused it with FFmpeg's bare "Invalid argument", which named nothing of the video."""
    info = probe_video(make_clip(tmp_path / "clip.mp4", frames=2, audio=False))
    writer = PieceWriter(0, info, (64, 48), EncodeOptions(preset="ultrafast"))
    with pytest.raises(InputError, match="frame times go back or repeat"):
        writer.write(np.zeros((3, 48, 64, 3), np.uint8), pts)
    writer.abort()
