"""What an attack's evidence can hold of its source: why some attacks are read and others not.

A copy's trace reaches the evidence only through the queries the attack asked it: an example
that fooled the copy before any answer could steer it (a random start) holds nothing of it, and
one whose accepted steps moved C far more than the copy's tracer holds little. Three readings,
each against the clean images (the investigator has none; these explain, they do not trace):

- ``fooled_by_chance``: the share of images C gets right that a random attack-like perturbation
  at the attacks' budget already fools;
- ``tracer_share``: how far each example moved the source's tracer and C along (adversarial
  label - clean label), and how often the copy whose tracer moved most is the source;
- ``by_queries``: tracing accuracy and transfer by how many queries the example took;
- ``residual_seen``: the share of each example's perturbation that the residual tracer's noise
  predictor R returns (what the keys can read of it at all);
- ``where_detection_is_lost``: of the examples traced right, how many the key test lets the
  verdict name, and how many of those reach the calibrated threshold.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tracer.data import batches
from tracer.evidence import Evidence
from tracer.models.common_directions import attack_like_perturbations
from tracer.models.predict import predict_labels
from tracer.tracing import Scores

# bucket edges of by_queries: a random start (Square's first check and its stripes), a few
# steps, then roughly every fivefold
QUERY_EDGES = (0, 5, 20, 100, 500)


@torch.no_grad()
def fooled_by_chance(classifier: nn.Module, x: Tensor, y: Tensor, epsilon: float = 0.1,
                     seed: int = 0, batch_size: int = 500) -> dict[str, float]:
    """Per attack-like law, the share of the images ``classifier`` labels right that one random
    +-``epsilon`` draw of the law makes it label wrong. Shape: x [n, C, H, W]; y [n]."""
    laws = attack_like_perturbations(tuple(x.shape), torch.Generator().manual_seed(seed),
                                     epsilon)
    right = predict_labels(classifier, x, batch_size) == y
    if not right.any():
        raise ValueError("the classifier labels none of the images right")
    return {law: float(((predict_labels(classifier, (x + d).clamp(0.0, 1.0), batch_size) != y)
                        & right).sum() / right.sum())
            for law, d in laws.items()}


@torch.no_grad()
def tracer_share(copies: nn.Module, evidence: Evidence, clean: Tensor,
                 batch_size: int = 500) -> dict[str, Tensor]:
    """Along (y_adv - y_true), what each example did to every copy's tracer part and to C's:
    ``tracer`` [n, m] (alpha * tanh(T_i) at the example minus at its clean image), ``classifier``
    [n] (C's normalised output, the same difference; the first copy's own C_i where copies have
    their own), and ``oracle`` [n] (the copy whose tracer moved most, with the clean image's
    help). ``clean`` [n, C, H, W]: each example's clean image."""
    rows = torch.arange(len(evidence))
    a, c = evidence.y_adv, evidence.y_true

    def along(out: Tensor) -> Tensor:
        return out[rows, :, a] - out[rows, :, c]

    def parts(images: Tensor) -> tuple[Tensor, Tensor]:
        t, b = [], []
        for i in batches(len(images), batch_size):
            t.append(copies.alpha * torch.tanh(copies.tracer_pre_activations(images[i])))
            b.append(copies.base_outputs(images[i]))
        return torch.cat(t), torch.cat(b)
    (t_adv, b_adv), (t_clean, b_clean) = parts(evidence.x), parts(clean)
    tracer = along(t_adv) - along(t_clean)
    return {"tracer": tracer, "classifier": (along(b_adv) - along(b_clean))[:, 0],
            "oracle": tracer.argmax(1)}


@torch.no_grad()
def residual_seen(noise: nn.Module, x: Tensor, clean: Tensor, batch_size: int = 500) -> Tensor:
    """|R(x) - R(clean)| / |x - clean| per example (L2): how much of the perturbation the noise
    predictor ``noise`` (R) returns. A denoiser returns most of white noise and little of a
    smooth or blocky perturbation, which it takes for the image's own structure. Shape: x, clean
    [n, C, H, W] -> [n]; an unperturbed example reads 0."""
    out = []
    for i in batches(len(x), batch_size):
        moved = (noise(x[i]) - noise(clean[i])).flatten(1).norm(dim=1)
        size = (x[i] - clean[i]).flatten(1).norm(dim=1)
        out.append(torch.where(size > 0, moved / size.clamp_min(1e-12), torch.zeros_like(size)))
    return torch.cat(out)


def by_queries(queries: Tensor, correct: Tensor, transfer: Tensor,
               edges: tuple[int, ...] = QUERY_EDGES) -> list[dict]:
    """Per bucket [edges[j], edges[j + 1]) of queries (the last open): its examples' number and
    the share traced (``correct``) and transferable. Shape: all [n]; empty buckets left out."""
    out = []
    for lo, hi in zip(edges, (*edges[1:], None)):
        inside = (queries >= lo) & (queries < hi if hi is not None else True)
        if inside.any():
            out.append({"queries": [lo, hi], "num": int(inside.sum()),
                        "traced": float(correct[inside].float().mean()),
                        "transferable": float(transfer[inside].float().mean())})
    return out


def where_detection_is_lost(scores: Scores, source: Tensor,
                            threshold: float) -> dict[str, float | None]:
    """Of the examples whose top candidate is the source (``traced``, a share of all): the share
    the verdict may name (``nameable``: eligible and, with a key test, beating every unsold key)
    and the share it names at ``threshold`` (``detected``). Both None where none is traced.
    Shape: source [n]."""
    index, value, nameable, tied = scores.top()
    right = (index == source) & ~tied
    if not right.any():
        return {"traced": 0.0, "nameable": None, "detected": None}
    return {"traced": float(right.float().mean()),
            "nameable": float(nameable[right].float().mean()),
            "detected": float((nameable & (value >= threshold))[right].float().mean())}
