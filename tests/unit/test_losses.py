import math

import pytest
import torch

from tracer.separation.losses import (MIXED_WEIGHTS, draw_noise, noise_prediction_loss,
                                      noise_sensitive_loss, random_noise_levels, vae_loss)


def _pair_with_cosine(angle_deg: float) -> tuple[torch.Tensor, torch.Tensor]:
    a = torch.tensor([[1.0, 0.0, 0.0]])
    r = math.radians(angle_deg)
    return a, torch.tensor([[math.cos(r), math.sin(r), 0.0]])


@pytest.mark.parametrize("angle", [0.0, 30.0, 75.0, 90.0, 120.0])
def test_trap_loss_is_distance_of_cosine_to_target(angle):
    a, b = _pair_with_cosine(angle)
    expected = abs(math.cos(math.radians(angle)) - math.cos(math.radians(75.0)))
    assert noise_sensitive_loss(a, b, 75.0) == pytest.approx(expected, abs=1e-6)
    assert noise_sensitive_loss(a, b, 75.0, form="square") == pytest.approx(expected ** 2, abs=1e-6)


def test_trap_loss_zero_exactly_at_theta_and_scale_invariant():
    a, b = _pair_with_cosine(60.0)
    assert noise_sensitive_loss(3 * a, 0.5 * b, 60.0) == pytest.approx(0.0, abs=1e-6)


def test_trap_loss_averages_over_batch_and_rejects_unknown_form():
    a1, b1 = _pair_with_cosine(0.0)
    a2, b2 = _pair_with_cosine(90.0)
    loss = noise_sensitive_loss(torch.cat([a1, a2]), torch.cat([b1, b2]), 90.0)
    assert loss == pytest.approx(0.5, abs=1e-6)
    with pytest.raises(ValueError, match="form"):
        noise_sensitive_loss(a1, b1, form="cube")


def test_vae_loss_kl_vanishes_for_standard_normal():
    x = torch.rand(4, 1, 8, 8)
    mse, kl = vae_loss(x, x, torch.zeros(4, 5), torch.ones(4, 5))
    assert mse == 0 and kl == pytest.approx(0.0, abs=1e-6)
    _, kl2 = vae_loss(x, x, torch.ones(4, 5), torch.ones(4, 5))
    assert kl2 == pytest.approx(2.5, abs=1e-5)  # 0.5 * sum(mu^2) over 5 latents


def test_drawn_noise_is_gaussian_or_bounded_uniform():
    g = torch.Generator().manual_seed(0)
    gauss = draw_noise((4000,), "gaussian", g)
    assert abs(float(gauss.std()) - 1) < 0.05 and float(gauss.abs().max()) > 1
    uni = draw_noise((4000,), "uniform", g)
    assert float(uni.abs().max()) <= 1 and abs(float(uni.mean())) < 0.05
    with pytest.raises(ValueError, match="noise kind"):
        draw_noise((2,), "salt", g)


def _law(img: torch.Tensor) -> str:
    """Which law of the mixture made one [1, H, W] image of noise, read off its structure."""
    for tile in (4, 2):
        blocks = img.unfold(1, tile, tile).unfold(2, tile, tile)
        if img.abs().allclose(torch.ones_like(img)) and (blocks == blocks[..., :1, :1]).all():
            return f"tiles{tile}"
    neighbours = (img[:, 1:] - img[:, :-1]).pow(2).mean() / img.pow(2).mean()
    return "white" if neighbours > 1.5 else "smooth"   # white: ~2, upsampled: well below 1


def test_mixed_noise_draws_each_law_at_its_weight_each_image_at_unit_mean_square():
    g = torch.Generator().manual_seed(0)
    xi = draw_noise((2000, 1, 28, 28), "mixture", g)
    assert torch.allclose(xi.pow(2).flatten(1).mean(1), torch.ones(2000), atol=1e-4)
    laws = [_law(img) for img in xi]
    expected = {"white": MIXED_WEIGHTS[0], "smooth": sum(MIXED_WEIGHTS[1:3]),
                "tiles2": MIXED_WEIGHTS[3], "tiles4": MIXED_WEIGHTS[4]}
    for law, share in expected.items():
        assert abs(laws.count(law) / 2000 - share) < 0.03, (law, laws.count(law))
    again = draw_noise((2000, 1, 28, 28), "mixture", torch.Generator().manual_seed(0))
    assert torch.equal(xi, again)
    odd = draw_noise((3, 3, 7, 9), "mixture", g)      # sizes the tiles do not divide
    assert odd.shape == (3, 3, 7, 9) and torch.isfinite(odd).all()


def test_attack_like_noise_is_half_white_half_the_attack_laws_at_unit_mean_square():
    xi = draw_noise((2000, 1, 28, 28), "attack_like", torch.Generator().manual_seed(0))
    signs = (xi.abs() == 1).flatten(1).all(dim=1)          # a law of +-1 signs
    assert abs(signs.float().mean() - 0.5) < 0.04
    assert torch.allclose(xi[signs].pow(2).flatten(1).mean(1), torch.ones(int(signs.sum())))
    assert abs(xi[~signs].pow(2).mean() - 1) < 0.01       # the Gaussian's, in expectation
    stripes = (xi[signs] == xi[signs][:, :, :1]).all(dim=2).all(dim=(1, 2))
    assert 0.15 < stripes.float().mean() < 0.35            # one law in four
    again = draw_noise((2000, 1, 28, 28), "attack_like", torch.Generator().manual_seed(0))
    assert torch.equal(xi, again)


def test_noise_prediction_loss_sums_pixels_averages_batch():
    pred = torch.zeros(2, 1, 2, 2)
    noise = torch.ones(2, 1, 2, 2)
    assert noise_prediction_loss(pred, noise) == pytest.approx(4.0)


def test_random_noise_levels_range_and_clean_share():
    gen = torch.Generator().manual_seed(0)
    s = random_noise_levels(10_000, 0.2, 0.25, gen)
    assert s.shape == (10_000, 1, 1, 1) and s.min() >= 0 and s.max() <= 0.2
    assert abs((s == 0).float().mean().item() - 0.25) < 0.02


def test_log_uniform_noise_levels_spread_evenly_over_octaves_from_the_floor():
    gen = torch.Generator().manual_seed(0)
    s = random_noise_levels(20_000, 0.064, 0.5, gen, floor=0.001).flatten()
    noisy = s[s > 0]
    assert abs(len(noisy) / len(s) - 0.5) < 0.02
    assert noisy.min() >= 0.001 and noisy.max() <= 0.064
    # six octaves from 0.001 to 0.064: each holds about a sixth of the noisy images, whereas
    # the uniform law puts about 3% of them below 0.002
    octaves = torch.histc(noisy.log2(), bins=6, min=math.log2(0.001), max=math.log2(0.064))
    assert torch.allclose(octaves / len(noisy), torch.full((6,), 1 / 6), atol=0.02)
    uniform = random_noise_levels(20_000, 0.064, 0.0, gen).flatten()
    assert (uniform < 0.002).float().mean() < 0.04


@pytest.mark.parametrize("floor", [0.0, -0.01, 0.064, 0.1])
def test_noise_floor_outside_the_scale_is_refused(floor):
    with pytest.raises(ValueError, match="noise floor"):
        random_noise_levels(4, 0.064, 0.5, floor=floor)
