"""The media phones make, through the running service: HDR kept HDR (tags, rotation, 10 bits),
or tone-mapped to SDR on request."""

from __future__ import annotations

import av
import numpy as np
import pytest
import requests

from tests.helpers import chart_yuv, colour_chart_clip, fetch_output

HLG_BT2020 = dict(color_primaries=9, color_trc=18, colorspace=9, color_range=1)


def phone_clip(tmp_path, input_server) -> str:
    """HEVC Main10, BT.2020 + HLG, shot in portrait (a 90° display rotation), 12 frames."""
    clip = colour_chart_clip(tmp_path / "phone.mp4", "libx265", "yuv420p10le", 10, HLG_BT2020,
                             rotation=90, frames=12)
    return input_server.add("phone-hlg.mp4", clip.read_bytes())


def first_frame(data: bytes, path):
    path.write_bytes(data)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        tags = {name: getattr(ctx, name) for name in HLG_BT2020}
        frame = next(container.decode(stream))
        depth = 16 if frame.format.name.endswith("10le") else 8
        luma = np.frombuffer(bytes(frame.planes[0]), np.uint16 if depth == 16 else np.uint8)
        luma = luma.reshape(frame.height, -1)[:, :frame.width].astype(int)
    return ctx.name, ctx.pix_fmt, tags, luma


@pytest.mark.parametrize("output_format", ["mp4", "mkv"])
def test_an_hdr_phone_clip_keeps_its_tags_its_ten_bits_and_its_colours(service, input_server, tmp_path, output_format):
    task = service.run(url=phone_clip(tmp_path, input_server), model="identity-x2.pth", timeout=180,
                       output_format=output_format)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"], meta["frames"]) == (128, 256, 12)  # 64×128 shown upright, ×2
    assert meta["hdr"] == meta["input"]["hdr"] == "arib-std-b67" and meta["color"] == HLG_BT2020
    assert meta["format"] == output_format
    codec, pix_fmt, tags, luma = first_frame(fetch_output(task), tmp_path / f"out.{output_format}")
    assert (codec, pix_fmt, tags) == ("hevc", "yuv420p10le", HLG_BT2020)
    # The chart as a player shows it (turned upright), each patch within 2 levels of the input's.
    upright = np.rot90(chart_yuv(128, 64, 10, 9, False)[0], 1)
    for row in range(4):
        for col in range(2):
            y, x = row * 32 + 16, col * 32 + 16
            assert abs(luma[2 * y, 2 * x] - int(upright[y, x])) <= 2, (row, col)


def test_hdr_sdr_tone_maps_a_phone_clip_to_bt709_eight_bit(service, input_server, tmp_path):
    task = service.run(url=phone_clip(tmp_path, input_server), model="identity-x2.pth", hdr="sdr", timeout=180)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["hdr"] is None and meta["input"]["hdr"] == "arib-std-b67" and meta["pix_fmt"] == "yuv420p"
    codec, pix_fmt, tags, luma = first_frame(fetch_output(task), tmp_path / "sdr.mp4")
    assert (codec, pix_fmt) == ("h264", "yuv420p")
    assert tags == {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 1}
    assert 16 <= luma.min() and luma.max() <= 235 and luma.std() > 5


def test_the_hdr_field_takes_keep_or_sdr_only(service, input_server):
    response = requests.post(service.url("/tasks"), json={"url": input_server.url("x.mp4"), "hdr": "bright"},
                             timeout=30)
    assert response.status_code == 422 and "hdr" in response.text


def test_a_heic_photo_with_a_display_p3_profile_comes_back_as_jpeg_with_the_profile(service, input_server, tmp_path):
    import io

    from PIL import Image

    from tests.helpers import display_p3_icc, tagged_photo

    photo = tagged_photo(tmp_path / "phone.heic", "HEIF")
    task = service.run(url=input_server.add("phone.heic", photo.read_bytes()), type="image", model="identity-x2.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["format"] == "jpeg" and meta["input"]["format"] == "heic" and meta["icc_profile"] is True
    with Image.open(io.BytesIO(fetch_output(task))) as out:
        assert out.info["icc_profile"] == display_p3_icc() and out.getexif().get(0x0112) == 1
        assert out.size == (48, 80)  # turned upright (24×40), ×2


def test_a_ten_bit_display_p3_avif_comes_back_a_sixteen_bit_png_with_a_p3_profile(service, input_server, tmp_path):
    """What an Android phone or Chrome writes: 10 bits, its colour stated by the nclx box alone."""
    import io

    import cv2
    from PIL import Image

    from tests.helpers import deep_levels, deep_photo, display_p3_icc, icc_colourants

    photo = deep_photo(tmp_path / "phone.avif", deep_levels(10, "colour"), 10,
                       color_primaries=12, transfer_characteristics=13)
    task = service.run(url=input_server.add("phone.avif", photo.read_bytes()), type="image", model="identity-x2.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["format"] == "png" and meta["bit_depth"] == 16 and meta["icc_profile"] is True
    data = fetch_output(task)
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    with Image.open(io.BytesIO(data)) as out:
        made, reference = icc_colourants(out.info["icc_profile"]), icc_colourants(display_p3_icc())
    assert all(np.abs(np.subtract(made[tag], reference[tag])).max() < 1e-3 for tag in reference)


def test_a_pq_avif_photo_comes_back_hdr_with_cicp_or_tone_mapped_on_request(service, input_server, tmp_path):
    """An Android phone's or Chrome's HDR photo: its 16-bit PNG carried no colour tag (shown as
    sRGB, reference white at 148 of 255), and hdr "sdr" was ignored for photos."""
    import cv2

    from tests.helpers import hdr_white_photo, png_chunks_in_order

    url = input_server.add("hdr.avif", hdr_white_photo(tmp_path / "hdr.avif", 16).read_bytes())
    kept = service.run(url=url, type="image", model="identity-x2.pth")
    assert kept["status"] == "completed", kept["error"]
    meta = kept["output"]["metadata"]
    assert meta["format"] == "png" and meta["hdr"] == meta["input"]["hdr"] == "smpte2084"
    assert dict(png_chunks_in_order(fetch_output(kept)))[b"cICP"] == bytes([9, 16, 0, 1])
    sdr = service.run(url=url, type="image", model="identity-x2.pth", hdr="sdr")
    assert sdr["status"] == "completed", sdr["error"]
    meta = sdr["output"]["metadata"]
    assert meta["format"] == "jpeg" and meta["hdr"] is None and meta["input"]["hdr"] == "smpte2084"
    grey = cv2.imdecode(np.frombuffer(fetch_output(sdr), np.uint8), cv2.IMREAD_UNCHANGED)
    assert np.abs(grey.astype(int) - 229).max() <= 2  # a video's 230 (BT.1886), as sRGB levels


def test_an_ultra_hdr_jpeg_comes_back_ultra_hdr_with_its_gain_map_scaled(service, input_server, tmp_path):
    """An Android phone's HDR photo: its gain map was dropped, and it came back an SDR JPEG."""
    import io
    import cv2
    from PIL import Image
    from tests.helpers import ultra_hdr_jpeg
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), np.full((12, 16), 200, np.uint8))
    task = service.run(url=input_server.add("pixel.jpg", photo), type="image", model="identity-x2.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["format"] == "jpeg" and meta["hdr"] == meta["input"]["hdr"] == "gain map"
    data = fetch_output(task)
    with Image.open(io.BytesIO(data)) as out:  # Pillow reads the primary and the MP index of both
        assert out.size == (128, 96)
        primary, gain_map = out._getmp()[0xB002]
    assert primary["Size"] + gain_map["Size"] == len(data)
    decoded = cv2.imdecode(np.frombuffer(data[primary["Size"]:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (24, 32) and abs(decoded.mean() - 200) <= 2


def test_an_ultra_hdr_jpegs_gain_map_comes_back_at_the_output_quality_asked(service, input_server):
    """The runner wrote the gain map at quality 95 whatever output_quality asked."""
    import io
    from PIL import Image
    from tests.helpers import ultra_hdr_jpeg
    photo = ultra_hdr_jpeg(np.full((48, 64, 3), 90, np.uint8), np.full((12, 16), 200, np.uint8))
    task = service.run(url=input_server.add("pixel-q100.jpg", photo), type="image", model="identity-x2.pth",
                       output_quality=100)
    assert task["status"] == "completed", task["error"]
    data = fetch_output(task)
    with Image.open(io.BytesIO(data)) as out:
        primary_bytes = out._getmp()[0xB002][0]["Size"]
    with Image.open(io.BytesIO(data[primary_bytes:])) as gain_map:
        assert set(gain_map.quantization[0]) == {1}  # libjpeg's tables at quality 100


def test_an_iphone_hdr_heic_comes_back_an_ultra_hdr_jpeg(service, input_server, tmp_path):
    """An iPhone's HDR photo: its gain map (an auxiliary image of the HEIC) was dropped, and it came
    back an SDR JPEG."""
    import io
    import cv2
    from PIL import Image
    from tests.helpers import apple_hdr_heic
    photo = apple_hdr_heic(tmp_path / "iphone.heic", np.full((48, 64, 3), 120, np.uint8),
                           np.full((24, 32), 200, np.uint8)).read_bytes()
    task = service.run(url=input_server.add("iphone.heic", photo), type="image", model="identity-x2.pth")
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert meta["format"] == "jpeg" and meta["hdr"] == meta["input"]["hdr"] == "gain map"
    data = fetch_output(task)
    with Image.open(io.BytesIO(data)) as out:
        assert out.size == (128, 96)
        primary, gain_map = out._getmp()[0xB002]
    assert primary["Size"] + gain_map["Size"] == len(data) and b"hdrgm:GainMapMax" in data[primary["Size"]:]
    decoded = cv2.imdecode(np.frombuffer(data[primary["Size"]:], np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded.shape == (48, 64)
