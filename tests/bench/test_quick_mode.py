"""The benches run end to end at tiny sizes on a CPU (what bench/device_check.sh QUICK=1 does):
each section prints its figures; nothing here judges a speed."""

import re

import pytest

from bench import decode, encoder, frames, rekey, resize
from bench.clip import synthetic_frames, write_clip
from tests.helpers import save_srvgg


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", synthetic_frames(6, 32, 24))


def test_the_frames_bench_prints_each_case_against_the_cpu_baseline_fp32_the_profile_and_the_precision(tmp_path, capsys):
    model = save_srvgg(tmp_path / "tiny.pth", scale=4)
    frames.main(["--model", str(model), "--device", "cpu", "--sizes", "16x12", "--frames", "2", "--batch", "2",
                 "--repeats", "1", "--dtype", "fp32", "bf16", "--outscale", "2", "4", "--old-path", "--planes", "--precision",
                 "--shared", str(tmp_path), "--profile", "1", "--profile-out", str(tmp_path / "tables.txt")])
    out = capsys.readouterr().out
    for line in ("ratio to eager fp32", "16x12 bf16 off x4 ", "16x12 fp32 off x2 ", "16x12 fp32 off x4 old path",
                 "16x12 fp32 off x2 planes in",
                 "x2 old path: 2 frames", "x4 new path: 2 frames", "compute floor 16x12",
                 "bench frames 16x12 x4 (2 frames): bf16", "golden images: none"):
        assert line in out, line
    assert "FAILED" not in out and "Name" in (tmp_path / "tables.txt").read_text()
    assert "fp16" not in out  # on a CPU the service runs fp32, and emulated fp16 is slow there


def test_the_frames_bench_runs_the_segment_pipeline_against_the_model_and_the_encoder_alone(tmp_path, tiny_clip, capsys):
    model = save_srvgg(tmp_path / "tiny.pth", scale=2)
    frames.main(["--model", str(model), "--device", "cpu", "--clip", str(tiny_clip), "--frames", "6", "--batch", "3",
                 "--repeats", "1", "--dtype", "fp32", "--outscale", "2", "--pipeline", "--pieces", "1", "2",
                 "--segment-s", "0.1"])
    out = capsys.readouterr().out
    # One piece at a time renders the same segments as several at once (not the clip as one).
    counts = {int(pieces): int(segments) for pieces, segments in
              re.findall(r"x2 \(libx264\), (\d) piece\(s\) at once, (\d+) segment\(s\): pipeline", out)}
    assert set(counts) == {1, 2} and counts[1] == counts[2] > 1, out
    assert "model alone" in out and "encoder alone" in out


def test_the_frames_bench_runs_the_pipeline_into_prores_pieces_joined_in_quicktime(tmp_path, tiny_clip, capsys):
    """MP4 holds no ProRes: the bench joined its pieces into one and failed."""
    model = save_srvgg(tmp_path / "tiny.pth", scale=2)
    frames.main(["--model", str(model), "--device", "cpu", "--clip", str(tiny_clip), "--frames", "3", "--batch", "3",
                 "--repeats", "1", "--dtype", "fp32", "--outscale", "2", "--pipeline", "--pieces", "1",
                 "--segment-s", "0.1", "--codec", "prores_ks"])
    assert re.search(r"x2 \(prores_ks\), 1 piece\(s\) at once, \d+ segment\(s\): pipeline", capsys.readouterr().out)


def test_on_a_gpus_planes_path_the_pipeline_bench_times_model_and_encoder_alone_on_planes_too(
        tmp_path, tiny_clip, capsys, monkeypatch):
    # A GPU replica takes the decoder's 4:2:0 planes and hands the encoder its planes: "alone"
    # must time those calls, not the RGB ones (whose swscale work the pipeline skips).
    monkeypatch.setattr("tmlsr_ray.pipeline.upscale.takes_planes", lambda model, height, width: True)
    model = save_srvgg(tmp_path / "tiny.pth", scale=2)
    frames.main(["--model", str(model), "--device", "cpu", "--clip", str(tiny_clip), "--frames", "6", "--batch", "3",
                 "--repeats", "1", "--dtype", "fp32", "--outscale", "2", "--pipeline", "--pieces", "1",
                 "--segment-s", "0.1"])
    out = capsys.readouterr().out
    assert re.search(r"model alone [\d.]+ \(4:2:0 in, 4:2:0 out\), encoder alone [\d.]+; ratio", out), out


def test_the_encoder_bench_compares_one_encoder_with_pieces_and_names_missing_encoders(tiny_clip, capsys):
    encoder.main(["--clip", str(tiny_clip), "--sizes", "64x48", "--codecs", "libx264", "prores_ks", "no-such-encoder",
                  "--presets", "ultrafast", "fast", "--frames", "4", "--repeats", "1", "--pieces", "2"])
    out = capsys.readouterr().out
    assert "libx264       64x48 ultrafast      4" in out and "libx264       64x48      fast      4" in out
    assert out.count("prores_ks") == 1 and re.search(r"prores_ks +64x48 +- +4 ", out)  # ProRes has no preset
    assert "no-such-encoder: not in this FFmpeg build (skipped)" in out


def test_the_resize_bench_compares_the_blocked_resize_with_the_dense_one_and_opencv(capsys):
    resize.main(["--device", "cpu", "--cases", "96x64:48x32", "40x30:90x70", "--frames", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    for line in ("96x64 -> 48x32: blocked", "dense/blocked", "40x30 -> 90x70: first call (2 frames)",
                 "plan of both axes", "96x64 -> 48x32: cv2.resize on the host"):
        assert line in out, line
    differences = [float(part.split()[0].rstrip(",")) for part in out.split("largest difference")[1:]]
    assert len(differences) == 2 and max(differences) < 1e-3


def test_the_decode_bench_compares_the_hosts_rgb_with_the_decoders_planes(tiny_clip, capsys):
    decode.main(["--clip", str(tiny_clip), "--batch", "2", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "RGB (swscale on the host)" in out and "4:2:0 planes" in out and "ratio planes / RGB" in out
    assert "batches of Yuv420Frames" in out  # the clip's first frame tells the chroma sitings apart


def test_the_rekey_bench_cuts_a_one_keyframe_clip_with_and_without_re_keying(capsys):
    rekey.main(["--size", "64x48", "--seconds", "4", "--segment-s", "0.4", "--max-preroll", "10", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "baseline, not re-keyed: 2 segments (0 re-keyed), largest 90 frames" in out
    assert "re-keyed: 10 segments (8 re-keyed), largest 10 frames (0.11x baseline)" in out
    assert out.count("slowest segment") == 2 and "of a decoded frame" in out
