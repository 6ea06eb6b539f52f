import pytest
import torch
from torch import nn

from tracer.models import (CLASSIFIERS, InputSpec, ModelSpec, OutputNorm, ResidualTracer,
                           TracerSpec, VAETracer, build_base, build_classifier)
from tracer.models.backbones import Normalize


@pytest.mark.parametrize("arch", sorted(CLASSIFIERS))
def test_every_backbone_maps_images_to_logits(arch):
    c, size = (1, 8) if arch == "small_cnn" else (3, 32)
    net = build_classifier(arch, 7, c, size, [0.5] * c, [0.25] * c).eval()
    with torch.no_grad():
        assert net(torch.rand(2, c, size, size)).shape == (2, 7)


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="unknown classifier"):
        build_classifier("alexnet", 10, 1, 28, [0.5], [0.5])


def test_normalize_uses_channel_stats():
    n = Normalize([0.5, 0.0], [0.5, 2.0])
    x = torch.ones(1, 2, 1, 1)
    assert n(x).flatten().tolist() == [1.0, 0.5]


@pytest.mark.parametrize("size", [8, 28, 32])
def test_vae_tracer_shapes_and_sigma_positive(size):
    vae = VAETracer(10, 1, size, [0.5], [0.5], width=4)
    recon, mu, sigma, t = vae(torch.rand(3, 1, size, size))
    assert recon.shape == (3, 1, size, size) and t.shape == (3, 10)
    assert mu.shape == sigma.shape == (3, 5) and (sigma > 0).all()
    assert recon.min() >= 0 and recon.max() <= 1 and t.abs().max() <= 1
    assert vae.base_tracer is vae.encoder


def test_residual_tracer_is_quiet_when_noise_predictor_returns_zero():
    tr = ResidualTracer(10, 1, 8, width=4, depth=3, gain=5.0)
    torch.nn.init.zeros_(tr.noise.net[-1].weight)
    torch.nn.init.zeros_(tr.noise.net[-1].bias)
    assert torch.equal(tr(torch.rand(4, 1, 8, 8)), torch.zeros(4, 10))
    assert torch.allclose(tr.projection.norm(dim=1), torch.ones(10))


def test_residual_tracer_answers_along_its_projection():
    tr = ResidualTracer(4, 1, 8, width=4, depth=3, gain=2.0)
    tr.noise = torch.nn.Identity()  # R(x) = x: T_0 = tanh(gain * P x)
    x = tr.projection[2].view(1, 1, 8, 8) * 0.5
    t = tr(x)
    assert t.argmax().item() == 2 and t[0, 2] == pytest.approx(torch.tanh(torch.tensor(1.0)).item())


class _Fixed(torch.nn.Module):
    """R(x) = f(x), to check the debiased residual against hand-worked values."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


def test_debiased_residual_cancels_what_r_finds_again_on_the_denoised_image():
    tr = ResidualTracer(4, 1, 8, width=4, depth=3, gain=20.0)
    x = torch.rand(3, 1, 8, 8)
    # R answers only the image's own structure (the same on x and on x - R(x)): nothing is left
    tr.noise = _Fixed(lambda v: torch.full_like(v, 0.1))
    assert torch.allclose(tr.debiased_residual(x), torch.zeros(3, 64))
    # R(x) = x - 0.5: D(x) = 0.5 everywhere, where R finds nothing, so all of R(x) is kept
    tr.noise = _Fixed(lambda v: v - 0.5)
    assert torch.allclose(tr.debiased_residual(x), (x - 0.5).flatten(1), atol=1e-6)
    # D(x) is an image: clipped to [0, 1] before R reads it (R(x) = 2x gives D(x) = -x -> 0)
    tr.noise = _Fixed(lambda v: 2 * v)
    assert torch.allclose(tr.debiased_residual(x), 2 * x.flatten(1))


def test_a_tracer_that_reads_the_debiased_residual_answers_only_what_d_removes():
    tr = ResidualTracer(4, 1, 8, width=4, depth=3, gain=2.0, reads="debiased")
    x = torch.rand(3, 1, 8, 8)
    # R answers the image's own structure alone: the debiased reading is 0, the tracer quiet
    tr.noise = _Fixed(lambda v: torch.full_like(v, 0.1))
    read, debiased = tr.features(x, debiased=True)
    assert torch.equal(read, debiased) and torch.allclose(read, torch.zeros(3, 64))
    assert torch.allclose(tr(x), torch.zeros(3, 4))
    # R(x) = x - 0.5: all of R(x) is kept, as for a tracer that reads R(x)
    tr.noise = _Fixed(lambda v: v - 0.5)
    assert torch.allclose(tr.features(x)[0], (x - 0.5).flatten(1), atol=1e-6)
    with pytest.raises(ValueError, match="unknown tracer input"):
        ResidualTracer(4, 1, 8, width=4, depth=3, gain=2.0, reads="denoised")


def test_what_the_tracer_reads_is_checked_from_the_config_before_anything_trains():
    import tracer
    from tracer.config import to_spec
    spec = to_spec(tracer.compose("debug=tiny", "separation.tracer.reads=debiased"))
    assert spec.separation.tracer.reads == "debiased"
    with pytest.raises(ValueError, match="separation.tracer.reads='denoised'"):
        to_spec(tracer.compose("debug=tiny", "separation.tracer.reads=denoised"))
    with pytest.raises(ValueError, match="separation.tracer.output_norm='sigmoid'"):
        to_spec(tracer.compose("debug=tiny", "separation.tracer.output_norm=sigmoid"))


def test_both_tracers_offer_what_the_copies_read():
    x = torch.rand(2, 1, 8, 8)
    vae = VAETracer(10, 1, 8, [0.5], [0.5], width=4).base_tracer
    f, debiased = vae.features(x)
    assert f.shape == (2, 10) and debiased is None and torch.equal(vae.readout(f), f)
    assert vae.scorers[0] == "dol" and vae.gain == 1.0
    res = ResidualTracer(10, 1, 8, width=4, depth=3, gain=3.0)
    f, debiased = res.features(x, debiased=True)
    assert f.shape == debiased.shape == (2, 64)
    assert torch.allclose(res.gain * res.readout(f), res.pre_activation(x))
    assert res.scorers[0] == "debiased_disagree"
    inp = InputSpec([1, 8, 8], 10, [0.5], [0.5])
    assert build_base(ModelSpec("small_cnn", {"width": 4}), inp)(x).shape == (2, 10)


def test_output_norms():
    logits = torch.tensor([[2.0, 0.0, -2.0]])
    assert torch.allclose(OutputNorm("minmax")(logits), torch.tensor([[1.0, 0.5, 0.0]]))
    soft = OutputNorm("softmax", temperature=2.0)(logits)
    assert torch.allclose(soft, torch.softmax(logits / 2, dim=1))
    with pytest.raises(ValueError):
        OutputNorm("sigmoid")
    with pytest.raises(ValueError):
        OutputNorm("softmax", temperature=0)


def test_copy_is_classifier_plus_alpha_times_permuted_tracer(copies):
    x = torch.rand(5, 1, 8, 8)
    with torch.no_grad():
        c = copies.norm(copies.base(x))
        t0 = copies.tracer(x)
        outs = copies.outputs(x)
        for i in range(copies.num_copies):
            perm = copies.permutations[i]
            expected = c + copies.alpha * t0[:, perm]
            assert torch.allclose(copies.copy(i)(x), expected, atol=1e-6)
            assert torch.allclose(outs[:, i], expected, atol=1e-6)
    assert copies.predict(x).shape == (5, copies.num_copies)
    with pytest.raises(IndexError):
        copies.copy(copies.num_copies)


@pytest.mark.parametrize("reads", ["residual", "debiased"])
def test_projected_copies_are_classifier_plus_alpha_times_their_own_projection_of_r(reads):
    from conftest import tiny_copies
    copies = tiny_copies(num_copies=200, keying="projection", reads=reads)
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        c = copies.norm(copies.base(x))
        r = copies.tracer.noise(x).flatten(1) if reads == "residual" else \
            copies.tracer.debiased_residual(x)
        outs = copies.outputs(x)
        for i in (0, 99, 199):
            expected = c + copies.alpha * torch.tanh(copies.tracer.gain * r @ copies.projections[i].T)
            assert torch.allclose(copies.copy(i)(x), expected, atol=1e-5)
            assert torch.allclose(outs[:, i], expected, atol=1e-5)
    assert copies.num_copies == 200 and copies.predict(x).shape == (3, 200)


def test_projection_keys_have_unit_rows_and_do_not_depend_on_the_number_of_copies():
    from tracer.models import random_projections
    few, many = random_projections(3, 10, 64, seed=1), random_projections(1000, 10, 64, seed=1)
    assert torch.equal(few, many[:3]) and many.shape == (1000, 10, 64)
    assert torch.allclose(many.norm(dim=-1), torch.ones(1000, 10), atol=1e-5)
    assert not torch.equal(few, random_projections(3, 10, 64, seed=2))
    # every pair of copies' keys differ: the largest |cosine| between rows of two copies is small
    flat = many[:50].flatten(0, 1)
    cos = flat @ flat.T - torch.eye(500)
    assert cos.abs().max() < 0.7


def test_projection_keys_need_the_residual_tracer():
    from conftest import tiny_copies
    with pytest.raises(ValueError, match="residual tracer"):
        tiny_copies(method="paper", keying="projection")
    from tracer.separation import SeparationSpec
    with pytest.raises(ValueError, match="keying"):
        SeparationSpec(keying="hash")
    with pytest.raises(ValueError, match="residual tracer"):
        SeparationSpec(keying="projection", method="paper")
    with pytest.raises(ValueError, match="unknown separation method"):
        SeparationSpec(method="tracer")


def test_unsold_keys_are_projections_of_the_sold_keys_shape_read_with_the_shared_c():
    from conftest import tiny_copies
    from tracer.models import ProjectedCopies, build_copies, random_projections
    from tracer.separation import SeparationSpec
    with pytest.raises(ValueError, match="unsold_keys must be at least 0"):
        SeparationSpec(unsold_keys=-1)
    proj = tiny_copies(keying="projection", unsold=4)
    assert not torch.equal(proj.unsold, random_projections(4, 10, 64, seed=0))  # not the sold
    assert torch.equal(proj.unsold[:3], random_projections(3, 10, 64, 0, "unsold_key"))
    with pytest.raises(ValueError, match=r"unsold keys must be \[M >= 1, 10, 64\]"):
        ProjectedCopies(proj.base, proj.tracer, proj.projections, 0.15, proj.norm,
                        unsold=torch.zeros(2, 10, 63))
    with pytest.raises(ValueError, match="shared C"):
        ProjectedCopies(proj.base, proj.tracer, proj.projections, 0.15, proj.norm,
                        classifiers=torch.nn.ModuleList([proj.base] * 3), unsold=proj.unsold)
    perm = tiny_copies()
    with pytest.raises(ValueError, match="permutations"):
        build_copies(perm.base, perm.tracer, perm.permutations, 0.15, TracerSpec(),
                     unsold=proj.unsold)


def test_each_method_gets_its_own_keys_unless_told():
    from tracer.separation import SeparationSpec
    assert SeparationSpec().keying == "projection"
    assert SeparationSpec(method="paper").keying == "permutation"
    assert SeparationSpec(method="residual", keying="permutation").keying == "permutation"


def test_attack_like_laws_are_signs_of_epsilon_shaped_as_their_attacks():
    from tracer.models.common_directions import BLOCK_GRID, attack_like_perturbations
    laws = attack_like_perturbations((3, 2, 8, 8), torch.Generator().manual_seed(0), 0.1)
    assert set(laws) == {"stripes", "signs", "blocks"}
    for p in laws.values():
        assert p.shape == (3, 2, 8, 8) and torch.allclose(p.abs(), torch.full_like(p, 0.1))
    stripes, blocks = laws["stripes"], laws["blocks"]
    assert torch.equal(stripes, stripes[:, :, :1].expand_as(stripes))  # one sign per column
    cell = 8 // BLOCK_GRID
    assert torch.equal(blocks, blocks[:, :, ::cell, ::cell].repeat_interleave(cell, 2)
                       .repeat_interleave(cell, 3))


def test_square_mosaic_is_stripes_overwritten_by_one_square_of_each_side():
    from tracer.models.common_directions import square_mosaic
    g = torch.Generator().manual_seed(0)
    m = square_mosaic((200, 2, 28, 28), g, 0.1)
    assert m.shape == (200, 2, 28, 28) and torch.allclose(m.abs(), torch.full_like(m, 0.1))
    # the squares break the stripes: no image keeps every column constant
    column_constant = (m == m[:, :, :1]).all(dim=2)
    assert not column_constant.all(dim=(1, 2)).all()
    one = square_mosaic((1, 1, 28, 28), torch.Generator().manual_seed(1), 0.1, halvings=1)[0, 0]
    constant = [bool((one[r:r + 25, c:c + 25] == one[r, c]).all())
                for r in range(4) for c in range(4)]
    assert any(constant)    # the one square, 25 x 25 (0.8 of the pixels); stripes elsewhere


class _SubspaceResidual(nn.Module):
    """A stand-in tracer whose debiased residual of x is x's part in a fixed 3-dim subspace."""

    def __init__(self, basis):
        super().__init__()
        self.basis = nn.Parameter(basis, requires_grad=False)

    def debiased_residual(self, x):
        flat = x.flatten(1) - 0.5
        return flat @ self.basis @ self.basis.T


def test_common_directions_span_the_subspace_every_residual_shares():
    from tracer.models.common_directions import common_directions, without
    basis = torch.linalg.qr(torch.randn(64, 3, generator=torch.Generator().manual_seed(1)))[0]
    found = common_directions(_SubspaceResidual(basis), torch.rand(50, 1, 8, 8), 3, seed=2,
                              batch_size=16)
    assert found.shape == (64, 3)
    assert torch.allclose(found.T @ found, torch.eye(3), atol=1e-5)      # orthonormal
    assert torch.allclose(found @ found.T, basis @ basis.T, atol=1e-4)   # the same subspace
    r = torch.randn(4, 64)
    left = without(found, r)
    assert torch.allclose(left @ basis, torch.zeros(4, 3), atol=1e-5)
    assert torch.allclose(left + (r @ basis) @ basis.T, r, atol=1e-5)
    assert without(None, r) is r
    with pytest.raises(ValueError, match="1 to 63"):
        common_directions(_SubspaceResidual(basis), torch.rand(5, 1, 8, 8), 64)


def test_tracing_reads_the_residual_without_the_common_directions():
    from conftest import tiny_copies
    from tracer.models import ProjectedCopies
    plain = tiny_copies(keying="projection", unsold=4)
    common = torch.linalg.qr(torch.randn(64, 5, generator=torch.Generator().manual_seed(3)))[0]
    read = ProjectedCopies(plain.base, plain.tracer, plain.projections, plain.alpha, plain.norm,
                           unsold=plain.unsold, common=common).eval()
    x = torch.rand(6, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(read.outputs(x), plain.outputs(x))            # what buyers query
        r = plain.tracer.debiased_residual(x)
        r = r - (r @ common) @ common.T
        labels = plain.outputs(x).argmax(-1)
    obs = read.observe(x)
    for j in range(3):
        z = r @ plain.projections[j].T
        want = (z.gather(1, labels[:, j:j + 1]).squeeze(1) - z.min(1).values) / (
            2 ** 0.5 * r.norm(dim=1))
        assert torch.allclose(obs.spread[:, j], want, atol=1e-4)
    assert not torch.allclose(obs.spread, plain.observe(x).spread)
    with pytest.raises(ValueError, match=r"common directions must be \[64, 1 to 63\]"):
        ProjectedCopies(plain.base, plain.tracer, plain.projections, 0.15, plain.norm,
                        common=torch.zeros(64, 64))
