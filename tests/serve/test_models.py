"""Models a user brings (spandrel architectures), GET /models, and the output a task asks for:
through real HTTP, real Serve replicas and real (tiny) networks."""

from __future__ import annotations

import shutil

import av
import cv2
import numpy as np
import pytest
import requests

from tests.helpers import SPANDREL_ARCHS, decode, eventually, fetch_output, make_clip, png_bytes, shared_path
from tmlsr_ray.pipeline.output_formats import task_codecs_available


@pytest.fixture(scope="module")
def small_image(input_server) -> str:
    return input_server.add("models-small.png", png_bytes(20, 14, seed=3))


@pytest.fixture(scope="module")
def short_clip(input_server, tmp_path_factory) -> str:
    path = make_clip(tmp_path_factory.mktemp("models") / "short.mp4", frames=5, size=(32, 24), audio=False)
    return input_server.add("models-short.mp4", path.read_bytes())


def models_by_name(service):
    response = requests.get(service.url("/models"), timeout=60)
    assert response.status_code == 200, response.text
    return {entry["name"]: entry for entry in response.json()["models"]}


def test_models_lists_every_file_with_its_family_and_scale(service):
    models = models_by_name(service)
    assert models["realesr-animevideov3.pth"] | {"loaded": None} == {
        "name": "realesr-animevideov3.pth", "family": "realesrgan", "architecture": "SRVGGNetCompact",
        "scale": 4, "size_multiple": 1, "minimum": None, "dtypes": ["float32", "float16", "bfloat16"], "channels": [3, 3], "purpose": "SR",
        "temporal": False, "seeded": False, "error": None, "loaded": None, "denoise_strength": False,
        "bytes": (service.weights_dir / "realesr-animevideov3.pth").stat().st_size}
    assert [name for name, entry in models.items() if entry["denoise_strength"]] == ["realesr-general-x4v3.pth"]
    assert models["tiny-rrdb-x2.pth"]["architecture"] == "RRDBNet" and models["tiny-rrdb-x2.pth"]["size_multiple"] == 2
    for arch in SPANDREL_ARCHS:
        entry = models[f"tiny-{arch.lower()}-x2.pth"]
        assert (entry["family"], entry["architecture"], entry["scale"], entry["error"]) == ("spandrel", arch, 2, None)
    assert models["tiny-swinir-x2.safetensors"]["architecture"] == "SwinIR"
    assert (models["tiny-hat-x2.pth"]["minimum"], models["tiny-span-x2.pth"]["minimum"]) == (16, None)
    face = models["tiny-face.pth"]
    assert face["family"] is None and "face-restoration" in face["error"]
    assert "cannot read model file broken.pth" in models["broken.pth"]["error"]


def test_a_model_a_replica_has_loaded_is_listed_as_loaded(service, small_image):
    task = service.run(url=small_image, type="image", model="smooth-x2.pth")
    assert task["status"] == "completed", task["error"]
    eventually(lambda: models_by_name(service)["smooth-x2.pth"]["loaded"], what="smooth-x2.pth listed as loaded")


@pytest.mark.parametrize("name,reason", [("tiny-face.pth", "face-restoration"),
                                         ("broken.pth", "cannot read model file broken.pth")])
def test_a_file_no_backend_serves_is_refused_at_submission_naming_it(service, small_image, name, reason):
    response = requests.post(service.url("/tasks"), json={"url": small_image, "type": "image", "model": name},
                             timeout=60)
    assert response.status_code == 400 and reason in response.json()["error"] and name in response.json()["error"]


@pytest.mark.parametrize("arch", SPANDREL_ARCHS)
def test_every_spandrel_architecture_upscales_an_image_and_a_video(service, small_image, short_clip, arch):
    model = f"tiny-{arch.lower()}-x2.pth"
    image = service.run(url=small_image, type="image", model=model)
    assert image["status"] == "completed", image["error"]
    assert image["output"]["metadata"]["architecture"] == arch
    assert decode(fetch_output(image)).shape[:2] == (28, 40)
    video = service.run(url=short_clip, type="video", model=model, timeout=300)
    assert video["status"] == "completed", video["error"]
    metadata = video["output"]["metadata"]
    assert (metadata["width"], metadata["height"], metadata["frames"]) == (64, 48, 5)


def test_a_model_named_beyond_ascii_serves_images_and_videos_and_is_counted(service, small_image, short_clip):
    """Ray's metrics take ASCII tags only: the model's name failed every task after its load."""
    name = "modèle-模型-x2.pth"
    shutil.copy(service.weights_dir / "smooth-x2.pth", service.weights_dir / name)
    for url, kind in ((small_image, "image"), (short_clip, "video")):
        task = service.run(url=url, type=kind, model=name, timeout=300)
        assert task["status"] == "completed", task["error"]
        assert task["output"]["metadata"]["model"] == name

    def counted() -> bool:
        lines = requests.get(service.metrics_url, timeout=30).text.splitlines()
        return any("tmlsr_frames_processed_total" in line and "xe8le-" in line and "u578b-x2.pth" in line
                   for line in lines)
    eventually(counted, timeout=60, what="the frames counted under the model's escaped name")


def test_a_safetensors_model_runs_like_its_pth(service, small_image):
    task = service.run(url=small_image, type="image", model="tiny-swinir-x2.safetensors")
    assert task["status"] == "completed", task["error"]
    assert decode(fetch_output(task)).shape[:2] == (28, 40)


def test_a_denoise_strength_mixes_the_general_model_with_its_twin_for_images_and_videos(service, small_image,
                                                                                       short_clip):
    """Real-ESRGAN's --denoise_strength, which its users set on realesr-general-x4v3."""
    from tmlsr_ray.models.realesrgan import RealESRGANModel
    from tmlsr_ray.pipeline.upscale import upscale_image

    task = service.run(url=small_image, type="image", model="realesr-general-x4v3.pth", denoise_strength=0.3)
    assert task["status"] == "completed", task["error"]
    assert (task["params"]["denoise_strength"], task["output"]["metadata"]["denoise_strength"]) == (0.3, 0.3)
    source = decode(requests.get(small_image, timeout=30).content)
    mixed = RealESRGANModel(service.weights_dir / "realesr-general-x4v3.pth", device="cpu", denoise=0.3)
    assert np.abs(decode(fetch_output(task)).astype(int)
                  - upscale_image(mixed, source, (80, 56)).astype(int)).max() <= 1
    video = service.run(url=short_clip, model="realesr-general-x4v3.pth", denoise_strength=0.3)
    assert video["status"] == "completed", video["error"]
    assert video["output"]["metadata"]["denoise_strength"] == 0.3 and video["output"]["metadata"]["frames"] == 5


@pytest.mark.parametrize("model", ["tiny-x4.pth", "realesr-general-wdn-x4v3.pth", "tiny-swinir-x2.safetensors"])
def test_a_denoise_strength_for_a_model_without_a_weak_denoise_twin_is_a_400(service, small_image, model):
    response = requests.post(service.url("/tasks"), json={"url": small_image, "type": "image", "model": model,
                                                          "denoise_strength": 0.5}, timeout=30)
    words = "takes no denoise strength" if model.endswith(".safetensors") else "no weak-denoise twin"
    assert response.status_code == 400 and words in response.json()["error"], response.text


def test_a_denoise_strength_of_1_is_the_model_as_it_is_twin_or_none(service, small_image):
    """Real-ESRGAN's script reads no twin at strength 1; here it was a 400 without one, and with
    one a replica held a second copy of the very same network."""
    task = service.run(url=small_image, type="image", model="tiny-x4.pth", denoise_strength=1)
    plain = service.run(url=small_image, type="image", model="tiny-x4.pth")
    assert task["status"] == plain["status"] == "completed", task["error"]
    assert np.array_equal(decode(fetch_output(task)), decode(fetch_output(plain)))


def test_a_denoise_strength_for_a_model_whose_twin_has_other_layers_is_a_400(service, small_image):
    response = requests.post(service.url("/tasks"), json={"url": small_image, "type": "image", "denoise_strength": 0.5,
                                                          "model": "deep-realesr-general-x4v3.pth"}, timeout=30)
    assert response.status_code == 400 and "cannot be mixed" in response.json()["error"], response.text


# -- the output a task asks for ----------------------------------------------------------------


def test_png_from_a_jpeg_input_matches_the_reference_implementation(service, input_server, tmp_path):
    """The model's own output, losslessly: the official RealESRGANer on the same decoded JPEG."""
    source = cv2.imread(str(shared_path("media", "image", "photo_chelsea_odd_451x300.png")))
    ok, jpeg = cv2.imencode(".jpg", source, [cv2.IMWRITE_JPEG_QUALITY, 90])
    url = input_server.add("chelsea.jpg", jpeg.tobytes())
    task = service.run(url=url, type="image", model="realesr-animevideov3.pth", output_format="png")
    assert task["status"] == "completed", task["error"]
    assert task["output"]["metadata"]["format"] == "png" and task["output"]["url"].endswith(".png")
    out = decode(fetch_output(task))
    reference = reference_enhance(cv2.imdecode(jpeg, cv2.IMREAD_UNCHANGED), service.weights_dir / "realesr-animevideov3.pth")
    assert out.shape == reference.shape
    assert (np.abs(out.astype(int) - reference.astype(int)) <= 1).mean() >= 0.999


def reference_enhance(image: np.ndarray, weights) -> np.ndarray:
    from realesrgan import RealESRGANer

    from tmlsr_ray.models.basicsr_compat import import_architectures

    _, srvgg = import_architectures()
    net = srvgg(num_in_ch=3, num_out_ch=3, num_feat=64, num_conv=16, upscale=4, act_type="prelu")
    upsampler = RealESRGANer(scale=4, model_path=str(weights), model=net, tile=0, pre_pad=0, half=False, device="cpu")
    output, _ = upsampler.enhance(image, outscale=4)
    return output


@pytest.mark.parametrize("fmt,quality,magic", [("jpeg", 40, b"\xff\xd8"), ("webp", 80, b"RIFF"), ("png", None, b"\x89PNG")])
def test_an_image_comes_back_in_the_format_and_quality_asked_for(service, small_image, fmt, quality, magic):
    task = service.run(url=small_image, type="image", model="smooth-x2.pth", output_format=fmt,
                       output_quality=quality)
    assert task["status"] == "completed", task["error"]
    assert task["output"]["metadata"]["format"] == fmt and task["output"]["metadata"]["quality"] == quality
    assert fetch_output(task)[:4].startswith(magic)


@pytest.mark.parametrize("codec", task_codecs_available())
def test_every_video_codec_the_build_has_gives_a_file_pyav_decodes(service, short_clip, tmp_path, codec):
    """ProRes, which takes no crf and MP4 cannot hold, comes back in QuickTime unless told."""
    crf = None if codec == "prores" else 30
    task = service.run(url=short_clip, type="video", model="smooth-x2.pth", video_codec=codec, crf=crf, timeout=300)
    assert task["status"] == "completed", task["error"]
    metadata = task["output"]["metadata"]
    assert (metadata["video_codec"], metadata["crf"], metadata["format"]) == (
        codec, crf, "mov" if codec == "prores" else "mp4")
    assert task["output"]["url"].endswith(f".{metadata['format']}")
    out = tmp_path / f"out.{metadata['format']}"
    out.write_bytes(fetch_output(task))
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.codec.canonical_name == codec
        assert sum(1 for _ in container.decode(stream)) == 5


@pytest.mark.parametrize("body,field", [
    ({"type": "image", "video_codec": "hevc"}, "video_codec"),
    ({"type": "image", "crf": 20}, "crf"),
    ({"type": "image", "damaged_frames": "repeat"}, "damaged_frames"),
    ({"type": "image", "model": "realesr-general-x4v3.pth", "denoise_strength": 1.5}, "denoise_strength"),
    ({"type": "video", "damaged_frames": "skip"}, "damaged_frames"),
    ({"type": "video", "output_format": "png"}, "output_format"),
    ({"type": "image", "output_format": "png", "output_quality": 80}, "output_quality"),
    ({"type": "image", "output_format": "gif"}, "output_format"),
    ({"type": "image", "output_format": "mkv"}, "output_format"),
    ({"type": "video", "output_format": "webm"}, "output_format"),
    ({"type": "video", "output_quality": 80}, "output_quality"),
    ({"type": "video", "video_codec": "vp9"}, "video_codec"),
    ({"type": "video", "video_codec": "hevc", "crf": 60}, "crf"),
    ({"type": "video", "video_codec": "prores", "crf": 20}, "crf"),
    ({"type": "video", "video_codec": "prores", "output_format": "mp4"}, "output_format"),
    ({"type": "video", "video_codec": "av1", "output_format": "mov"}, "output_format"),
    ({"type": "image", "output_quality": 0}, "output_quality"),
])
def test_an_output_choice_that_does_not_fit_is_a_422_naming_the_field(service, small_image, body, field):
    response = requests.post(service.url("/tasks"), json={"url": small_image, **body}, timeout=30)
    assert response.status_code == 422, response.text
    assert field in response.json()["error"]
