import torch

import pytest

from tracer.tracing import (Observation, dol_from_outputs, dol_score, logit_dol_from_outputs,
                            named, observe, score, verdict)


def test_dol_is_tracer_difference_at_top1_and_top2_labels():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])       # [1 example, 2 copies, 3]
    tracer = torch.tensor([[[0.2, 0.9, -0.4], [-0.5, 0.0, 0.8]]])
    # copy 0: top1 = 1, top2 = 2 -> 0.9 - (-0.4); copy 1: top1 = 0, top2 = 2 -> -0.5 - 0.8
    assert torch.allclose(dol_from_outputs(outputs, tracer), torch.tensor([[1.3, -1.3]]))


def test_dol_score_matches_per_copy_computation(family):
    x = torch.rand(7, 1, 8, 8)
    scores, labels = dol_score(family, x, batch_size=3)
    for i in range(family.num_copies):
        copy = family.copy(i)
        out, t = copy(x), copy.tracer_outputs(x)
        top2 = out.topk(2, 1).indices
        expected = t.gather(1, top2[:, :1]) - t.gather(1, top2[:, 1:])
        assert torch.allclose(scores[:, i], expected.squeeze(1), atol=1e-6)
        assert torch.equal(labels[:, i], out.argmax(1))


def test_verdict_argmax_and_abstention():
    scores = torch.tensor([[0.1, 0.9, 0.3], [0.2, 0.1, 0.15]])
    index, abstained = verdict(scores)
    assert index.tolist() == [1, 0] and not abstained.any()
    index, abstained = verdict(scores, abstain_below=0.5)
    assert index.tolist() == [1, 0] and abstained.tolist() == [False, True]


def test_a_tie_at_the_top_names_nobody():
    scores = torch.tensor([[0.7, 0.2, 0.7], [0.7, 0.9, 0.7]])
    assert verdict(scores)[1].tolist() == [True, False]
    assert named(scores).tolist() == [-1, 1]


def test_dol_disagree_puts_copies_that_disagree_with_c_first():
    obs = Observation(dol=torch.tensor([[1.9, 0.2, -0.5]]), labels=torch.tensor([[4, 4, 7]]),
                      base_labels=torch.tensor([[4, 4, 4]]), logit_dol=torch.zeros(1, 3))
    assert score(obs, "dol").argmax().item() == 0
    assert score(obs, "dol_disagree").argmax().item() == 2
    with pytest.raises(ValueError, match="scorer"):
        score(obs, "vibes")
    with pytest.raises(ValueError, match="clean labels"):
        score(obs, "logit_dol_label")


def test_logit_dol_reads_pre_activations_in_units_of_their_spread():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])     # copy 0: 1 > 2; copy 1: 0 > 2
    z = torch.tensor([[3.0, 1.0, -1.0]])                              # std over K = 2
    perms = torch.tensor([[0, 1, 2], [2, 0, 1]])                      # copy 1 reads z[2], z[0], z[1]
    # copy 0: (z1 - z2) / 2 = 1; copy 1: slot 0 -> z2, slot 2 -> z1: (-1 - 1) / 2 = -1
    zp = z[:, perms]
    assert torch.allclose(logit_dol_from_outputs(outputs, zp), torch.tensor([[1.0, -1.0]]))
    # with the clean label 0: copy 0: (z1 - z0) / 2 = -1; copy 1: slot 0 is top-1 -> 0
    labelled = logit_dol_from_outputs(outputs, zp, torch.tensor([0]))
    assert torch.allclose(labelled, torch.tensor([[-1.0, 0.0]]))


def test_observe_matches_tanh_of_the_pre_activations(family):
    x = torch.rand(5, 1, 8, 8)
    obs = observe(family, x, clean_labels=torch.zeros(5, dtype=torch.long), batch_size=2)
    assert torch.allclose(torch.tanh(family.tracer.pre_activation(x)), family.tracer(x))
    assert obs.logit_dol.shape == obs.logit_dol_label.shape == (5, family.num_copies)
    assert torch.isfinite(obs.logit_dol).all()


def test_observe_reports_the_base_classifier_label(family):
    x = torch.rand(4, 1, 8, 8)
    obs = observe(family, x)
    assert torch.equal(obs.base_labels, family.base(x).argmax(1, keepdim=True).expand(4, 3))


def test_alignment_is_the_cosine_of_the_residual_with_each_copys_pair_direction(family):
    x = torch.rand(4, 1, 8, 8)
    obs = observe(family, x)
    t = family.tracer
    with torch.no_grad():
        r = t.noise(x).flatten(1)
        out = family.outputs(x)
    top2 = out.topk(2, -1).indices
    for i in range(4):
        for j in range(family.num_copies):
            a, c = family.permutations[j, top2[i, j, 0]], family.permutations[j, top2[i, j, 1]]
            d = t.projection[a] - t.projection[c]
            want = float(d @ r[i] / (2 ** 0.5 * r[i].norm()))
            assert obs.aligned[i, j].item() == pytest.approx(want, abs=1e-4)
    assert score(obs, "aligned_disagree").shape == (4, family.num_copies)


def test_aligned_disagree_needs_the_residual_tracer():
    from conftest import tiny_family
    obs = observe(tiny_family(kind="vae"), torch.rand(2, 1, 8, 8))
    assert obs.aligned is None and obs.debiased is None
    for name in ("aligned_disagree", "debiased_disagree"):
        with pytest.raises(ValueError, match=f"{name} needs the residual tracer"):
            score(obs, name)


@pytest.mark.parametrize("keying", ["permutation", "projection"])
def test_debiased_alignment_is_the_cosine_of_the_debiased_residual(keying):
    from conftest import tiny_family
    family = tiny_family(num_copies=4, keying=keying)
    x = torch.rand(5, 1, 8, 8)
    obs = observe(family, x, batch_size=2)
    t = family.tracer
    with torch.no_grad():
        r = t.noise(x)
        r = (r - t.noise((x - r).clamp(0, 1))).flatten(1)
        out = family.outputs(x)
    top2 = out.topk(2, -1).indices
    for j in range(family.num_copies):
        key = (t.projection[family.permutations[j]] if keying == "permutation"
               else family.projections[j])
        d = key[top2[:, j, 0]] - key[top2[:, j, 1]]
        cos = (d * r).sum(1) / (2 ** 0.5 * r.norm(dim=1))
        assert torch.allclose(obs.debiased[:, j], cos, atol=1e-4)
    # a copy disagreeing with C outranks every agreeing one, as with aligned_disagree
    s = score(obs, "debiased_disagree")
    disagree = obs.labels != obs.base_labels
    assert torch.allclose(s, obs.debiased + 4.0 * disagree.float())


def test_projected_copies_trace_from_one_pass_as_each_copy_alone_would():
    from conftest import tiny_family
    family = tiny_family(num_copies=40, keying="projection")
    x = torch.rand(6, 1, 8, 8)
    obs = observe(family, x, batch_size=4)
    with torch.no_grad():
        r = family.tracer.noise(x).flatten(1)
        for j in (0, 17, 39):
            copy = family.copy(j)
            out, t = copy(x), copy.tracer_outputs(x)
            top2 = out.topk(2, 1).indices
            dol = (t.gather(1, top2[:, :1]) - t.gather(1, top2[:, 1:])).squeeze(1)
            assert torch.allclose(obs.dol[:, j], dol, atol=1e-5)
            assert torch.equal(obs.labels[:, j], out.argmax(1))
            p = family.projections[j]
            d = p[top2[:, 0]] - p[top2[:, 1]]
            cos = (d * r).sum(1) / (2 ** 0.5 * r.norm(dim=1))
            assert torch.allclose(obs.aligned[:, j], cos, atol=1e-4)
