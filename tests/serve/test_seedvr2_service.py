"""SeedVR2 through the REST API: its own replicas, resolution = output height, seed in metadata.

Runs the tiny golden checkpoint (same tensor layout as the real 3B) copied into the service's
weights directory under the real file names.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import SEEDVR2_MODEL, decode, fetch_output, make_clip, png_bytes, shared_path, video_frames


@pytest.fixture(autouse=True)
def golden_checkpoint():
    shared_path("golden", "seedvr2", "dit.gguf")  # skips, with the reason, where ../shared is absent


def test_an_image_task_renders_at_the_requested_height_and_records_how(service, input_server):
    url = input_server.add("seedvr2.png", png_bytes(56, 40, "RGB"))
    task = service.run(url=url, type="image", model=SEEDVR2_MODEL, resolution=96, outscale=4, timeout=300)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"]) == (134, 96)  # aspect kept; outscale ignored
    assert decode(fetch_output(task)).shape == (96, 134, 3)
    assert meta["architecture"].startswith("SeedVR2") and meta["model"] == SEEDVR2_MODEL
    how = meta["seedvr2"]
    assert how["seed"] == task["params"]["seed"] and how["resolution"] == 96
    assert how["color_fix"] == "wavelet" and how["batch_frames"] >= 1 and "vae_tiling" in how


def test_the_same_seed_gives_the_same_image(service, input_server):
    url = input_server.add("seedvr2-seed.png", png_bytes(32, 32, "RGB", seed=3))
    outputs = [fetch_output(service.run(url=url, type="image", model=SEEDVR2_MODEL,
                                                 resolution=48, seed=seed, timeout=300))
               for seed in (5, 5, 6)]
    assert outputs[0] == outputs[1] and outputs[0] != outputs[2]


def test_a_video_task_restores_every_frame_at_the_requested_height(service, input_server, tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=7, size=(64, 48), rate=12)
    url = input_server.add("seedvr2.mp4", clip.read_bytes())
    task = service.run(url=url, model=SEEDVR2_MODEL, resolution=64, timeout=300)
    assert task["status"] == "completed", task["error"]
    meta = task["output"]["metadata"]
    assert (meta["width"], meta["height"], meta["frames"]) == (84, 64, 7)  # 85.3 → even for 4:2:0
    frames, streams, _ = video_frames(fetch_output(task), tmp_path / "out.mp4")
    assert len(frames) == 7 and frames[0][1].shape == (64, 84, 3)
    assert [kind for kind, _ in streams] == ["video", "audio"]
    assert np.allclose([pts for pts, _ in frames], [i / 12 for i in range(7)], atol=0.002)
    progress = next(s for s in task["stages"] if s["name"] == "process")
    assert progress["status"] == "success"


def test_resolution_is_ignored_for_other_models(service, input_server):
    url = input_server.add("plain.png", png_bytes(20, 10, "RGB"))
    task = service.run(url=url, type="image", model="tiny-x4.pth", resolution=1080, timeout=120)
    assert task["status"] == "completed", task["error"]
    assert (task["output"]["metadata"]["width"], task["output"]["metadata"]["height"]) == (80, 40)
