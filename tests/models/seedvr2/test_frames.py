"""SeedVR2 pre/post-processing against the golden data of the reference implementation."""

import numpy as np
import pytest
import torch

from tests.helpers import shared_path
from tmlsr_ray.models.seedvr2.frames import preprocess, resized_size, to_samples, trim, wavelet_color_fix


def golden(name: str) -> np.ndarray:
    return np.load(shared_path("golden", "seedvr2", name))


def test_preprocessing_matches_the_reference():
    prepared = preprocess(torch.from_numpy(golden("input.npy")), resolution=64)
    expected = golden("preprocessed.npy")
    assert (prepared.height, prepared.width, prepared.frames) == (64, 89, 5)
    assert prepared.video.shape == expected.shape
    assert np.abs(prepared.video.numpy() - expected).max() <= 1e-6


def test_the_wavelet_colour_fix_matches_the_reference():
    prepared = preprocess(torch.from_numpy(golden("input.npy")), resolution=64)
    fixed = wavelet_color_fix(torch.from_numpy(golden("decoded.npy")), trim(prepared.video, prepared))
    assert np.abs(fixed.numpy() - golden("output_wavelet_float.npy")).max() <= 1e-4


@pytest.mark.parametrize("source,expected", [("output_wavelet_float.npy", "output_wavelet.npy"),
                                             ("decoded.npy", "output_nofix.npy")])
def test_final_frames_match_the_reference(source, expected):
    frames = to_samples(torch.from_numpy(golden(source)), np.uint8).numpy()
    assert frames.dtype == np.uint8 and frames.shape == golden(expected).shape
    assert np.abs(frames.astype(int) - golden(expected).astype(int)).max() <= 1


def test_short_side_becomes_the_resolution_for_both_orientations():
    assert resized_size(40, 56, 64) == (64, 89)
    assert resized_size(1920, 1080, 720) == (1280, 720)


def test_frame_counts_are_padded_to_4n_plus_1_by_repeating_the_last_frame():
    frames = torch.arange(7, dtype=torch.uint8).reshape(7, 1, 1, 1).expand(7, 16, 16, 3).contiguous()
    prepared = preprocess(frames, resolution=16)
    assert prepared.video.shape[1] == 9 and prepared.frames == 7
    assert torch.equal(prepared.video[:, 6], prepared.video[:, 8])
