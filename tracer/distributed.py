"""Data-parallel training under torchrun: what :func:`tracer.separation.train.fit` needs of
torch.distributed, and nothing when the process runs alone.

``torchrun --standalone --nproc_per_node=N -m tracer.pipeline stage=separate
hydra.run.dir=<run> ...`` starts N processes; :func:`init_from_env` joins them (NCCL on CUDA,
gloo on CPU). Each process takes its share of every batch; gradients are summed over processes
after each backward pass, the loss being pre-scaled so the sum is the gradient of the whole
batch's mean, as one process computes it. Only rank 0 writes files.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist
from torch import Tensor, nn

log = logging.getLogger("tracer")


def init_from_env(device: str) -> str:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1), once;
    returns the device this process should use (its own GPU under CUDA)."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return device
    cuda = device.startswith("cuda")
    dist.init_process_group("nccl" if cuda else "gloo")
    log.info("process %d of %d (%s)", dist.get_rank(), dist.get_world_size(), dist.get_backend())
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return f"cuda:{local}"
    return device


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files (rank 0, or the only process)."""
    return rank() == 0


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def batch_share(n: int) -> tuple[slice, float]:
    """This process's rows of a batch of ``n`` and the weight of their mean loss: contiguous
    shares differing by at most one row, weighted by their size, so the weighted losses sum to
    the batch's mean. A batch smaller than the number of processes goes whole to each, weighted
    1 / world size (a process with no rows would skip the step's random draws and fall out of
    step with the others)."""
    w, r = world_size(), rank()
    if n < w:
        return slice(0, n), 1.0 / w
    rows = slice(n * r // w, n * (r + 1) // w)
    return rows, (rows.stop - rows.start) / n


def sum_gradients(module: nn.Module) -> None:
    """Sum every parameter's gradient over the processes, in one all-reduce (a parameter
    without a gradient counts as 0)."""
    if not dist.is_initialized():
        return
    params = [p for p in module.parameters() if p.requires_grad]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.flatten() for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def sum_tensor(t: Tensor) -> Tensor:
    """``t`` summed over the processes (``t`` itself when alone)."""
    if dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
    return t


def broadcast_state(state: dict | None) -> dict | None:
    """Rank 0's ``state`` (a checkpoint it loaded, or None) on every process. The processes are
    this run's own, so the object travels pickled between them; files are never unpickled."""
    if not dist.is_initialized():
        return state
    box = [state]
    dist.broadcast_object_list(box, src=0)
    return box[0]
