"""Colour through decode → identity model → encode, for the media phones and cameras make.

The clips are colour charts written as exact YUV code values (lossless encodes), so what comes
back after a decode to RGB, a nearest-neighbour ×2 (what an all-zero Compact network returns) and
the encode of a piece can be compared level by level in the input's own space.
"""

from __future__ import annotations

import io
from dataclasses import replace

import av
import numpy as np
import pytest

from tests.helpers import HDR_MASTERING, colour_chart_clip, chart_yuv
from tmlsr_ray.pipeline.colour import (PRIMARIES, TRC_HLG, TRC_PQ, ToneMap, hlg_to_nits, pq_to_nits,
                                      primaries_to_bt709, rgb_to_xyz, written_colour)
from tmlsr_ray.pipeline.decode import iter_batches
from tmlsr_ray.pipeline.encode import EncodeOptions, PieceWriter
from tmlsr_ray.pipeline.output_formats import resolve_codec
from tmlsr_ray.pipeline.probe import probe_video

CASES = {
    "hevc10_bt2020_hlg": dict(codec="libx265", pix_fmt="yuv420p10le", depth=10,
                             tags=dict(color_primaries=9, color_trc=18, colorspace=9, color_range=1)),
    "hevc10_bt2020_pq": dict(codec="libx265", pix_fmt="yuv420p10le", depth=10, mastering=True,
                            tags=dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1)),
    "h264_bt601": dict(codec="libx264", pix_fmt="yuv420p", depth=8,
                       tags=dict(color_primaries=6, color_trc=6, colorspace=6, color_range=1)),
    "h264_bt709_full": dict(codec="libx264", pix_fmt="yuvj420p", depth=8,
                            tags=dict(color_primaries=1, color_trc=1, colorspace=1, color_range=2)),
}


def planes(frame, depth):
    dtype = np.uint16 if depth > 8 else np.uint8
    out = []
    for index, plane in enumerate(frame.planes):
        width = frame.width >> (1 if index else 0)
        rows = np.frombuffer(bytes(plane), dtype).reshape(-1, plane.line_size // np.dtype(dtype).itemsize)
        out.append(rows[:, :width].astype(int))
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_decode_identity_and_encode_keep_every_patch_within_two_levels_and_the_tags(tmp_path, name):
    round_trip_chart(tmp_path, name, CASES[name], CASES[name]["tags"])


# BT.2020 constant luminance and YCgCo: swscale has no matrix for them and refused every frame.
# YCgCo is decoded exactly; both are written in the matrix of the primaries, and tagged so.
@pytest.mark.parametrize("colorspace,depth", [(10, 8), (8, 8), (8, 10)])
@pytest.mark.parametrize("colour_range", [1, 2])
def test_a_matrix_swscale_lacks_is_read_and_written_in_the_nearest_it_has(tmp_path, colorspace, depth, colour_range):
    tags = dict(color_primaries=9, color_trc=1, colorspace=colorspace, color_range=colour_range)
    case = dict(codec="libx264", pix_fmt="yuv420p10le" if depth > 8 else "yuv420p", depth=depth, tags=tags)
    round_trip_chart(tmp_path, f"matrix{colorspace}", case, {**tags, "colorspace": 9})


def test_a_colour_matrix_no_conversion_here_knows_is_refused_at_probe_by_name(tmp_path):
    from tmlsr_ray.errors import InputError

    tags = dict(color_primaries=9, color_trc=16, colorspace=14, color_range=1)
    path = colour_chart_clip(tmp_path / "ictcp.mp4", "libx264", "yuv420p", 8, {**tags, "colorspace": 9})
    with av.open(str(path)) as source, av.open(str(tmp_path / "tagged.mp4"), "w") as out:
        stream = out.add_stream_from_template(source.streams.video[0])
        stream.codec_context.colorspace = 14
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    with pytest.raises(InputError, match=r"colour matrix \(ICtCp\) is not supported"):
        probe_video(tmp_path / "tagged.mp4")


UNTAGGED = dict(color_primaries=2, color_trc=2, colorspace=2, color_range=0)


def test_an_untagged_sd_source_comes_back_tagged_bt601_with_its_yuv_as_it_was(tmp_path):
    """Players take an untagged stream for BT.709 from HD size on: an SD source upscaled to HD,
    untagged, showed with its hues shifted. Its YUV is read and written in BT.601 (as FFmpeg
    reads it), and now says so."""
    path = colour_chart_clip(tmp_path / "sd.mp4", "libx264", "yuv420p", 8, UNTAGGED)
    info = probe_video(path)
    tags, got = doubled_piece(path, info, 8)
    # with a matrix, H.264 states a range too: limited, as an unstated one is read
    assert tags == {**UNTAGGED, "colorspace": 6, "color_range": 1}
    with av.open(str(path)) as container:
        source = planes(next(container.decode(video=0)), 8)
    assert_patches_within_two_levels(got, [np.asarray(p) for p in source])


def test_an_untagged_hd_source_stays_untagged_and_an_rgb_source_says_bt601_at_any_size(tmp_path):
    info = probe_video(colour_chart_clip(tmp_path / "sd.mp4", "libx264", "yuv420p", 8, UNTAGGED))
    for width, height in ((1280, 720), (720, 578), (1920, 1080)):
        hd = replace(info, coded_width=width, coded_height=height)
        assert written_colour(hd) == UNTAGGED, "read and written in one matrix, it shows as the source did"
        for rgb in ("gbrp", "bgra", "pal8"):
            assert written_colour(replace(hd, pix_fmt=rgb))["colorspace"] == 6
        assert written_colour(replace(hd, pix_fmt="unknown")) == UNTAGGED  # a format FFmpeg has no name for
    tagged = replace(info, color={**UNTAGGED, "colorspace": 1}, coded_width=1920, coded_height=1080)
    assert written_colour(tagged)["colorspace"] == 1


def round_trip_chart(tmp_path, name: str, case: dict, written: dict) -> None:
    path = colour_chart_clip(tmp_path / f"{name}.mp4", case["codec"], case["pix_fmt"], case["depth"], case["tags"],
                             mastering=case.get("mastering", False))
    info = probe_video(path)
    assert info.color == case["tags"]
    tags, got = doubled_piece(path, info, case["depth"])
    assert {k: tags[k] for k in written} == written
    want = chart_yuv(128, 64, case["depth"], written["colorspace"], written["color_range"] == 2)
    assert_patches_within_two_levels(got, want)


def doubled_piece(path, info, depth: int):
    """The colour tags and the first frame's planes of a piece of the clip at ×2 (nearest neighbour)."""
    batch = next(iter_batches(path, info, 2))
    doubled = np.stack([np.kron(f, np.ones((2, 2, 1), f.dtype)) for f in batch.frames])
    # x264 at CRF 0 is lossless: what is measured is the colour conversions alone
    lossless = EncodeOptions("libx264", crf=0, preset="ultrafast", ten_bit=depth > 8)
    writer = PieceWriter(0, info, (info.width * 2, info.height * 2), lossless)
    writer.write(doubled, batch.pts)
    data, _ = writer.close()
    with av.open(io.BytesIO(data)) as container:
        ctx = container.streams.video[0].codec_context
        tags = {k: getattr(ctx, k) for k in ("color_primaries", "color_trc", "colorspace", "color_range")}
        return tags, planes(next(container.decode(video=0)), depth)


def assert_patches_within_two_levels(got, want) -> None:
    for plane, (out, expected) in enumerate(zip(got, want)):
        step = 64 if plane == 0 else 32  # patch pitch in the doubled output
        for row in range(2):
            for col in range(4):
                y, x = row * step + step // 2, col * step + step // 2
                assert abs(out[y, x] - int(expected[y // 2, x // 2])) <= 2, (plane, row, col)


@pytest.mark.parametrize("codec", ["libx264", "libx265", "av1"])
def test_pq_mastering_metadata_is_read_at_probe_and_written_into_the_pieces(tmp_path, codec):
    """Each encoder takes it in its own terms; SVT-AV1's (floats, not x265's integers) was not given."""
    if resolve_codec(codec) not in av.codecs_available:
        pytest.skip(f"this FFmpeg has no {codec} encoder")
    path = colour_chart_clip(tmp_path / "pq.mp4", "libx265", "yuv420p10le", 10,
                             dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1), mastering=True)
    info = probe_video(path)
    assert info.mastering == HDR_MASTERING
    batch = next(iter_batches(path, info, 2))
    writer = PieceWriter(0, info, (128, 64), EncodeOptions(codec, preset="ultrafast", ten_bit=True))
    writer.write(batch.frames, batch.pts)
    data, _ = writer.close()
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        from tmlsr_ray.pipeline.colour import mastering_params
        assert mastering_params(frame.side_data) == HDR_MASTERING


def test_hlg_reference_white_and_pq_levels_have_their_standard_luminance():
    assert hlg_to_nits(np.full((1, 3), 0.75, np.float32))[0, 0] == pytest.approx(203, rel=0.02)
    assert pq_to_nits(np.array([0.5807]))[0] == pytest.approx(203, rel=0.01)
    assert pq_to_nits(np.array([1.0]))[0] == pytest.approx(10000)


@pytest.mark.parametrize("transfer", [TRC_HLG, TRC_PQ])
def test_the_tone_map_keeps_black_lands_in_range_and_orders_brightness(transfer):
    ramp = np.linspace(0, 1, 64, dtype=np.float32)
    grey = (np.repeat(ramp[:, None], 3, axis=1) * 65535).astype(np.uint16)[None, None]
    to_sdr = ToneMap.for_stream({"color_trc": transfer, "color_primaries": 9}, None)
    sdr = to_sdr(grey)[0, 0]
    assert sdr.dtype == np.uint8 and sdr[0].max() == 0 and sdr[-1].min() >= 250
    assert np.all(np.diff(sdr[:, 1].astype(int)) >= 0), "brighter HDR must not come out darker"
    saturated = to_sdr(np.array([[[[0, 40000, 0]]]], np.uint16))[0, 0, 0]
    assert saturated[1] > 100 and saturated[0] == 0  # a BT.2020 green clipped into BT.709


def pq_signal(nits: float) -> float:
    """The PQ signal (0..1) of a luminance: ST 2084's inverse EOTF, written out apart from the code's."""
    m1, m2 = 2610 / 16384, 2523 / 4096 * 128
    c1, c2, c3 = 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = (nits / 10000.0) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def pq_code(nits: float) -> int:
    """The 16-bit PQ code value of a luminance."""
    return round(pq_signal(nits) * 65535)


def sdr_code_by_hand(nits: float, peak_nits: float) -> float:
    """The SDR code BT.2390's EETF gives a grey, worked from the report's formula: PQ relative to
    the content's peak, identity below the knee KS = 1.5 maxLum − 0.5, the Hermite spline above it,
    to an SDR display whose white and peak are 203 nits (BT.2408); then BT.1886's 2.4 gamma."""
    source = pq_signal(peak_nits)
    e1, max_lum = min(pq_signal(nits) / source, 1.0), pq_signal(203) / source
    knee = 1.5 * max_lum - 0.5
    t = (e1 - knee) / (1 - knee)
    spline = (2 * t**3 - 3 * t**2 + 1) * knee + (t**3 - 2 * t**2 + t) * (1 - knee) + (-2 * t**3 + 3 * t**2) * max_lum
    shown = float(pq_to_nits(np.array(source * (e1 if e1 < knee else spline))))
    return 255 * min(shown / 203, 1.0) ** (1 / 2.4)


GREYS_NITS = [1, 10, 50, 100, 203, 400, 1000, 4000]


def tone_mapped_greys(codes, transfer=TRC_PQ, mastering=None) -> np.ndarray:
    """The SDR code of each grey of 16-bit signal ``codes`` in a BT.2020 stream."""
    frames = np.repeat(np.asarray(codes, np.uint16)[None, None, :, None], 3, axis=3)
    return ToneMap.for_stream({"color_trc": transfer, "color_primaries": 9}, mastering)(frames)[0, 0, :, 1]


def pq_codes(nits):
    return [pq_code(n) for n in nits]


@pytest.mark.parametrize("peak", [600, 1000, 4000])
def test_pq_greys_come_out_as_bt2390_gives_them_by_hand(peak):
    got = tone_mapped_greys(pq_codes(GREYS_NITS), mastering={"cll": f"{peak},200"})
    assert got.astype(int).tolist() == pytest.approx([sdr_code_by_hand(n, peak) for n in GREYS_NITS], abs=1)


@pytest.mark.parametrize("transfer", [TRC_PQ, TRC_HLG])
def test_hdr_reference_white_lands_near_sdr_white_as_bt2408_asks(transfer):
    """203 nits (PQ; HLG's 75% signal on its 1000-nit display) came out at SDR code 172, a stop dark."""
    white = tone_mapped_greys([pq_code(203) if transfer == TRC_PQ else round(0.75 * 65535)], transfer)[0]
    assert white >= 225 and white == pytest.approx(sdr_code_by_hand(203, 1000), abs=2)


def test_below_the_knee_hdr_light_is_shown_as_it_is_on_a_203_nit_sdr_white():
    below_knee = [1, 10, 50, 80]  # a 1000-nit stream's knee lies near 88 nits
    expected = [255 * (n / 203) ** (1 / 2.4) for n in below_knee]
    assert tone_mapped_greys(pq_codes(below_knee)).astype(int).tolist() == pytest.approx(expected, abs=1)


@pytest.mark.parametrize("peak", [203, 600, 1000, 4000, 10000])
def test_the_streams_peak_is_sdr_white_and_brighter_light_stays_there(peak):
    at_peak_and_above = tone_mapped_greys(pq_codes([peak, (peak + 10000) / 2, 10000]), mastering={"cll": f"{peak},1"})
    assert at_peak_and_above.tolist() == [255, 255, 255]


@pytest.mark.parametrize("transfer,mastering", [(TRC_PQ, {"cll": "100,50"}), (TRC_PQ, None),
                                                (TRC_PQ, {"cll": "4000,400"}), (TRC_HLG, None)])
def test_no_brighter_grey_comes_out_darker_from_black_to_the_signals_top(transfer, mastering):
    sdr = tone_mapped_greys(np.arange(65536), transfer, mastering).astype(int)
    assert sdr[0] == 0 and sdr[-1] == 255 and np.all(np.diff(sdr) >= 0)


def test_a_highlight_keeps_its_hue_its_channels_in_their_ratios():
    orange = np.array([[[[pq_code(400), pq_code(100), pq_code(20)]]]], np.uint16)  # BT.709: no gamut change
    sdr = ToneMap.for_stream({"color_trc": TRC_PQ, "color_primaries": 1}, None)(orange)[0, 0, 0]
    linear = (sdr / 255.0) ** 2.4
    assert linear[1] / linear[0] == pytest.approx(100 / 400, rel=0.03)
    assert linear[2] / linear[0] == pytest.approx(20 / 400, rel=0.03)
    assert sdr[0] < 255  # above the knee, under the peak: rolled off, not clipped


@pytest.mark.parametrize("transfer", [TRC_HLG, TRC_PQ])
def test_a_constant_grey_maps_the_same_whether_or_not_a_highlight_shares_its_batch(transfer):
    to_sdr = ToneMap.for_stream({"color_trc": transfer, "color_primaries": 9}, {"cll": "1000,400"})
    grey = np.full((2, 4, 4, 3), pq_code(100) if transfer == TRC_PQ else 30000, np.uint16)
    lit = grey.copy()
    lit[:, 0, 0] = 65535  # a small highlight at the signal's top
    assert np.array_equal(to_sdr(grey)[:, 1:, 1:], to_sdr(lit)[:, 1:, 1:])


def test_the_pq_peak_is_the_streams_maxcll_else_its_mastering_display_else_1000_nits():
    display = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(40000000,50)"
    color = {"color_trc": TRC_PQ, "color_primaries": 9}
    assert ToneMap.for_stream(color, {"cll": "600,200", "master_display": display}).peak_nits == 600
    assert ToneMap.for_stream(color, {"cll": "0,0", "master_display": display}).peak_nits == 4000
    assert ToneMap.for_stream(color, None).peak_nits == 1000
    assert ToneMap.for_stream({**color, "color_trc": TRC_HLG}, {"cll": "4000,400"}).peak_nits == 1000
    # The same 100-nit grey is darker in SDR where the content reaches further up.
    grey = np.full((1, 1, 1, 3), pq_code(100), np.uint16)
    assert ToneMap.for_stream(color, {"cll": "4000,400"})(grey)[0, 0, 0, 0] < \
        ToneMap.for_stream(color, {"cll": "600,200"})(grey)[0, 0, 0, 0]


def test_the_tone_map_converts_from_the_primaries_the_stream_states():
    red = np.array([[[[pq_code(200), pq_code(20), pq_code(20)]]]], np.uint16)
    bt709 = ToneMap.for_stream({"color_trc": TRC_PQ, "color_primaries": 1}, None)(red)[0, 0, 0].astype(int)
    bt2020 = ToneMap.for_stream({"color_trc": TRC_PQ, "color_primaries": 9}, None)(red)[0, 0, 0].astype(int)
    assert bt709[1] == bt709[2] and bt709[1] > 50  # a BT.709 red keeps its hue
    assert bt2020[1] == 0 and bt2020[2] != bt2020[1]  # the same numbers in BT.2020: a red beyond BT.709
    unstated = ToneMap.for_stream({"color_trc": TRC_PQ, "color_primaries": 2}, None)(red)[0, 0, 0]
    assert np.array_equal(unstated, bt2020)  # BT.2100 is BT.2020


@pytest.mark.parametrize("primaries", sorted(PRIMARIES))
def test_every_primaries_conversion_keeps_white_white(primaries):
    assert primaries_to_bt709(primaries) @ np.ones(3) == pytest.approx(np.ones(3), abs=2e-4)


def test_the_primaries_conversions_equal_the_published_matrices():
    bt2020 = [[1.6605, -0.5876, -0.0728], [-0.1246, 1.1329, -0.0083], [-0.0182, -0.1006, 1.1187]]  # BT.2087
    display_p3 = [[1.2249, -0.2247, 0.0], [-0.0420, 1.0419, 0.0], [-0.0197, -0.0786, 1.0979]]
    assert np.allclose(primaries_to_bt709(9), bt2020, atol=2e-4)
    assert np.allclose(primaries_to_bt709(12), display_p3, atol=5e-4)


@pytest.mark.parametrize("primaries, luma", [(1, (0.2126, 0.7152, 0.0722)), (4, (0.299, 0.587, 0.114)),
                                             (9, (0.2627, 0.6780, 0.0593))], ids=["bt709", "bt470m", "bt2020"])
def test_the_primaries_give_the_luma_coefficients_their_standards_publish(primaries, luma):
    """The Y row of RGB → XYZ is the standard's luma: a check of the chromaticities and white in the
    table (BT.470 M's, under illuminant C, are NTSC's 0.299, 0.587, 0.114, published to 3 places)."""
    assert rgb_to_xyz(PRIMARIES[primaries])[1] == pytest.approx(luma, abs=1e-3)


def test_hdr_is_kept_as_hevc_main10_with_its_tags_by_default(tmp_path):
    tags = dict(color_primaries=9, color_trc=18, colorspace=9, color_range=1)
    path = colour_chart_clip(tmp_path / "hlg.mp4", "libx265", "yuv420p10le", 10, tags)
    info = probe_video(path)
    batch = next(iter_batches(path, info, 4))
    writer = PieceWriter(0, info, (128, 64), EncodeOptions("auto", preset="ultrafast", ten_bit=True))
    writer.write(batch.frames, batch.pts)
    data, piece = writer.close()
    assert piece.encoder == "libx265"
    with av.open(io.BytesIO(data)) as container:
        ctx = container.streams.video[0].codec_context
        assert (ctx.name, ctx.pix_fmt, ctx.profile) == ("hevc", "yuv420p10le", "Main 10")
        assert {k: getattr(ctx, k) for k in tags} == tags


@pytest.mark.parametrize("tags", [dict(color_primaries=9, color_trc=16, colorspace=9, color_range=1),
                                  dict(color_primaries=1, color_trc=1, colorspace=1, color_range=1)], ids=["pq", "bt709"])
def test_a_prores_pieces_frames_state_the_colour_its_file_states(tmp_path, tags):
    """prores_ks writes each frame's own primaries and transfer into its frame header, not the
    stream's: a PQ master came back with frames FFmpeg reads as unspecified, its HDR lost to any
    transcode after, though the file's colr box said PQ."""
    path = colour_chart_clip(tmp_path / "chart.mp4", "libx265", "yuv420p10le", 10, tags)
    info = probe_video(path)
    batch = next(iter_batches(path, info, 4))
    writer = PieceWriter(0, info, (128, 64), EncodeOptions("prores_ks", threads=1, ten_bit=True))
    writer.write(batch.frames, batch.pts)
    data, _ = writer.close()
    with av.open(io.BytesIO(data)) as container:
        frame = next(container.decode(video=0))
        assert {k: getattr(frame, k) for k in tags} == tags


def test_a_full_range_sources_prores_output_shows_its_levels(tmp_path):
    """ProRes is video range only (neither its frame header nor QuickTime's nclc box can say
    full): a full-range source's samples were written full and read back as limited, a grey of 64
    shown as 54 and one of 192 as 204."""
    tags = dict(color_primaries=1, color_trc=1, colorspace=1, color_range=2)
    info = probe_video(colour_chart_clip(tmp_path / "full.mp4", "libx264", "yuv420p", 8, tags))
    greys = np.repeat(np.repeat(np.array([0, 64, 128, 192, 255], np.uint8), 16)[None, :, None], 3, 2)
    frames = np.repeat(np.repeat(greys[None], 16, 1), 2, 0)  # (2, 16, 80, 3)
    writer = PieceWriter(0, info, (80, 16), EncodeOptions("prores_ks", threads=1))
    writer.write(frames, [0, 1])
    data, _ = writer.close()
    with av.open(io.BytesIO(data)) as container:
        shown = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert np.abs(shown[8, 8::16, 1].astype(int) - [0, 64, 128, 192, 255]).max() <= 2, shown[8, 8::16, 1]


def test_an_hdr10_clip_tone_mapped_through_a_segment_shows_its_greys_as_bt2390_gives_them(tmp_path):
    """Decode → tone map → nearest ×2 → 8-bit BT.709 encode, the path an ``hdr: "sdr"`` task's
    segment takes; the clip states no light level, so its peak is taken for 1000 nits."""
    from tmlsr_ray.pipeline.render import SegmentJob, render_segment
    from tmlsr_ray.pipeline.segment_plan import Cutting
    from tmlsr_ray.pipeline.segments import extract_segments, plan_segments

    greys = [(v, v, v) for v in map(pq_signal, GREYS_NITS)]
    path = colour_chart_clip(tmp_path / "hdr10.mp4", "libx265", "yuv420p10le", 10, CASES["hevc10_bt2020_pq"]["tags"],
                             chart=greys)
    info = probe_video(path)
    assert info.mastering is None
    segment, data = next(iter(extract_segments(path, info, plan_segments(path, info, Cutting()).segments)))
    job = SegmentJob(segment, info, (256, 128), EncodeOptions("libx264", crf=0, preset="ultrafast"), 4, tone_map=True)
    encoded, _ = list(render_segment(job, data, lambda batch: np.kron(batch.frames, np.ones((1, 2, 2, 1), np.uint8))))[-1]
    with av.open(io.BytesIO(encoded)) as container:
        luma = planes(next(container.decode(video=0)), 8)[0]
    for k, nits in enumerate(GREYS_NITS):
        row, col = divmod(k, 4)
        expected = 16 + 219 * sdr_code_by_hand(nits, 1000) / 255  # BT.709 limited range
        assert abs(luma[row * 64 + 32, col * 64 + 32] - expected) <= 2, nits
