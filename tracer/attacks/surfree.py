"""SurFree: a geometric hard-label attack that needs no gradient estimate.

Maho, Furon and Le Merrer, "SurFree: a fast surrogate-free black-box attack", CVPR 2021.
From an adversarial point x_b at distance d of the clean image x_0, with u the unit vector from
x_0 to x_b and v a fresh random direction orthogonal to u and to the last directions tried, every
point z(theta) = x_0 + d cos(theta) (cos(theta) u + sin(theta) v) lies on the circle of diameter
[x_0, x_b] and is d cos(theta) from x_0. SurFree tries angles +-theta_max (1 - k/T), k < T, keeps
the first that fools the copy, refines it by a binary search on the angle and moves there; theta_max
grows after a success and shrinks after a failure. Directions are drawn from the low frequencies
of the DCT, with random signs, as in the paper. The paper's optional final interpolation step
is left out: the budget goes to more directions instead.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from tracer.attacks.hard_label import HardLabelSearch
from tracer.attacks.oracle import HardLabelOracle


class SurFree(HardLabelSearch):
    """``perturb(x, y) -> x_adv``, hard-label, L2, untargeted.

    ``max_iter`` directions per image; ``eval_steps`` (T) angles tried per direction;
    ``bs_steps`` binary-search steps on the angle; ``freq_range`` the fraction of the lowest DCT
    frequencies per side the directions live in; ``n_ortho`` earlier directions kept orthogonal.
    """

    def __init__(self, predict: HardLabelOracle, max_iter: int = 500, eval_steps: int = 5,
                 bs_steps: int = 8, theta_max_deg: float = 30.0, rho: float = 0.98,
                 freq_range: float = 0.5, n_ortho: int = 100, init_size: int = 100,
                 query_batch: int = 8192, seed: int = 0):
        super().__init__(predict, init_size, query_batch, seed)
        if not 0 < freq_range <= 1:
            raise ValueError(f"freq_range must be in (0, 1], got {freq_range}")
        self.max_iter, self.eval_steps, self.bs_steps = max_iter, eval_steps, bs_steps
        self.theta_max, self.rho = math.radians(theta_max_deg), rho
        self.freq_range, self.n_ortho = freq_range, n_ortho

    def _run(self, x: Tensor, gen: torch.Generator) -> Tensor:
        cur, found = self._initial(x, gen)
        idx = found.nonzero().flatten()
        theta_max = torch.full((len(x),), self.theta_max, device=x.device)
        basis = x.new_zeros((len(x), 0, x[0].numel()))   # earlier directions, per image
        for _ in range(self.max_iter):
            if self.oracle.budget is not None:   # images out of budget are done
                idx = idx[(self._queries[idx.cpu()] < self.oracle.budget).to(idx.device)]
            if len(idx) == 0:
                break
            x0, xb = x[idx].flatten(1), cur[idx].flatten(1)
            dist = (xb - x0).norm(dim=1, keepdim=True).clamp_min(1e-12)
            u = (xb - x0) / dist
            v = self._orthogonal_direction(u, basis[idx], gen, x.shape[1:])
            basis = _remember(basis, idx, v, self.n_ortho)
            theta, ok = self._sign_search(x0, u, v, dist, theta_max[idx], idx, x.shape[1:])
            theta_max[idx] = torch.where(ok, theta_max[idx] / self.rho, theta_max[idx] * self.rho)
            if ok.any():
                hit = ok.nonzero().flatten()
                theta = self._refine(x0[hit], u[hit], v[hit], dist[hit], theta[hit],
                                     theta_max[idx[hit]] / self.eval_steps, idx[hit], x.shape[1:])
                cur[idx[hit]] = _on_circle(x0[hit], u[hit], v[hit], dist[hit],
                                           theta).view(-1, *x.shape[1:])
        return cur

    def _orthogonal_direction(self, u: Tensor, basis: Tensor, gen: torch.Generator,
                              shape: torch.Size) -> Tensor:
        """A random low-frequency direction, orthogonal to u and to ``basis`` [b, k, d]; unit."""
        t = _low_frequency_noise(len(u), shape, self.freq_range, gen, u.device)
        for q in torch.cat([basis, u.unsqueeze(1)], dim=1).unbind(1):
            t = t - (t * q).sum(1, keepdim=True) * q
        return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def _sign_search(self, x0, u, v, dist, theta_max, idx, shape) -> tuple[Tensor, Tensor]:
        """The first angle of +-theta_max (1 - k/T) whose circle point fools the copy."""
        theta = torch.zeros_like(theta_max)
        ok = torch.zeros(len(x0), dtype=torch.bool, device=x0.device)
        for k in range(self.eval_steps):
            for sign in (1.0, -1.0):
                todo = (~ok).nonzero().flatten()
                if len(todo) == 0:
                    return theta, ok
                t = sign * theta_max[todo] * (1 - k / self.eval_steps)
                z = _on_circle(x0[todo], u[todo], v[todo], dist[todo], t)
                adv = self._is_adv(z.view(-1, *shape), idx[todo])
                theta[todo[adv]], ok[todo[adv]] = t[adv], True
        return theta, ok

    def _refine(self, x0, u, v, dist, theta, step, idx, shape) -> Tensor:
        """Binary search between an adversarial angle and one ``step`` further out."""
        lo, hi = theta, theta + torch.sign(theta) * step   # lo adversarial; hi maybe not
        for _ in range(self.bs_steps):
            mid = (lo + hi) / 2
            adv = self._is_adv(_on_circle(x0, u, v, dist, mid).view(-1, *shape), idx)
            lo, hi = torch.where(adv, mid, lo), torch.where(adv, hi, mid)
        return lo


def _on_circle(x0: Tensor, u: Tensor, v: Tensor, dist: Tensor, theta: Tensor) -> Tensor:
    """x0 + d cos(theta) (cos(theta) u + sin(theta) v), clipped to the image box; flat rows."""
    c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
    return (x0 + dist * c * (c * u + s * v)).clamp(0.0, 1.0)


def _remember(basis: Tensor, idx: Tensor, v: Tensor, keep: int) -> Tensor:
    """Append v to the images ``idx``'s directions (others get zeros), keeping the last ``keep``."""
    new = basis.new_zeros((len(basis), 1, basis.shape[2]))
    new[idx, 0] = v
    return torch.cat([basis, new], dim=1)[:, -keep:] if keep else basis


def _dct_matrix(n: int, device: torch.device) -> Tensor:
    """Orthonormal DCT-II matrix [n, n]: coefficients = D @ signal."""
    k = torch.arange(n, device=device, dtype=torch.float32)[:, None]
    i = torch.arange(n, device=device, dtype=torch.float32)[None, :]
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2 / n)
    d[0] /= math.sqrt(2)
    return d


def _low_frequency_noise(b: int, shape: torch.Size, freq_range: float, gen: torch.Generator,
                         device: torch.device) -> Tensor:
    """Images whose DCT has random +-1 coefficients in the lowest ``freq_range`` frequencies
    per side and zeros elsewhere; flat rows [b, C*H*W]."""
    c, h, w = shape
    kh, kw = max(1, round(h * freq_range)), max(1, round(w * freq_range))
    coef = torch.zeros((b, c, h, w), device=device)
    signs = torch.randint(0, 2, (b, c, kh, kw), generator=gen, device=device).float() * 2 - 1
    coef[:, :, :kh, :kw] = signs
    dh, dw = _dct_matrix(h, device), _dct_matrix(w, device)
    return (dh.T @ coef @ dw).flatten(1)   # inverse of the orthonormal 2-D DCT
