import torch

from tracer.models import ResidualTracer
from tracer.seeding import derived_seed
from tracer.transforms import gaussian_noise


def test_derived_seeds_differ_by_purpose_and_seed_and_repeat():
    seeds = {derived_seed(s, p) for s in (0, 1, 2) for p in ("gaussian_noise", "attack_chunk")}
    assert len(seeds) == 6
    assert derived_seed(3, "x") == derived_seed(3, "x")
    assert all(0 <= s < 2 ** 63 for s in seeds)


def test_gaussian_noise_does_not_repeat_the_tracers_projection():
    # Before tracer.seeding, gaussian_noise(x, std, seed) and ResidualTracer(seed=seed) drew from
    # one stream: image k's noise was exactly projection row k (cosine 1, before clipping).
    for seed in (0, 1):
        tracer = ResidualTracer(10, 1, 28, width=4, depth=3, gain=20.0, seed=seed)
        x = torch.full((10, 1, 28, 28), 0.5)
        noise = (gaussian_noise(x, 0.05, seed) - x).flatten(1)
        cos = torch.nn.functional.cosine_similarity(noise, tracer.projection, dim=1)
        assert cos.abs().max() < 0.2, cos
