"""The corruptions that no innocent set holds, on hand-worked images."""
import pytest
import torch

from tracer.transforms import (box_blur, brightness, contrast, downsample, mirror, quantize,
                               salt_and_pepper, sign_noise, uniform_noise)


def test_box_blur_averages_each_neighbourhood_and_keeps_a_flat_image():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 0.9
    b = box_blur(x, 3)
    assert b.shape == x.shape and torch.allclose(b[0, 0, 1:4, 1:4], torch.full((3, 3), 0.1))
    assert b[0, 0, 0].abs().max() == 0
    flat = torch.full((2, 3, 4, 4), 0.3)
    assert torch.allclose(box_blur(flat, 5), flat)
    with pytest.raises(ValueError, match="odd"):
        box_blur(x, 2)


def test_contrast_brightness_mirror_and_quantize_by_hand():
    x = torch.tensor([0.0, 0.25, 0.5, 1.0]).view(1, 1, 1, 4)
    assert torch.allclose(contrast(x, 0.5).flatten(), torch.tensor([0.25, 0.375, 0.5, 0.75]))
    assert torch.allclose(contrast(x, 4.0).flatten(), torch.tensor([0.0, 0.0, 0.5, 1.0]))
    assert torch.allclose(brightness(x, 0.2).flatten(), torch.tensor([0.2, 0.45, 0.7, 1.0]))
    assert torch.equal(mirror(x).flatten(), torch.tensor([1.0, 0.5, 0.25, 0.0]))
    assert torch.allclose(quantize(torch.tensor([0.1, 0.3, 0.5, 0.9]), 3),
                          torch.tensor([0.0, 0.5, 0.5, 1.0]))
    with pytest.raises(ValueError):
        contrast(x, 0.0)
    with pytest.raises(ValueError):
        quantize(x, 1)


def test_noises_stay_in_range_keep_their_size_and_repeat_with_their_seed():
    x = torch.rand(4, 1, 16, 16) * 0.6 + 0.2      # away from 0 and 1: nothing is clipped
    s = sign_noise(x, 0.05, seed=3)
    assert torch.allclose((s - x).abs(), torch.full_like(x, 0.05), atol=1e-6)
    assert torch.equal(s, sign_noise(x, 0.05, seed=3)) and not torch.equal(s, sign_noise(x, 0.05))
    u = uniform_noise(x, 0.1, seed=3) - x
    assert u.abs().max() <= 0.1 and u.std() > 0.05    # U(-0.1, 0.1) has std 0.058
    sp = salt_and_pepper(x, 0.2, seed=3)
    changed = sp != x
    assert 0.15 < changed.float().mean() < 0.25
    assert set(sp[changed].unique().tolist()) == {0.0, 1.0}
    for bad in (lambda: sign_noise(x, 0.0), lambda: uniform_noise(x, -1.0),
                lambda: salt_and_pepper(x, 1.0)):
        with pytest.raises(ValueError):
            bad()


def test_downsample_keeps_what_is_coarse_and_loses_what_is_fine():
    coarse = torch.zeros(1, 1, 8, 8)
    coarse[..., :, 4:] = 1.0                        # one edge: survives half the resolution
    fine = torch.zeros(1, 1, 8, 8)
    fine[..., :, ::2] = 1.0                         # alternate columns: averaged away
    assert downsample(coarse, 2).shape == coarse.shape
    assert torch.allclose(downsample(coarse, 2)[..., :, :2], torch.zeros(1, 1, 8, 2))
    assert torch.allclose(downsample(fine, 2), torch.full_like(fine, 0.5))
    with pytest.raises(ValueError):
        downsample(coarse, 1)
