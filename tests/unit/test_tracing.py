import pytest
import torch

from tracer.tracing import (FLIP_WEIGHT, NEAR_BOUNDARY, NEAREST_WEIGHT, SPREAD_GATE, Observation,
                            Scores, dol_from_outputs, flip_from_outputs, key_evidence,
                            label_gap_from_outputs, logit_dol_from_outputs, margin_from_outputs,
                            named, outranks, score, scored, spread_from_outputs, verdict)


def test_dol_is_tracer_difference_at_top1_and_top2_labels():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])       # [1 example, 2 copies, 3]
    tracer = torch.tensor([[[0.2, 0.9, -0.4], [-0.5, 0.0, 0.8]]])
    # copy 0: top1 = 1, top2 = 2 -> 0.9 - (-0.4); copy 1: top1 = 0, top2 = 2 -> -0.5 - 0.8
    assert torch.allclose(dol_from_outputs(outputs, tracer), torch.tensor([[1.3, -1.3]]))


def test_observed_dol_matches_per_copy_computation(copies):
    x = torch.rand(7, 1, 8, 8)
    obs = copies.observe(x, batch_size=3)
    for i in range(copies.num_copies):
        copy = copies.copy(i)
        out, t = copy(x), copy.tracer_outputs(x)
        top2 = out.topk(2, 1).indices
        expected = t.gather(1, top2[:, :1]) - t.gather(1, top2[:, 1:])
        assert torch.allclose(obs.dol[:, i], expected.squeeze(1), atol=1e-6)
        assert torch.equal(obs.labels[:, i], out.argmax(1))


def test_verdict_argmax_and_abstention():
    scores = Scores(torch.tensor([[0.1, 0.9, 0.3], [0.2, 0.1, 0.15]]))
    index, abstained = verdict(scores)
    assert index.tolist() == [1, 0] and not abstained.any()
    index, abstained = verdict(scores, abstain_below=0.5)
    assert index.tolist() == [1, 0] and abstained.tolist() == [False, True]


def test_a_tie_at_the_top_names_nobody():
    scores = Scores(torch.tensor([[0.7, 0.2, 0.7], [0.7, 0.9, 0.7]]))
    assert verdict(scores)[1].tolist() == [True, False]
    assert named(scores).tolist() == [-1, 1]


def test_eligible_candidates_rank_first_and_only_they_are_named_at_a_threshold():
    value = torch.tensor([[0.9, 0.2, 0.1],     # only copy 1 eligible: it tops copy 0's 0.9
                          [0.9, 0.2, 0.1],     # none eligible: ranked by value alone
                          [0.1, 0.3, 0.3]])    # copies 1 and 2 eligible and tied
    eligible = torch.tensor([[False, True, False], [False, False, False], [True, True, True]])
    scores = Scores(value, eligible)
    assert named(scores).tolist() == [1, 0, -1]
    # a threshold names only an eligible top whose value reaches it
    assert named(scores, 0.15).tolist() == [1, -1, -1]
    assert named(scores, 0.25).tolist() == [-1, -1, -1]
    assert scores.order()[0].tolist() == [1, 0, 2] and scores.order()[1].tolist() == [0, 1, 2]
    # candidates at or above the source (ties count): row 0's copy 0 is below the eligible one
    assert scores.at_or_above(torch.tensor([0, 0, 1])).tolist() == [1, 0, 1]


def test_outranks_is_eligible_first_then_value():
    e = torch.tensor([True, False, True])
    assert outranks(e, torch.tensor([0.1, 0.9, 0.5]), torch.tensor([False, True, True]),
                    torch.tensor([0.9, 0.1, 0.5])).tolist() == [True, False, False]


def test_the_mean_of_scores_is_eligible_where_it_was_on_half_the_examples():
    s = Scores(torch.tensor([[1.0, 0.0], [3.0, 2.0]]), torch.tensor([[True, False],
                                                                    [False, False]]))
    m = s.mean()
    assert m.value.tolist() == [[2.0, 1.0]] and m.eligible.tolist() == [[True, False]]


def test_scores_must_be_a_matrix_with_eligibility_of_its_shape():
    with pytest.raises(ValueError, match=r"\[n, m\]"):
        Scores(torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        Scores(torch.zeros(2, 3), torch.zeros(2, 2, dtype=torch.bool))


def test_debiased_disagree_reads_disagreement_as_eligibility():
    obs = Observation(dol=torch.tensor([[1.9, 0.2, -0.5]]), labels=torch.tensor([[4, 4, 7]]),
                      base_labels=torch.tensor([[4, 4, 4]]),
                      debiased=torch.tensor([[0.5, 0.3, 0.1]]))
    assert score(obs, "dol").value.argmax().item() == 0
    s = score(obs, "debiased_disagree")
    assert s.eligible.tolist() == [[False, False, True]] and named(s).item() == 2
    assert named(s, 0.05).item() == 2 and named(s, 0.2).item() == -1
    with pytest.raises(ValueError, match="scorer"):
        score(obs, "vibes")
    with pytest.raises(ValueError, match="clean labels"):
        score(obs, "logit_dol_label")
    assert set(scored(obs, ("debiased_disagree", "dol", "logit_dol_label")).scores) == {
        "debiased_disagree", "dol"}


def test_logit_dol_reads_pre_activations_in_units_of_their_spread():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])     # copy 0: 1 > 2; copy 1: 0 > 2
    z = torch.tensor([[3.0, 1.0, -1.0]])                              # std over K = 2
    perms = torch.tensor([[0, 1, 2], [2, 0, 1]])                      # copy 1 reads z[2], z[0], z[1]
    zp = z[:, perms]
    # with the clean label 0: copy 0: (z1 - z0) / 2 = -1; copy 1: slot 0 is top-1 -> 0
    labelled = logit_dol_from_outputs(outputs, zp, torch.tensor([0]))
    assert torch.allclose(labelled, torch.tensor([[-1.0, 0.0]]))


def test_observe_reads_the_clean_label_rule_from_the_pre_activations(copies):
    x = torch.rand(5, 1, 8, 8)
    obs = copies.observe(x, clean_labels=torch.zeros(5, dtype=torch.long), batch_size=2)
    assert torch.allclose(torch.tanh(copies.tracer.pre_activation(x)), copies.tracer(x))
    assert obs.logit_dol_label.shape == (5, copies.num_copies)
    assert torch.isfinite(obs.logit_dol_label).all()


def test_observe_reports_the_base_classifier_label(copies):
    x = torch.rand(4, 1, 8, 8)
    obs = copies.observe(x)
    assert torch.equal(obs.base_labels, copies.base(x).argmax(1, keepdim=True).expand(4, 3))


def test_the_vae_tracer_offers_no_debiased_rule():
    from conftest import tiny_copies
    vae = tiny_copies(method="paper")
    assert vae.scorers == ("dol", "logit_dol_label")
    obs = vae.observe(torch.rand(2, 1, 8, 8))
    assert obs.debiased is None
    with pytest.raises(ValueError, match="debiased_disagree needs the residual tracer"):
        score(obs, "debiased_disagree")


@pytest.mark.parametrize("keying", ["permutation", "projection"])
def test_debiased_alignment_is_the_cosine_of_the_debiased_residual(keying):
    from conftest import tiny_copies
    copies = tiny_copies(num_copies=4, keying=keying)
    x = torch.rand(5, 1, 8, 8)
    obs = copies.observe(x, batch_size=2)
    t = copies.tracer
    with torch.no_grad():
        r = t.noise(x)
        r = (r - t.noise((x - r).clamp(0, 1))).flatten(1)
        out = copies.outputs(x)
    top2 = out.topk(2, -1).indices
    for j in range(copies.num_copies):
        key = (t.projection[copies.permutations[j]] if keying == "permutation"
               else copies.projections[j])
        d = key[top2[:, j, 0]] - key[top2[:, j, 1]]
        cos = (d * r).sum(1) / (2 ** 0.5 * r.norm(dim=1))
        assert torch.allclose(obs.debiased[:, j], cos, atol=1e-4)
    s = score(obs, "debiased_disagree")
    assert torch.equal(s.value, obs.debiased)
    assert torch.equal(s.eligible, obs.labels != obs.base_labels)


def test_projected_copies_trace_from_one_pass_as_each_copy_alone_would():
    from conftest import tiny_copies
    copies = tiny_copies(num_copies=40, keying="projection")
    x = torch.rand(6, 1, 8, 8)
    obs = copies.observe(x, batch_size=4)
    with torch.no_grad():
        for j in (0, 17, 39):
            copy = copies.copy(j)
            out, t = copy(x), copy.tracer_outputs(x)
            top2 = out.topk(2, 1).indices
            dol = (t.gather(1, top2[:, :1]) - t.gather(1, top2[:, 1:])).squeeze(1)
            assert torch.allclose(obs.dol[:, j], dol, atol=1e-5)
            assert torch.equal(obs.labels[:, j], out.argmax(1))


def test_spread_reads_the_label_row_above_the_lowest_row():
    outputs = torch.tensor([[[0.1, 0.7, 0.5], [0.9, 0.2, 0.3]]])     # labels: copy 0: 1, copy 1: 0
    z = torch.tensor([[[2.0, 3.0, -1.0], [0.5, 1.0, -2.0]]])
    # copy 0: (3 - (-1)) / (sqrt 2 * 2); copy 1: (0.5 - (-2)) / (sqrt 2 * 2)
    got = spread_from_outputs(outputs, z, torch.tensor([2.0]))
    assert torch.allclose(got, torch.tensor([[4.0, 2.5]]) / (2 * 2 ** 0.5))


def test_spread_names_the_copy_whose_rows_a_deep_attack_moved_when_every_copy_agrees_with_c():
    """A residual along copy 2's (label, clean) rows, as a deep attack on copy 2 leaves it, plus
    noise twice its size: every copy shows C's label (nobody disagrees: debiased_disagree has no
    eligible copy), and the spread of copy 2's own projection names it."""
    from tracer.models.copies import random_projections
    g = torch.Generator().manual_seed(0)
    keys = random_projections(5, 10, 784, seed=3)                       # [m, K, d]
    att, clean = 4, 7
    hits = 0
    for _ in range(50):
        signal = keys[2, att] - keys[2, clean]
        r = signal + 2 * signal.norm() * torch.randn(784, generator=g) / 784 ** 0.5
        z = (keys @ r).unsqueeze(0)                                      # [1, m, K]
        outputs = torch.zeros(1, 5, 10)
        outputs[..., att] = 1.0                                          # C's label everywhere
        obs = Observation(dol=torch.zeros(1, 5), labels=torch.full((1, 5), att),
                          base_labels=torch.full((1, 5), att), debiased=torch.zeros(1, 5),
                          spread=spread_from_outputs(outputs, z, r.norm().view(1)))
        assert not score(obs, "debiased_disagree").eligible.any()
        hits += int(named(score(obs, "debiased_spread")).item() == 2)
    assert hits >= 48


def test_spread_disagree_reads_the_disagreeing_copies_only_where_no_spread_stands_out():
    # median spread 0.20 in each example, so a spread stands out from 3 x 0.20 = 0.60 on
    # example 0: none stands out and copy 2 alone disagrees with C: only copy 2 is eligible
    # example 1: none stands out and nobody disagrees: every copy is, the spread decides
    # example 2: copy 0's spread stands out (a deep attack): it decides, though copy 2 disagrees
    obs = Observation(dol=torch.zeros(3, 3),
                      labels=torch.tensor([[4, 4, 7], [4, 4, 4], [4, 4, 7]]),
                      base_labels=torch.full((3, 3), 4), debiased=torch.zeros(3, 3),
                      spread=torch.tensor([[0.30, 0.10, 0.20], [0.10, 0.40, 0.20],
                                           [0.90, 0.10, 0.20]]))
    s = score(obs, "spread_disagree")
    assert SPREAD_GATE == 3.0
    assert s.eligible.tolist() == [[False, False, True], [True, True, True], [True, False, False]]
    assert torch.equal(s.value, obs.spread)
    assert named(s).tolist() == [2, 1, 0]
    assert named(score(obs, "debiased_spread")).tolist() == [0, 1, 0]
    assert named(s, abstain_below=0.25).tolist() == [-1, 1, 0]   # the eligible copy 2 reads 0.20


def test_only_projection_keys_offer_the_spread():
    from conftest import tiny_copies
    perm, proj = tiny_copies(keying="permutation"), tiny_copies(keying="projection")
    assert "debiased_spread" not in perm.scorers and proj.scorers[0] == "nearest_flip"
    assert "flip_disagree" not in perm.scorers and "nearest_flip" not in perm.scorers
    assert "spread_disagree" not in perm.scorers and "spread_disagree" in proj.scorers
    x = torch.rand(5, 1, 8, 8)
    assert perm.observe(x).spread is None
    with pytest.raises(ValueError, match="debiased_spread needs the residual tracer with "
                                         "projection keys"):
        score(perm.observe(x), "debiased_spread")
    obs = proj.observe(x, batch_size=2)
    t = proj.tracer
    with torch.no_grad():
        answered = t.noise(x)
        r = (answered - t.noise((x - answered).clamp(0, 1))).flatten(1)
        answered = answered.flatten(1)
        labels = proj.outputs(x).argmax(-1)
        base = proj.base_outputs(x)[:, 0].argmax(-1)
    for j in range(proj.num_copies):
        z = r @ proj.projections[j].T
        want = (z.gather(1, labels[:, j:j + 1]).squeeze(1) - z.min(1).values) / (
            2 ** 0.5 * r.norm(dim=1))
        assert torch.allclose(obs.spread[:, j], want, atol=1e-4)
        # the flip reads R(x) itself, what the copy answered from, not the debiased residual
        z = answered @ proj.projections[j].T
        lean = z.gather(1, labels[:, j:j + 1]) - z.gather(1, base[:, None])
        assert torch.allclose(obs.flip[:, j], lean.squeeze(1) / (2 ** 0.5 * answered.norm(dim=1)),
                              atol=1e-4)


def test_the_key_test_reads_each_unsold_key_as_a_copy_holding_it_would(monkeypatch):
    from conftest import tiny_copies
    from tracer.models import ProjectedCopies
    monkeypatch.setattr(ProjectedCopies, "UNSOLD_CHUNK", 3)      # 7 keys: chunks of 3, 3, 1
    copies = tiny_copies(keying="projection", unsold=7)
    assert copies.num_unsold == 7 and tiny_copies(keying="projection").num_unsold == 0
    holders = ProjectedCopies(copies.base, copies.tracer, copies.unsold, copies.alpha,
                              copies.norm).eval()
    x = torch.rand(6, 1, 8, 8)
    y = torch.randint(0, 10, (6,))
    obs = copies.observe(x, clean_labels=y, batch_size=4)
    held = holders.observe(x, clean_labels=y)
    assert torch.allclose(obs.unsold_spreads, held.spread, atol=1e-6)
    assert torch.allclose(obs.unsold_flips, held.flip, atol=1e-6)
    assert torch.allclose(obs.unsold_label, held.logit_dol_label, atol=1e-5)
    assert copies.observe(x).unsold_label is None
    assert (obs.unsold_flips != 0).any()      # some unsold key's copy disagrees with C
    for name in ("debiased_spread", "spread_disagree"):
        s = score(obs, name)
        assert torch.equal(s.vouched, obs.spread > obs.unsold_spreads.max(1, keepdim=True).values)
        assert torch.equal(s.unsold, obs.unsold_spreads)
    s = score(obs, "flip_disagree")
    unsold = obs.unsold_spreads + FLIP_WEIGHT * obs.unsold_flips
    assert torch.allclose(s.unsold, unsold)
    assert torch.equal(s.vouched, s.value > unsold.max(1, keepdim=True).values)
    assert tiny_copies(keying="projection").observe(x).unsold_spreads is None
    assert score(tiny_copies(keying="projection").observe(x), "debiased_spread").vouched is None


def test_a_sold_key_that_is_also_unsold_never_passes_the_key_test():
    from conftest import tiny_copies
    from tracer.models import ProjectedCopies
    copies = tiny_copies(keying="projection", unsold=5)
    keys = copies.projections.clone()
    keys[1] = copies.unsold[3]                       # copy 1's key is one the test reads too
    twin = ProjectedCopies(copies.base, copies.tracer, keys, copies.alpha, copies.norm,
                           unsold=copies.unsold).eval()
    s = score(twin.observe(torch.rand(20, 1, 8, 8)), "debiased_spread")
    assert not s.vouched[:, 1].any()                 # a tie is no evidence
    index, _, nameable, _ = s.top()
    assert not nameable[index == 1].any()


def test_the_flip_leans_from_the_classifiers_label_to_the_copys_own():
    # two examples, |r| = sqrt 10 and sqrt 40; every copy reads z = P r on rows 0..2
    r_norm = torch.tensor([10 ** 0.5, 40 ** 0.5])
    z = torch.tensor([[[3.0, 1.0, 0.0], [1.0, 3.0, 0.0], [0.0, 0.0, 2.0]]]).repeat(2, 1, 1)
    base = torch.tensor([[[0.0, 0.0, 1.0]]]).repeat(2, 1, 1)                     # C says 2
    outputs = torch.tensor([[[0.9, 0.0, 0.8], [0.0, 0.5, 0.9], [0.1, 0.2, 0.9]]]).repeat(2, 1, 1)
    # copy 0 says 0 (z0 - z2 = 3), copy 1 says 2 as C does, copy 2 says 2 as C does
    flip = flip_from_outputs(outputs, base, z, r_norm)
    lean = torch.tensor([3.0, 0.0, 0.0])
    assert torch.allclose(flip, torch.stack([lean / (2 ** 0.5 * 10 ** 0.5),
                                             lean / (2 ** 0.5 * 40 ** 0.5)]))
    own = torch.tensor([[[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])   # C_i's labels
    flip = flip_from_outputs(outputs[:1], own, z[:1], r_norm[:1])
    assert torch.allclose(flip, torch.tensor([[2.0, -1.0, 2.0]]) / (2 ** 0.5 * 10 ** 0.5))


def test_flip_disagree_ranks_as_spread_disagree_on_the_spread_plus_the_flip():
    obs = Observation(dol=torch.zeros(3, 3),
                      labels=torch.tensor([[4, 4, 7], [4, 4, 4], [4, 4, 7]]),
                      base_labels=torch.full((3, 3), 4), debiased=torch.zeros(3, 3),
                      spread=torch.tensor([[0.30, 0.10, 0.20], [0.10, 0.40, 0.20],
                                           [0.90, 0.10, 0.20]]),
                      flip=torch.tensor([[0.0, 0.0, 0.25], [0.0, 0.0, 0.0], [0.0, 0.0, 0.3]]),
                      unsold_spreads=torch.tensor([[0.35, 0.1], [0.3, 0.2], [0.5, 0.2]]),
                      unsold_flips=torch.tensor([[0.0, 0.1], [0.2, 0.0], [0.0, 0.0]]))
    s = score(obs, "flip_disagree")
    assert FLIP_WEIGHT == 0.7
    assert torch.allclose(s.value, obs.spread + 0.7 * obs.flip)
    assert torch.equal(s.eligible, score(obs, "spread_disagree").eligible)
    # example 0: copy 2 reads 0.2 + 0.175 = 0.375 against the unsold keys' best 0.35, where its
    # spread alone (0.2) would not pass; example 1: an unsold key reads 0.3 + 0.14 = 0.44 above
    # copy 1's 0.40, where its spread alone (0.3) would not; example 2: copy 0 (0.9) passes
    assert s.vouched.tolist() == [[False, False, True], [False, False, False],
                                  [True, False, False]]
    assert named(s, abstain_below=-torch.inf).tolist() == [2, -1, 0]
    assert named(score(obs, "spread_disagree"), abstain_below=-torch.inf).tolist() == [-1, 1, 0]
    with pytest.raises(ValueError, match="needs both the unsold keys' spreads and their flips"):
        score(Observation(**{**obs.__dict__, "unsold_flips": None}), "flip_disagree")
    with pytest.raises(ValueError, match="flip_disagree needs the residual tracer with "
                                         "projection keys"):
        score(Observation(**{**obs.__dict__, "flip": None}), "flip_disagree")


def test_margin_is_each_copys_top_output_minus_its_second():
    outputs = torch.tensor([[[0.9, 0.1, 0.85], [0.2, 0.7, 0.1]]])
    assert torch.allclose(margin_from_outputs(outputs), torch.tensor([[0.05, 0.5]]))


def test_nearest_flip_ranks_first_the_copy_high_on_the_flip_sum_and_nearest_its_boundary():
    # three copies, three unsold keys, two examples with the copies' flip sums 0.50, 0.45, 0.10
    # and margins 0.30, 0.001, 0.02 (unsold 0.1, 0.2, 0.05: nearness ranks 6, 1, 2 of 6).
    # Example 0 (unsold sums 0.4, 0.3, 0.2): copy 0 passes the key test and stays first.
    # Example 1 (unsold sums 0.6, 0.3, 0.2): nobody passes; by -log(rank / 6), copy 0 reads
    # log 3 + 0.5 log 1 = 1.10, copy 1 log 2 + 0.5 log 6 = 1.59, copy 2 0 + 0.5 log 3 = 0.55:
    # copy 1 first, and no verdict
    obs = Observation(dol=torch.zeros(2, 3), labels=torch.full((2, 3), 4),
                      base_labels=torch.full((2, 3), 4), debiased=torch.zeros(2, 3),
                      spread=torch.tensor([[0.50, 0.45, 0.10]] * 2), flip=torch.zeros(2, 3),
                      unsold_spreads=torch.tensor([[0.4, 0.3, 0.2], [0.6, 0.3, 0.2]]),
                      unsold_flips=torch.zeros(2, 3),
                      margin=torch.tensor([[0.30, 0.001, 0.02]] * 2),
                      unsold_margins=torch.tensor([[0.1, 0.2, 0.05]] * 2))
    s, flip = score(obs, "nearest_flip"), score(obs, "flip_disagree")
    assert NEAREST_WEIGHT == 0.5
    assert torch.equal(s.value, flip.value) and torch.equal(s.vouched, flip.vouched)
    assert torch.equal(s.unsold, flip.unsold)
    assert s.top()[0].tolist() == [0, 1] and flip.top()[0].tolist() == [0, 0]
    assert named(s, abstain_below=-torch.inf).tolist() == [0, -1]
    assert named(s, abstain_below=0.55).tolist() == [-1, -1]       # the threshold still holds
    # without unsold keys there is no key test to fail: flip_disagree's first stays first
    alone = Observation(**{**obs.__dict__, "unsold_spreads": None, "unsold_flips": None,
                           "unsold_margins": None})
    assert score(alone, "nearest_flip").top()[0].tolist() == [0, 0]
    with pytest.raises(ValueError, match="nearest_flip needs every key's margin"):
        score(Observation(**{**obs.__dict__, "unsold_margins": None}), "nearest_flip")


def test_label_gap_is_each_copys_top_output_minus_its_output_at_the_clean_label():
    outputs = torch.tensor([[[0.9, 0.1, 0.85], [0.2, 0.7, 0.1]], [[0.9, 0.1, 0.85], [0.2, 0.7, 0.1]]])
    gap = label_gap_from_outputs(outputs, torch.tensor([2, 1]))
    assert torch.allclose(gap, torch.tensor([[0.05, 0.6], [0.8, 0.0]]))


def test_nearest_label_names_the_fooled_copy_just_past_its_boundary_where_no_key_vouches():
    # three copies, two unsold keys. logit_dol_label's values per example; label_gap: > 0 where
    # the evidence fools the copy. Example 0: copy 0 beats the unsold keys (2.0 > 1.0) and stays
    # first though copy 1 is nearer. 1: nobody does (unsold 3.0): copy 1, fooled 0.005 past its
    # boundary and leaning to its label, is first. 2: the same, but copy 1 leans away (-0.2):
    # copy 0 stays. 3: copy 2 reads highest but is not fooled: copy 0 (fooled) is first.
    # 4: the nearest fooled copy is NEAR_BOUNDARY or farther: copy 0 stays. 5: the label-free
    # key test vouches for copy 1 (spread 2.0 > 1.0), which is fooled: it is first, though the
    # clean label's test vouches for copy 0. 6: it vouches for copy 2, which is not fooled.
    value = torch.tensor([[2.0, 0.5, 0.1], [1.0, 0.5, 0.1], [1.0, -0.2, 0.1], [1.0, 0.5, 5.0],
                          [1.0, 0.5, 0.1], [2.0, 0.5, 0.1], [2.0, 0.5, 0.1]])
    gap = torch.tensor([[0.3, 0.005, 0.0], [0.3, 0.005, 0.0], [0.3, 0.005, 0.0],
                        [0.3, 0.0, 0.0], [0.3, NEAR_BOUNDARY, 0.0], [0.3, 0.3, 0.0],
                        [0.3, 0.3, 0.0]])
    unsold = torch.tensor([[1.0, 0.5]] + [[3.0, 0.5]] * 4 + [[1.0, 0.5]] * 2)
    spread = torch.zeros(7, 3)
    spread[5, 1] = spread[6, 2] = 2.0
    obs = Observation(dol=torch.zeros(7, 3), labels=torch.zeros(7, 3, dtype=torch.long),
                      base_labels=torch.zeros(7, 3, dtype=torch.long), logit_dol_label=value,
                      label_gap=gap, unsold_label=unsold, spread=spread, flip=torch.zeros(7, 3),
                      unsold_spreads=torch.ones(7, 2), unsold_flips=torch.zeros(7, 2))
    s = score(obs, "nearest_label")
    assert torch.equal(s.value, value) and torch.equal(s.unsold, unsold)
    assert s.top()[0].tolist() == [0, 1, 0, 0, 0, 1, 0]
    assert score(obs, "logit_dol_label").top()[0].tolist() == [0, 0, 0, 2, 0, 0, 0]
    # a verdict needs the clean label's key test: copy 1 of example 5 fails it
    assert named(s, abstain_below=-torch.inf).tolist() == [0, -1, -1, -1, -1, -1, 0]
    # without unsold keys there is no key test to fail: the first fooled copy by value stays
    alone = Observation(**{**obs.__dict__, "unsold_label": None})
    assert score(alone, "nearest_label").top()[0].tolist() == [0] * 7
    with pytest.raises(ValueError, match="nearest_label needs the evidence's clean labels"):
        score(Observation(**{**obs.__dict__, "label_gap": None}), "nearest_label")


def test_projection_keys_offer_the_clean_label_nearness_only_with_clean_labels():
    from conftest import tiny_copies
    copies = tiny_copies(keying="projection", unsold=4)
    x, y = torch.rand(5, 1, 8, 8), torch.randint(0, 10, (5,))
    assert "nearest_label" not in copies.trace(x).scores
    obs = copies.observe(x, clean_labels=y)
    assert obs.label_gap.shape == (5, 3) and (obs.label_gap >= 0).all()
    assert torch.equal(obs.label_gap > 0, obs.labels != y.unsqueeze(1))
    assert obs.unsold_label.shape == (5, 4)
    assert "nearest_label" in copies.trace(x, clean_labels=y).scores


def test_a_copy_that_is_not_the_source_passes_the_key_test_one_time_in_unsold_plus_one():
    # residuals along copy 0's (label, clean) rows plus noise: copy 1's key, like every unsold
    # key, never saw the attack, so it beats all 19 unsold keys 1 time in 20; copy 0 nearly always
    from tracer.models.copies import random_projections
    g = torch.Generator().manual_seed(1)
    trials, unsold, passes, wrong = 1000, 19, torch.zeros(3, 2), torch.zeros(2)
    for t in range(trials):
        keys = random_projections(2 + unsold, 10, 256, seed=t)           # sold: 0 and 1
        signal = keys[0, 4] - keys[0, 7]
        r = signal + 2 * signal.norm() * torch.randn(256, generator=g) / 256 ** 0.5
        z = (keys @ r).unsqueeze(0)                                      # [1, 21, K]
        outputs = z.clone()                                              # each key's own label
        outputs[:, 0, 4] = 1e3                                           # the attacked copy's
        spread = spread_from_outputs(outputs, z, r.norm().view(1))[0]
        base = torch.zeros(1, 1, 10)
        base[..., 7] = 1.0                                               # C: the clean label
        flip = flip_from_outputs(outputs, base, z, r.norm().view(1))[0]
        margin = margin_from_outputs(outputs)
        clean = torch.tensor([7])
        lean = logit_dol_from_outputs(outputs, z, clean)
        obs = Observation(dol=torch.zeros(1, 2), labels=outputs[:, :2].argmax(-1),
                          base_labels=torch.full((1, 2), 7), spread=spread[None, :2],
                          unsold_spreads=spread[None, 2:], flip=flip[None, :2],
                          unsold_flips=flip[None, 2:], margin=margin[:, :2],
                          unsold_margins=margin[:, 2:], logit_dol_label=lean[:, :2],
                          label_gap=label_gap_from_outputs(outputs[:, :2], clean),
                          unsold_label=lean[:, 2:])
        passes += torch.stack([score(obs, name).vouched[0].float()
                               for name in ("debiased_spread", "flip_disagree", "nearest_label")])
        # nearest_flip and nearest_label may rank copy 1 first (copy 0 sits far past its
        # boundary here), but name it only where its own value passes the key test
        wrong += torch.tensor([float(named(score(obs, name), abstain_below=-torch.inf)[0] == 1)
                               for name in ("nearest_flip", "nearest_label")])
    rate = passes / trials
    assert (rate[:, 0] > 0.95).all()
    assert ((rate[:, 1] - 1 / (unsold + 1)).abs() < 0.025).all()   # binomial sd: 0.007
    assert (wrong / trials < 1 / (unsold + 1) + 0.025).all()


def test_k_examples_from_one_buyer_are_key_tested_together():
    # copy 0 reads 1.0 on each example, but on each a different unsold key reads 1.5: no single
    # example vouches for it, while together it ranks second of five every time and each unsold
    # key ranks first once and below copy 1 (0.2) twice
    value = torch.tensor([[1.0, 0.2]] * 3)
    unsold = torch.tensor([[1.5, 0.1, 0.0], [0.0, 1.5, 0.1], [0.1, 0.0, 1.5]])
    s = Scores(value, vouched=value > unsold.max(1, keepdim=True).values, unsold=unsold)
    assert not s.vouched.any()
    group = s.mean()
    assert torch.equal(group.vouched, torch.tensor([[True, False]]))
    assert torch.allclose(group.unsold, unsold.mean(0, keepdim=True))
    # one example on which an unsold key reads 1,000 does not decide, as it would for means
    loud = torch.cat([torch.tensor([[0.9, 0.2]]), value])
    loud_unsold = torch.cat([torch.tensor([[1000.0, 0.1, 0.0]]), unsold])
    assert loud_unsold.mean(0).max() > loud.mean(0).max()
    assert torch.equal(Scores(loud, unsold=loud_unsold).mean().vouched, torch.tensor([[True, False]]))
    # several groups at once, as one at a time
    both = Scores(loud, unsold=loud_unsold).groups(torch.tensor([[1, 2, 3], [0, 1, 2]]))
    assert torch.equal(both.vouched[0], group.vouched[0])
    assert torch.allclose(both.value[1], loud[:3].mean(0))
    assert torch.allclose(key_evidence(value, unsold)[0, :2], torch.tensor([2.5, 5 / 3]).log())
    assert torch.equal(s.select(torch.tensor([0, 2])).unsold, unsold[[0, 2]])
    # without the unsold values: vouched where it was on at least half of the examples
    assert not Scores(value, vouched=s.vouched).mean().vouched.any()
    with pytest.raises(ValueError, match="unsold values must be"):
        Scores(value, unsold=unsold[:2])


def test_a_copy_that_is_not_the_source_passes_the_group_key_test_one_time_in_unsold_plus_one():
    # k weak examples along copy 0's rows: each alone rarely beats all 19 unsold keys, their mean
    # mostly does; copy 1's mean, exchangeable with the unsold keys', passes 1 time in 20
    from tracer.models.copies import random_projections
    g = torch.Generator().manual_seed(2)
    trials, unsold, k = 1000, 19, 5
    one, group = torch.zeros(2), torch.zeros(2)
    for t in range(trials):
        keys = random_projections(2 + unsold, 10, 256, seed=t)
        signal = keys[0, 4] - keys[0, 7]
        r = signal + 5 * signal.norm() * torch.randn(k, 256, generator=g) / 256 ** 0.5
        z = torch.einsum("mkd,nd->nmk", keys, r)                         # [k, 21, K]
        outputs = z.clone()
        outputs[:, 0, 4] = 1e3
        spread = spread_from_outputs(outputs, z, r.norm(dim=1))
        obs = Observation(dol=torch.zeros(k, 2), labels=outputs[:, :2].argmax(-1),
                          base_labels=torch.zeros(k, 2, dtype=torch.long), spread=spread[:, :2],
                          unsold_spreads=spread[:, 2:])
        s = score(obs, "debiased_spread")
        one += s.vouched.float().mean(0)
        group += s.mean().vouched[0].float()
    assert group[0] / trials > 0.85 > 0.55 > one[0] / trials        # measured: 0.915 and 0.48
    assert abs(group[1] / trials - 1 / (unsold + 1)) < 0.025
