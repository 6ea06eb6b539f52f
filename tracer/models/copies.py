"""The copies a seller ships: ``M_i(x) = norm(C(x)) + alpha * T_i(x)``.

:class:`TracerCopies` holds the shared parts (C, T_0) and each copy's secret key: the paper's
output permutation, ``T_i = pi_i(T_0)``, of which K classes allow at most K(K-1) copies that
pairwise agree on at most one position. :class:`ProjectedCopies` keys the residual tracer
instead: copy i reads the shared noise residual R(x) through its own random projection P_i, so
any number of copies exist. Both evaluate all m copies from one pass of C and T_0 (or R), which
is what makes tracing cost almost flat in m. :class:`Copy` is one buyer's model, an ordinary
``nn.Module`` an attacker can be handed.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tracer.data import batches
from tracer.models.common_directions import without
from tracer.models.residual import ResidualTracer, keyed_input
from tracer.seeding import derived_seed
from tracer.tracing import (Observation, Scored, aligned_from_outputs, dol_from_outputs,
                            flip_from_outputs, label_gap_from_outputs, logit_dol_from_outputs,
                            margin_from_outputs, scored, spread_from_outputs)

OUTPUT_NORMS = ("softmax", "minmax")


class OutputNorm(nn.Module):
    """Maps C's logits into [0, 1] (paper.md: "C's output normalised to [0,1]").

    ``softmax`` (default) divides logits by ``temperature`` first; ``minmax`` maps each row's
    smallest logit to 0 and its largest to 1, which keeps the gap between the top classes wider
    than softmax does (docs/method.md).
    """

    def __init__(self, kind: str = "softmax", temperature: float = 1.0):
        super().__init__()
        if kind not in OUTPUT_NORMS:
            raise ValueError(f"unknown output norm {kind!r}; known: {OUTPUT_NORMS}")
        if temperature <= 0:
            raise ValueError("temperature must be positive")
        self.kind, self.temperature = kind, float(temperature)

    def forward(self, logits: Tensor) -> Tensor:
        if self.kind == "softmax":
            return torch.softmax(logits / self.temperature, dim=-1)
        lo = logits.min(dim=-1, keepdim=True).values
        hi = logits.max(dim=-1, keepdim=True).values
        return (logits - lo) / (hi - lo).clamp_min(1e-12)

    def extra_repr(self) -> str:
        return f"kind={self.kind}, temperature={self.temperature}"


class TracerCopies(nn.Module):
    """All m copies of one classifier: C and T_0, each copy's tracer read through its own
    secret key (the subclasses: a permutation or a projection).

    T_0 (the residual tracer or the paper's VAE encoder) gives ``features(x)``, which a key maps
    to the copy's K pre-activations (``keyed``) before T_0's ``gain`` and the tanh; its
    ``scorers`` are the rules tracing offers for these copies, the first the default.
    ``classifiers`` (optional, m modules): copy i's own classifier C_i in place of the shared C
    (the paper's counter-measure to collusion: C_i fine-tuned from C with a gradient-orthogonal
    loss, tracer.separation.orthogonal); ``base`` stays C.
    """

    needs_clean_images = False   # tracing reads the evidence alone

    def __init__(self, base: nn.Module, tracer: nn.Module, alpha: float, norm: OutputNorm,
                 classifiers: nn.ModuleList | None = None):
        super().__init__()
        self.base, self.tracer, self.norm = base, tracer, norm
        self.classifiers = classifiers
        self.alpha = float(alpha)
        self.scorers: tuple[str, ...] = tuple(tracer.scorers)

    def base_outputs(self, x: Tensor) -> Tensor:
        """norm(C(x)) [n, 1, K], or every copy's norm(C_i(x)) [n, m, K] with own classifiers."""
        if self.classifiers is None:
            return self.norm(self.base(x)).unsqueeze(1)
        return torch.stack([self.norm(c(x)) for c in self.classifiers], dim=1)

    def copy_base_output(self, x: Tensor, index: int) -> Tensor:
        """Copy ``index``'s classifier part, norm(C(x)) or norm(C_i(x)): [n, K]."""
        return self.norm((self.base if self.classifiers is None else self.classifiers[index])(x))

    @property
    def num_copies(self) -> int:
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    def keyed(self, features: Tensor) -> Tensor:
        """T_0's features [n, d] read through every copy's key, before the gain: [n, m, K]."""
        raise NotImplementedError

    def copy_keyed(self, features: Tensor, index: int) -> Tensor:
        """The same for copy ``index`` alone: [n, K]."""
        raise NotImplementedError

    def tracer_pre_activations(self, x: Tensor) -> Tensor:
        """Every copy's tracer before its tanh: [n, m, K]."""
        return self.tracer.gain * self.keyed(self.tracer.features(x)[0])

    def copy_tracer_pre_activation(self, x: Tensor, index: int) -> Tensor:
        """Copy ``index``'s tracer before its tanh, [n, K], computed for that copy alone."""
        return self.tracer.gain * self.copy_keyed(self.tracer.features(x)[0], index)

    def outputs(self, x: Tensor) -> Tensor:
        """Every copy's output M_i(x): [n, m, K]."""
        return self.base_outputs(x) + self.alpha * torch.tanh(self.tracer_pre_activations(x))

    def predict(self, x: Tensor) -> Tensor:
        """Every copy's label for x: [n, m]."""
        return self.outputs(x).argmax(dim=-1)

    def copy(self, index: int) -> "Copy":
        if not 0 <= index < self.num_copies:
            raise IndexError(f"copy {index} out of range 0..{self.num_copies - 1}")
        return Copy(self, index)

    def sold(self, index: int) -> "SoldCopy":
        """Copy ``index`` as a module of its own, holding that copy's key and no other's (what
        ``tracer export`` ships; ``copy(index)`` reads its key out of every copy's)."""
        self.copy(index)   # the index check
        base = self.base if self.classifiers is None else self.classifiers[index]
        return SoldCopy(base, self.norm, self.keyed_tracer(index), self.alpha)

    def keyed_tracer(self, index: int) -> nn.Module:
        """Copy ``index``'s tracer before its tanh, x -> gain * T_i's input [n, K], holding
        only that copy's key."""
        raise NotImplementedError

    @torch.no_grad()
    def observe(self, x: Tensor, clean_labels: Tensor | None = None,
                batch_size: int = 512, device: torch.device | str = "cpu") -> Observation:
        """DOLs and labels of every candidate copy, from one pass of C and T_0 per batch (the
        debiased residual's alignment too, where ``scorers`` offer it). ``clean_labels`` [n]
        (optional): what each image shows, for ``logit_dol_label``."""
        want_spread = bool({"debiased_spread", "spread_disagree", "flip_disagree",
                            "nearest_flip"} & set(self.scorers))
        want_debiased = want_spread or "debiased_disagree" in self.scorers
        cols: dict[str, list[Tensor]] = {k: [] for k in (
            "dol", "labels", "base", "label", "debiased", "spread", "unsold", "flip",
            "unsold_flips", "margin", "unsold_margins", "label_gap", "unsold_label")}
        for idx in batches(len(x), batch_size):
            xb = x[idx].to(device)
            c = self.base_outputs(xb)
            features, debiased = self.tracer.features(xb, debiased=want_debiased)
            if debiased is not None:
                debiased = self.without_common(debiased)
            z = self.tracer.gain * self.keyed(features)
            t = torch.tanh(z)
            out = c + self.alpha * t
            cols["dol"].append(dol_from_outputs(out, t).cpu())
            cols["labels"].append(out.argmax(-1).cpu())
            cols["base"].append(c.argmax(-1).expand_as(out[..., 0]).cpu())
            labels = None if clean_labels is None else clean_labels[idx].to(device)
            if labels is not None:
                cols["label"].append(logit_dol_from_outputs(out, z, labels).cpu())
            if debiased is not None:
                keyed, scale = self.keyed(debiased), debiased.norm(dim=1)
                cols["debiased"].append(aligned_from_outputs(out, keyed, scale).cpu())
                if want_spread:
                    cols["spread"].append(spread_from_outputs(out, keyed, scale).cpu())
                    # the flip reads what the copy answered from (R(x), or D(x) where the
                    # tracer reads that): the attack steered it
                    answered = self.without_common(features)
                    cols["flip"].append(flip_from_outputs(out, c, self.keyed(answered),
                                                          answered.norm(dim=1)).cpu())
                    cols["margin"].append(margin_from_outputs(out).cpu())
                    if labels is not None:
                        cols["label_gap"].append(label_gap_from_outputs(out, labels).cpu())
                    unsold = self.unsold_readings(c, features, answered, debiased, labels)
                    if unsold is not None:
                        for key, reading in zip(("unsold", "unsold_flips", "unsold_margins",
                                                 "unsold_label"), unsold):
                            if reading is not None:
                                cols[key].append(reading.cpu())
        joined = {k: torch.cat(v) if v else None for k, v in cols.items()}
        return Observation(joined["dol"], joined["labels"], joined["base"], joined["label"],
                           joined["debiased"], joined["spread"], joined["unsold"],
                           joined["flip"], joined["unsold_flips"], joined["margin"],
                           joined["unsold_margins"], joined["label_gap"], joined["unsold_label"])

    def unsold_readings(self, base_outputs: Tensor, features: Tensor, answered: Tensor,
                        debiased: Tensor, clean_labels: Tensor | None = None
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor | None] | None:
        """The spread (on ``debiased``), the flip (on ``answered``, what the copies answer from),
        the margin and, with ``clean_labels`` [n], the ``logit_dol_label`` value of each unsold
        key's copy (tracer.tracing, the key test): 4 x [n, M], the last None without labels;
        None where these copies have no unsold keys."""
        return None

    def without_common(self, residual: Tensor) -> Tensor:
        """A residual [n, d] (R(x), or the debiased one) as tracing reads it: here unchanged."""
        return residual

    def trace(self, x: Tensor, *, clean_images: Tensor | None = None,
              clean_labels: Tensor | None = None, device: torch.device | str = "cpu") -> Scored:
        """Every candidate's label and every scorer's scores on evidence images ``x``
        (``clean_images`` unused: the tracer reads the evidence alone)."""
        return scored(self.observe(x, clean_labels, device=device), self.scorers)


class PermutedCopies(TracerCopies):
    """The paper's keys: ``T_i = pi_i(T_0)``.

    Shape: permutations [m, K] (row i maps tracer slot k to T_0 output permutations[i, k]).
    """

    def __init__(self, base: nn.Module, tracer: nn.Module, permutations: Tensor, alpha: float,
                 norm: OutputNorm, classifiers: nn.ModuleList | None = None):
        super().__init__(base, tracer, alpha, norm, classifiers)
        if permutations.ndim != 2:
            raise ValueError("permutations must be [num_copies, num_classes]")
        self.register_buffer("permutations", permutations.long().clone())

    @property
    def num_copies(self) -> int:
        return self.permutations.shape[0]

    @property
    def num_classes(self) -> int:
        return self.permutations.shape[1]

    def keyed(self, features: Tensor) -> Tensor:
        return self.tracer.readout(features)[:, self.permutations]

    def copy_keyed(self, features: Tensor, index: int) -> Tensor:
        return self.tracer.readout(features)[:, self.permutations[index]]

    def keyed_tracer(self, index: int) -> nn.Module:
        return _PermutedTracer(self.tracer, self.permutations[index])


class ProjectedCopies(TracerCopies):
    """Keys by projection: ``T_i(x) = tanh(gain * P_i R(x))`` with R the residual tracer's noise
    predictor (shared, trained once) and P_i copy i's own K x d random projection with unit rows.
    Two copies' (att, cln) directions are independent random directions in d dimensions (cosine
    about 1/sqrt(d)), so the number of copies is not bounded by K(K-1).

    ``unsold`` [M, K, d] (optional): keys drawn like the sold ones and sold to nobody, for the
    key test (tracer.tracing). It needs the shared C: with own classifiers an unsold key would
    have no C_i to read with. ``common`` [d, k] (optional): orthonormal directions that attacks
    leave whatever copy they target (tracer.models.common_directions), removed from the debiased
    residual before any key, sold or unsold, reads it; the copies' outputs do not change.

    Shape: projections [m, K, d].
    """

    # unsold keys read at once in the key test: bounds its memory to n x 1000 x K per batch
    UNSOLD_CHUNK = 1000

    def __init__(self, base: nn.Module, tracer: nn.Module, projections: Tensor, alpha: float,
                 norm: OutputNorm, classifiers: nn.ModuleList | None = None,
                 unsold: Tensor | None = None, common: Tensor | None = None):
        super().__init__(base, tracer, alpha, norm, classifiers)
        if not isinstance(tracer, ResidualTracer):
            raise ValueError("projection keys need the residual tracer (separation=residual)")
        if projections.ndim != 3:
            raise ValueError("projections must be [num_copies, num_classes, input size]")
        self.register_buffer("projections", projections.float().clone())
        if unsold is not None:
            if classifiers is not None:
                raise ValueError("unsold keys need the shared C (classifiers=shared)")
            if unsold.ndim != 3 or unsold.shape[1:] != projections.shape[1:] or not len(unsold):
                raise ValueError(f"unsold keys must be [M >= 1, {projections.shape[1]}, "
                                 f"{projections.shape[2]}], got {tuple(unsold.shape)}")
            unsold = unsold.float().clone()
        self.register_buffer("unsold", unsold)
        if common is not None:
            d = projections.shape[2]
            if common.ndim != 2 or common.shape[0] != d or not 0 < common.shape[1] < d:
                raise ValueError(f"common directions must be [{d}, 1 to {d - 1}], got "
                                 f"{tuple(common.shape)}")
            common = common.float().clone()
        self.register_buffer("common", common)
        # tracer.tracing: why these keys
        self.scorers = ("nearest_flip", "flip_disagree", "spread_disagree", "debiased_spread",
                        *self.scorers, "nearest_label")

    @property
    def num_copies(self) -> int:
        return self.projections.shape[0]

    @property
    def num_classes(self) -> int:
        return self.projections.shape[1]

    def keyed(self, features: Tensor) -> Tensor:
        m, k, d = self.projections.shape
        return (features @ self.projections.view(m * k, d).T).view(len(features), m, k)

    def copy_keyed(self, features: Tensor, index: int) -> Tensor:
        return features @ self.projections[index].T

    def keyed_tracer(self, index: int) -> nn.Module:
        return _ProjectedTracer(self.tracer.noise, self.projections[index], self.tracer.gain,
                                self.tracer.reads)

    def without_common(self, residual: Tensor) -> Tensor:
        return without(self.common, residual)

    @property
    def num_unsold(self) -> int:
        return 0 if self.unsold is None else len(self.unsold)

    def unsold_readings(self, base_outputs: Tensor, features: Tensor, answered: Tensor,
                        debiased: Tensor, clean_labels: Tensor | None = None
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor | None] | None:
        if self.unsold is None:
            return None
        scale, k, d = debiased.norm(dim=1), self.num_classes, features.shape[1]
        spreads, flips, margins, leans = [], [], [], []
        for keys in self.unsold.split(self.UNSOLD_CHUNK):
            rows = keys.reshape(-1, d).T
            # each unsold key's label, as a copy holding it would answer: C + alpha * its tracer
            z = self.tracer.gain * (features @ rows).view(len(features), len(keys), k)
            out = base_outputs + self.alpha * torch.tanh(z)
            if clean_labels is not None:
                leans.append(logit_dol_from_outputs(out, z, clean_labels))
            spreads.append(spread_from_outputs(
                out, (debiased @ rows).view(len(features), len(keys), k), scale))
            flips.append(flip_from_outputs(out, base_outputs,
                                           (answered @ rows).view(len(features), len(keys), k),
                                           answered.norm(dim=1)))
            margins.append(margin_from_outputs(out))
        return (torch.cat(spreads, dim=1), torch.cat(flips, dim=1), torch.cat(margins, dim=1),
                torch.cat(leans, dim=1) if leans else None)


def random_projections(num_copies: int, num_classes: int, size: int, seed: int = 0,
                       purpose: str = "projection_key") -> Tensor:
    """Each copy's K x ``size`` projection, rows of unit norm, from a generator seeded by a hash
    of ``seed``, ``purpose`` and the copy's index (copy i's key does not depend on how many copies
    exist; the unsold keys of the key test are drawn under another ``purpose``).

    Shape: -> [num_copies, num_classes, size].
    """
    keys = torch.empty(num_copies, num_classes, size)
    for i in range(num_copies):
        g = torch.Generator().manual_seed(derived_seed(seed, f"{purpose}_{i}"))
        p = torch.randn(num_classes, size, generator=g)
        keys[i] = p / p.norm(dim=1, keepdim=True)
    return keys


class Copy(nn.Module):
    """Buyer ``index``'s model M_i = norm(C) + alpha * T_i; outputs [n, K]."""

    def __init__(self, copies: TracerCopies, index: int):
        super().__init__()
        self.copies, self.index = copies, index

    def tracer_outputs(self, x: Tensor) -> Tensor:
        return torch.tanh(self.copies.copy_tracer_pre_activation(x, self.index))

    def classifier_output(self, x: Tensor) -> Tensor:
        """The copy without its tracer: norm(C(x)), or norm(C_i(x)) with own classifiers."""
        return self.copies.copy_base_output(x, self.index)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier_output(x) + self.copies.alpha * self.tracer_outputs(x)


class SoldCopy(nn.Module):
    """One buyer's model on its own: norm(C(x)) + alpha * tanh(its keyed tracer(x)); [n, K]."""

    def __init__(self, base: nn.Module, norm: nn.Module, tracer: nn.Module, alpha: float):
        super().__init__()
        self.base, self.norm, self.tracer, self.alpha = base, norm, tracer, float(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.base(x)) + self.alpha * torch.tanh(self.tracer(x))


class _PermutedTracer(nn.Module):
    """gain * pi_i(T_0's readout): T_0 whole and one permutation."""

    def __init__(self, tracer: nn.Module, permutation: Tensor):
        super().__init__()
        self.base_tracer = tracer
        self.register_buffer("permutation", permutation.long().clone())

    def forward(self, x: Tensor) -> Tensor:
        t = self.base_tracer
        return t.gain * t.readout(t.features(x)[0])[:, self.permutation]


class _ProjectedTracer(nn.Module):
    """gain * P_i F(x), F(x) R(x) or its debiased form (``reads``): the noise predictor and one
    projection."""

    def __init__(self, noise: nn.Module, projection: Tensor, gain: float, reads: str):
        super().__init__()
        self.noise, self.gain, self.reads = noise, float(gain), reads
        self.register_buffer("projection", projection.float().clone())

    def forward(self, x: Tensor) -> Tensor:
        return self.gain * (keyed_input(self.noise, x, self.reads)[0] @ self.projection.T)
