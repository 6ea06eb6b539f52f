"""Tracing: score every candidate copy on the evidence and name the source (paper.md, "Tracing").

For candidate i: o = M_i(x_adv); att, cln = the top-1 and top-2 labels of o;
``DOL_i = T_i(x_adv)[att] - T_i(x_adv)[cln]``; the paper's verdict is argmax_i DOL_i.

A scorer turns one pass over the evidence (:class:`Observation`) into :class:`Scores`: a value
per example and candidate, higher meaning more likely the source, and, for some rules, which
candidates are *eligible* (a copy whose label differs from its own classifier's). Eligible
candidates rank above the others whatever their values; with an abstention threshold only an
eligible candidate whose value reaches it is named. The tracer's scorers (docs/method.md records
the others that were tried):

- ``dol``: the paper's rule; every candidate eligible. The paper's VAE tracer's default.
- ``debiased_disagree`` (ours, the default with permutation keys): the cosine between the debiased
  residual R(x) - R(x - R(x)) and the copy's (att, cln) direction of the key; eligible: the copies
  that disagree with their classifier (C, or the copy's own C_i). An attack that crosses only its
  own copy's boundary leaves exactly that copy disagreeing; R also answers the image's own
  structure, a part that dilutes a small attack's alignment and cancels in the debiased residual.
- ``debiased_spread`` (ours, offered with projection keys): the debiased residual's
  projection on the copy's label row minus its lowest projection on any row, over sqrt 2; every
  candidate eligible. A copy with its own projection P_i reads r through rows no other copy
  shares, so the row an attack on it pushed down (the clean label's, unknown to the
  investigator) stands out as that copy's minimum, and its label row as raised; a deep attack
  that moved C too, where no copy disagrees with C, is read as well as a minimal one. With
  permutation keys every copy's rows are the same K values and the minimum is the same for all:
  the rule would read only the label row, so these keys do not offer it.
- ``spread_disagree`` (ours, projection keys): ``debiased_spread``'s values; where
  no copy's spread stands out (none reaches ``SPREAD_GATE`` times the copies' median spread on
  the example, what an unrelated key reads), only the copies that disagree with their classifier
  are eligible, if any does. A score-based attack that stays near the boundary (SimBA, Square)
  leaves a weak spread but often crosses only its own copy's boundary; a strong spread (a deep
  attack that moved C too, where other copies may disagree by chance) decides alone. The
  default until ``flip_disagree``: on three seeds it read SimBA at 72-80% against 38-43% and
  Square 5 points higher, and named no wrong buyer on any attack (docs/method.md section 8).
- ``flip_disagree`` (ours; the default with projection keys until ``nearest_flip``):
  ``spread_disagree``'s ranks, on the spread plus ``FLIP_WEIGHT`` times the flip: how far the
  residual the copy answered from, R(x) without the common directions, leans from the
  classifier's label to the copy's own (0 where they agree). The key test reads the same sum on
  every unsold key. A score-based attack that ends just past its copy's boundary leaves that
  copy disagreeing with C and leaning away from C's label, which a key the attack never saw
  rarely does; the spread alone ranks such a copy among the unsold keys' spreads, which are
  never 0. On three seeds the verdict then names 35.5-65% of SimBA's examples and 41-49% of
  Square's, against 1.5-18.5% (docs/method.md section 13).
- ``nearest_flip`` (ours, the default with projection keys): ``flip_disagree``'s values, key
  test and threshold; where ``flip_disagree``'s first candidate fails the key test, the
  candidate ranked first is instead the one both high on the flip sum and nearest its own
  decision boundary: by the sum of its two rank evidences among all keys (sold and unsold),
  -log(rank / keys), the nearness weighted ``NEAREST_WEIGHT``. Attacks that stop at their first
  success (score- and decision-based) leave their copy just past its boundary, while a copy they
  fooled by the way sits wherever C and its own key put it (docs/method.md section 16).
- ``logit_dol_label`` (ours): DOL on the tracer's pre-activations with cln = the image's clean
  label (what the investigator sees it show), in units of their spread over the K outputs.
  Far past C's boundary (white-box attacks) tanh saturates and DOL loses what these still show.
- ``nearest_label`` (ours, with the clean label, projection keys): ``logit_dol_label``'s values,
  among the copies the evidence fools (the source is one of them), with their key test. A fooled
  copy that ``flip_disagree``'s key test vouches for is ranked first (what the evidence alone
  says stands); elsewhere, where ``logit_dol_label``'s first fails its key test and the fooled
  copy nearest its own boundary (its top output minus its output at the clean label,
  ``label_gap_from_outputs``) sits within ``NEAR_BOUNDARY`` and leans toward its label (a
  positive value: its tracer took part in fooling it), that copy: the clean-label reading of
  ``nearest_flip``'s nearness, sharper because the clean label says which copies are fooled.
  Deep attacks pass a key test or end far past every boundary and keep ``logit_dol_label``'s
  first. A verdict needs the clean-label key test (docs/method.md section 17).

The key test (the spread scorers, ``flip_disagree``, ``nearest_flip`` and ``nearest_label``, each
on its value): a copy may be named only if its value beats that of every one of the vendor's
*unsold* keys, drawn like the sold ones, on the same example. A copy that is not the source has
a key the attack never saw, so on any evidence (any attack, any innocent input) its value is
exchangeable with the unsold keys': it beats all M of them with chance at most 1/(M + 1), and
some wrong copy passes with chance at most (m - 1)/(M + 1) over the draw of the keys, whatever
the calibration sets held (docs/method.md section 8). For one vendor's draw a key can read some
kind of input high more often than that (section 13), which the calibrated threshold is there
for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor


@dataclass
class Scores:
    """Every candidate's score on each example. Shape: value, eligible, vouched [n, m].

    ``eligible`` None: every candidate is. Candidates rank by (eligible, value), eligible first.
    ``vouched``: whether the candidate passes the key test (its score beats every unsold key's);
    it does not change the rank, only whether a verdict may name the candidate. None: no key
    test. ``unsold`` [n, M]: the value each unsold key reads, where the scorer has a key test
    (kept so that k examples from one buyer can be tested together, :meth:`mean`); None where
    it has none or the values were not kept.
    """
    value: Tensor
    eligible: Tensor | None = None
    vouched: Tensor | None = None
    unsold: Tensor | None = None

    def __post_init__(self):
        if self.value.ndim != 2:
            raise ValueError(f"scores must be [n, m], got shape {tuple(self.value.shape)}")
        for name in ("eligible", "vouched"):
            mask = getattr(self, name)
            if mask is not None and mask.shape != self.value.shape:
                raise ValueError(f"{name} must have the scores' shape")
        if self.unsold is not None and (self.unsold.ndim != 2 or
                                        len(self.unsold) != len(self.value)):
            raise ValueError(f"unsold values must be [n = {len(self.value)}, M], got "
                             f"{tuple(self.unsold.shape)}")

    def __len__(self) -> int:
        return len(self.value)

    @property
    def num_candidates(self) -> int:
        return self.value.shape[1]

    def eligibility(self) -> Tensor:
        """``eligible``, with None read as every candidate: [n, m] bool."""
        return torch.ones_like(self.value, dtype=torch.bool) if self.eligible is None \
            else self.eligible

    def select(self, rows: Tensor) -> "Scores":
        """The examples ``rows`` (a bool mask or indices)."""
        return Scores(self.value[rows], *(None if m is None else m[rows]
                                          for m in (self.eligible, self.vouched, self.unsold)))

    def top(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per example: the top-ranked candidate, its value, whether a verdict may name it
        (eligible, and vouched where there is a key test), and whether another candidate ties
        it. Shape: -> 4 x [n]."""
        elig = self.eligibility()
        any_eligible = elig.any(dim=1, keepdim=True)
        pool = self.value.masked_fill(~(elig | ~any_eligible), -torch.inf)
        value, index = pool.max(dim=1)
        tied = (pool == value.unsqueeze(1)).sum(dim=1) > 1
        nameable = any_eligible.squeeze(1)
        if self.vouched is not None:
            nameable = nameable & self.vouched.gather(1, index.unsqueeze(1)).squeeze(1)
        return index, value, nameable, tied

    def order(self) -> Tensor:
        """Candidates from first to last in rank, per example: [n, m] indices."""
        by_value = self.value.argsort(dim=1, descending=True, stable=True)
        behind = (~self.eligibility()).gather(1, by_value).to(torch.int8)
        return by_value.gather(1, behind.argsort(dim=1, stable=True))

    def at_or_above(self, index: Tensor) -> Tensor:
        """How many other candidates rank at or above candidate ``index`` [n] (ties count):
        [n]."""
        rows = torch.arange(len(self))
        elig = self.eligibility()
        e, v = elig[rows, index].unsqueeze(1), self.value[rows, index].unsqueeze(1)
        return (outranks(elig, self.value, e, v) | ((elig == e) & (self.value == v))).sum(1) - 1

    def mean(self) -> "Scores":
        """One row from all: the k examples known to share a source, scored together
        (:meth:`groups` with one group)."""
        return self.groups(torch.arange(len(self)).unsqueeze(0))

    def groups(self, index: Tensor) -> "Scores":
        """One row per group of examples known to share a source (several pieces of evidence
        from one buyer): each candidate's mean value, eligible where it was on at least half of
        the group's examples. With the unsold keys' values, the key test reads the group too
        (:func:`key_evidence`); without them, vouched where it was on at least half.

        Shape: index [g, k] (rows of this set) -> [g, m].
        """
        value = self.value[index].mean(dim=1)
        elig = None if self.eligible is None else \
            self.eligible[index].float().mean(dim=1) >= 0.5
        if self.unsold is not None:
            evidence = key_evidence(self.value, self.unsold)[index].mean(dim=1)
            m = self.num_candidates
            vouched = evidence[:, :m] > evidence[:, m:].max(dim=1, keepdim=True).values
            return Scores(value, elig, vouched, self.unsold[index].mean(dim=1))
        vouched = None if self.vouched is None else \
            self.vouched[index].float().mean(dim=1) >= 0.5
        return Scores(value, elig, vouched)


def key_evidence(value: Tensor, unsold: Tensor) -> Tensor:
    """The key test for examples from one source: on each example every key (sold or unsold)
    is ranked by the value it reads, and its evidence is -log(rank / keys); over a group, a
    candidate passes when its mean evidence beats every unsold key's (:meth:`Scores.groups`). A
    copy that is not the source holds a key the attack never saw: its ranks are exchangeable
    with the unsold keys', so it passes with chance at most 1 / (M + 1), as on one example.
    Ranks weigh every example alike, where a mean of values would follow the few examples on
    which some key reads high (docs/method.md section 12).

    Shape: value [n, m], unsold [n, M] -> [n, m + M] (sold keys first).
    """
    keys = torch.cat([value, unsold], dim=1)
    rank = keys.argsort(dim=1, descending=True).argsort(dim=1) + 1          # 1: the highest
    return -(rank.float() / keys.shape[1]).log()


def outranks(e_a: Tensor, v_a: Tensor, e_b: Tensor, v_b: Tensor) -> Tensor:
    """Whether (eligible, value) a ranks strictly above b, elementwise (broadcasting)."""
    return (e_a & ~e_b) | ((e_a == e_b) & (v_a > v_b))


@dataclass
class Observation:
    """What one pass of C and T_0 over the evidence tells about every candidate.

    Shape: dol, labels, base_labels, logit_dol_label, debiased, spread [n, m] (base_labels: the
    label of each copy's classifier alone, C's or its own C_i's); unsold_spreads [n, M].
    ``logit_dol_label`` is None unless the clean labels were given, ``debiased`` and ``spread``
    unless the tracer is the residual one (``spread`` also unless the keys are projections).
    ``unsold_spreads``: the spread each of the M unsold keys reads on the example, for the key
    test; None without unsold keys. ``flip`` [n, m] and ``unsold_flips`` [n, M]: how far the
    residual the copies answer from (R(x) or, with ``reads=debiased``, D(x); without the common
    directions) leans from the classifier's label to each key's copy's label (0 where the two
    agree), beside ``spread`` and ``unsold_spreads``. ``margin`` [n, m] and ``unsold_margins``
    [n, M]: each key's copy's top output minus its second (:func:`margin_from_outputs`), how
    near its own boundary it sits. With the clean labels, ``label_gap`` [n, m]: each copy's top
    output minus its output at the clean label (:func:`label_gap_from_outputs`; above 0 where
    the evidence fools the copy), and ``unsold_label`` [n, M]: ``logit_dol_label`` read through
    each unsold key.
    """
    dol: Tensor
    labels: Tensor
    base_labels: Tensor
    logit_dol_label: Tensor | None = None
    debiased: Tensor | None = None
    spread: Tensor | None = None
    unsold_spreads: Tensor | None = None
    flip: Tensor | None = None
    unsold_flips: Tensor | None = None
    margin: Tensor | None = None
    unsold_margins: Tensor | None = None
    label_gap: Tensor | None = None
    unsold_label: Tensor | None = None


def dol_from_outputs(outputs: Tensor, tracer_outputs: Tensor) -> Tensor:
    """DOL for every (example, candidate) from the copies' outputs and tracer outputs.

    Shape: outputs, tracer_outputs [n, m, K] -> [n, m].
    """
    top2 = outputs.topk(2, dim=-1).indices
    t = tracer_outputs.gather(-1, top2)
    return t[..., 0] - t[..., 1]


def logit_dol_from_outputs(outputs: Tensor, pre_activations: Tensor,
                           clean_labels: Tensor) -> Tensor:
    """DOL on each copy's tracer pre-activations z, with cln = ``clean_labels``, in units of z's
    spread over its K outputs per example and copy.

    Shape: outputs, pre_activations [n, m, K]; clean_labels [n] -> [n, m].
    """
    z = pre_activations / pre_activations.std(dim=-1, keepdim=True).clamp_min(1e-12)
    att = outputs.argmax(-1, keepdim=True)
    cln = clean_labels.view(-1, 1, 1).expand_as(att)
    return (z.gather(-1, att) - z.gather(-1, cln)).squeeze(-1)


def aligned_from_outputs(outputs: Tensor, pre_activations: Tensor, scale: Tensor) -> Tensor:
    """(z_att - z_cln) / (sqrt 2 * scale) per copy: with z = P_i r and scale = |r|, the cosine
    between the residual r and the copy's (att, cln) direction P_att - P_cln (whose norm is about
    sqrt 2); att and cln come from ``outputs``.

    Shape: outputs, pre_activations [n, m, K]; scale [n] -> [n, m].
    """
    top2 = outputs.topk(2, dim=-1).indices
    z2 = pre_activations.gather(-1, top2)
    return (z2[..., 0] - z2[..., 1]) / (2 ** 0.5 * scale.clamp_min(1e-12).unsqueeze(1))


def flip_from_outputs(outputs: Tensor, base_outputs: Tensor, pre_activations: Tensor,
                      scale: Tensor) -> Tensor:
    """(z_att - z_C) / (sqrt 2 * scale) per copy: with z = P_i r and scale = |r|, the cosine
    between a residual r (tracing reads R(x), what the copy answered from) and the copy's
    direction from its classifier's label (C) to its own label (att), 0 where they are one
    label. The copy an attack crossed leans away from C and disagrees with
    it; a key the attack never saw rarely does.

    Shape: outputs, pre_activations [n, m, K]; base_outputs [n, 1 or m, K]; scale [n] -> [n, m].
    """
    att = outputs.argmax(-1, keepdim=True)
    cln = base_outputs.argmax(-1, keepdim=True).expand_as(att)
    lean = pre_activations.gather(-1, att) - pre_activations.gather(-1, cln)
    return lean.squeeze(-1) / (2 ** 0.5 * scale.clamp_min(1e-12).unsqueeze(1))


def margin_from_outputs(outputs: Tensor) -> Tensor:
    """Each copy's top output minus its second: how far past its own decision boundary the
    evidence lies. Shape: outputs [n, m, K] -> [n, m]."""
    top2 = outputs.topk(2, dim=-1).values
    return top2[..., 0] - top2[..., 1]


def label_gap_from_outputs(outputs: Tensor, clean_labels: Tensor) -> Tensor:
    """Each copy's top output minus its output at the clean label: how far past its own
    boundary the evidence took it (0 where the copy still answers the clean label).

    Shape: outputs [n, m, K]; clean_labels [n] -> [n, m].
    """
    at_label = outputs.gather(-1, clean_labels.view(-1, 1, 1).expand(-1, outputs.shape[1], 1))
    return outputs.max(-1).values - at_label.squeeze(-1)


def spread_from_outputs(outputs: Tensor, pre_activations: Tensor, scale: Tensor) -> Tensor:
    """(z_att - min_k z_k) / (sqrt 2 * scale) per copy, att from ``outputs``: with z = P_i r and
    scale = |r|, how far r reaches along copy i's label row above its lowest row.

    Shape: outputs, pre_activations [n, m, K]; scale [n] -> [n, m].
    """
    z_att = pre_activations.gather(-1, outputs.argmax(-1, keepdim=True)).squeeze(-1)
    return (z_att - pre_activations.min(-1).values) / (
        2 ** 0.5 * scale.clamp_min(1e-12).unsqueeze(1))


def _dol(obs: Observation) -> Scores:
    return Scores(obs.dol)


def _debiased_disagree(obs: Observation) -> Scores:
    if obs.debiased is None:
        raise ValueError("scorer debiased_disagree needs the residual tracer (separation=residual)")
    return Scores(obs.debiased, obs.labels != obs.base_labels)


def _debiased_spread(obs: Observation) -> Scores:
    if obs.spread is None:
        raise ValueError("scorer debiased_spread needs the residual tracer with projection keys "
                         "(separation.keying=projection)")
    return Scores(obs.spread, vouched=_key_test(obs), unsold=obs.unsold_spreads)


def _key_test(obs: Observation) -> Tensor | None:
    """Which copies' spread beats every unsold key's (strictly: a tie is not evidence)."""
    return None if obs.unsold_spreads is None else \
        obs.spread > obs.unsold_spreads.max(dim=1, keepdim=True).values


# The top copy's spread must reach this many times the median copy's before it decides alone
# (docs/method.md section 8: 3 kept PGD's top-1 at 99.5% and lifted SimBA's from 43% to 74.5%).
SPREAD_GATE = 3.0


def _spread_disagree(obs: Observation) -> Scores:
    return Scores(_debiased_spread(obs).value, _spread_gate(obs), _key_test(obs),
                  obs.unsold_spreads)


def _spread_gate(obs: Observation) -> Tensor:
    """The candidates ``spread_disagree`` ranks first: those whose spread stands out, or, where
    none does, those that disagree with their classifier (every one where none does): [n, m].
    ``obs.spread`` must be there (the callers check)."""
    spread = obs.spread
    disagree = obs.labels != obs.base_labels
    strong = spread >= SPREAD_GATE * spread.median(dim=1, keepdim=True).values
    weak = ~strong.any(dim=1, keepdim=True)
    return strong | weak & (disagree | ~disagree.any(dim=1, keepdim=True))


# The flip's weight beside the spread in flip_disagree (docs/method.md section 13: on three
# seeds 0.5 named 9.5-12 points fewer of SimBA's examples; 1.0 cost PGD up to 4.5 points of
# detection, 1.4 up to 22.5)
FLIP_WEIGHT = 0.7


def _flip_disagree(obs: Observation) -> Scores:
    if obs.flip is None or obs.spread is None:
        raise ValueError("scorer flip_disagree needs the residual tracer with projection keys "
                         "(separation.keying=projection)")
    value = obs.spread + FLIP_WEIGHT * obs.flip
    if (obs.unsold_spreads is None) != (obs.unsold_flips is None):
        raise ValueError("flip_disagree's key test needs both the unsold keys' spreads and "
                         "their flips")
    unsold = None if obs.unsold_spreads is None else \
        obs.unsold_spreads + FLIP_WEIGHT * obs.unsold_flips
    vouched = None if unsold is None else value > unsold.max(dim=1, keepdim=True).values
    return Scores(value, _spread_gate(obs), vouched, unsold)


# The nearness's weight beside the flip sum's in nearest_flip's ranking (docs/method.md section
# 16: 1.0 read SimBA 0.5-2 points higher than 0.5, but QEBA 6 lower, the worst case over attacks)
NEAREST_WEIGHT = 0.5


def _nearest_flip(obs: Observation) -> Scores:
    flip = _flip_disagree(obs)
    if obs.margin is None or (flip.unsold is None) != (obs.unsold_margins is None):
        raise ValueError("scorer nearest_flip needs every key's margin beside its flip sum "
                         "(the residual tracer with projection keys)")
    n, m = flip.value.shape
    none = flip.value.new_zeros(n, 0)
    unsold, unsold_margins = (none, none) if flip.unsold is None else \
        (flip.unsold, obs.unsold_margins)
    both = key_evidence(flip.value, unsold)[:, :m] + \
        NEAREST_WEIGHT * key_evidence(-obs.margin, -unsold_margins)[:, :m]
    top, _, nameable, _ = flip.top()
    # where flip_disagree's own first passes its key test it stays first: a verdict it would
    # give stands, and the nearness ranks only where flip_disagree could name nobody
    first_index = torch.where(nameable, top, both.argmax(dim=1))
    first = torch.zeros_like(flip.value, dtype=torch.bool)
    first[torch.arange(n), first_index] = True
    return Scores(flip.value, first, flip.vouched, flip.unsold)


def _logit_dol_label(obs: Observation) -> Scores:
    if obs.logit_dol_label is None:
        raise ValueError("scorer logit_dol_label needs the evidence's clean labels")
    return Scores(obs.logit_dol_label)


# How near its own boundary (top output minus the output at the clean label) a fooled copy must
# sit for nearest_label to name it where the key test vouches for no copy (docs/method.md
# section 17: 0.01 read Bandits 3 points lower, 0.03 HopSkipJump half a point lower on seed 0)
NEAR_BOUNDARY = 0.02


def _nearest_label(obs: Observation) -> Scores:
    if obs.logit_dol_label is None or obs.label_gap is None:
        raise ValueError("scorer nearest_label needs the evidence's clean labels and the "
                         "residual tracer with projection keys")
    value, gap = obs.logit_dol_label, obs.label_gap
    n = len(value)
    rows = torch.arange(n)
    fooled = gap > 0
    # the source is fooled by its own evidence; where no copy is (a failed attack), all compete
    pool = fooled | ~fooled.any(dim=1, keepdim=True)
    top = value.masked_fill(~pool, -torch.inf).argmax(dim=1)
    vouched = None if obs.unsold_label is None else \
        value > obs.unsold_label.max(dim=1, keepdim=True).values
    if vouched is None:   # no key test: nothing says where the lean is weak
        first_index = top
    else:
        nearest = gap.masked_fill(~fooled, torch.inf).argmin(dim=1)
        near = fooled[rows, nearest] & (gap[rows, nearest] < NEAR_BOUNDARY) & \
            (value[rows, nearest] > 0) & ~vouched[rows, top]
        first_index = torch.where(near, nearest, top)
        # a fooled copy that the label-free key test vouches for stays first: the clean label
        # adds to what the evidence alone says, it does not overrule it
        free, _, free_named, _ = _flip_disagree(obs).top()
        first_index = torch.where(free_named & fooled[rows, free], free, first_index)
    first = torch.zeros_like(value, dtype=torch.bool)
    first[rows, first_index] = True
    return Scores(value, first, vouched, obs.unsold_label)


SCORERS: dict[str, Callable[[Observation], Scores]] = {
    "dol": _dol, "debiased_disagree": _debiased_disagree, "debiased_spread": _debiased_spread,
    "spread_disagree": _spread_disagree, "flip_disagree": _flip_disagree,
    "nearest_flip": _nearest_flip, "logit_dol_label": _logit_dol_label,
    "nearest_label": _nearest_label}

# the scorers that read the evidence's clean labels (offered only where they are given)
CLEAN_LABEL_SCORERS = ("logit_dol_label", "nearest_label")


def score(obs: Observation, scorer: str = "dol") -> Scores:
    """The scores of scorer ``scorer`` (one of SCORERS)."""
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; known: {sorted(SCORERS)}")
    return SCORERS[scorer](obs)


@dataclass
class Scored:
    """What tracing makes of one evidence set, whatever the copies are (tracer or a baseline).

    Shape: labels and statistic [n, m]; every entry of scores [n, m]. ``statistic`` is the
    per-candidate value whose source vs innocent distributions the metrics compare (DOL for the
    tracer, the baseline's own score for a baseline).
    """
    labels: Tensor
    scores: dict[str, Scores]
    statistic: Tensor


def scored(obs: Observation, scorers: tuple[str, ...]) -> Scored:
    """The scores of each of ``scorers`` that ``obs`` supports (``CLEAN_LABEL_SCORERS`` only
    with clean labels)."""
    usable = [n for n in scorers
              if n not in CLEAN_LABEL_SCORERS or obs.logit_dol_label is not None]
    return Scored(obs.labels, {n: score(obs, n) for n in usable}, obs.dol)


def verdict(scores: Scores, abstain_below: float | None = None) -> tuple[Tensor, Tensor]:
    """The top-ranked candidate per example, and whether tracer abstains: when two or more
    candidates share the top rank (DOL cannot tell them apart, and naming the lower index would
    favour copy 0), or, with a threshold ``abstain_below`` (None: none, the top-1 reading; -inf:
    no score bound, but a verdict still), when the top candidate is not eligible, fails the key
    test, or its value is below the threshold.

    Shape: -> (index [n], abstained [n] bool).
    """
    index, value, eligible, abstained = scores.top()
    if abstain_below is not None:
        abstained = abstained | ~eligible | (value < abstain_below)
    return index, abstained


def named(scores: Scores, abstain_below: float | None = None) -> Tensor:
    """The copy each verdict names, -1 where tracer abstains: [n]."""
    index, abstained = verdict(scores, abstain_below)
    return torch.where(abstained, torch.full_like(index, -1), index)
