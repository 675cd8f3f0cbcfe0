"""More than one GPU: data-parallel training (DDP) in processes started by ``torchrun``.

``torchrun --standalone --nproc_per_node=N -m gpt_lesson`` starts N copies of the program and tells each
its place in the environment: ``RANK`` (0 … N-1), ``WORLD_SIZE`` (N) and ``LOCAL_RANK`` (which GPU of this
machine is its own). `DistContext.from_env` reads them and picks the process's device; `process_group`
opens the group (NCCL between GPUs, gloo between CPU processes) with a timeout, so that a rank that died
makes the others fail within it instead of waiting forever, and closes it again. Without those variables
the context is one process on the requested device, and nothing else changes.

How a step is shared (`gpt_lesson.training`): every rank draws the same global batch of start positions
from the seed and takes its own rows; DDP averages the gradients over the ranks, so each rank makes the
update one process would make from the whole batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist
from torch.nn.parallel import DistributedDataParallel

from .device import pick_device

# Long enough for rank 0 to write a Model 5 checkpoint (~1.5 GB) while the others wait at the next step.
DEFAULT_TIMEOUT = timedelta(minutes=10)
_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class DistContext:
    """Where this process stands: rank ``rank`` of ``world_size`` processes, training on ``device``.

    ``distributed`` is True when torchrun started the process (even with one process): the process group
    must then be opened (`process_group`) before training.
    """

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, shows progress and writes files."""
        return self.rank == 0

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @classmethod
    def from_env(cls, device: str | torch.device | None = "auto",
                 environ: Mapping[str, str] | None = None) -> "DistContext":
        """This process's context, from torchrun's variables; one process on ``device`` when they are absent.

        Under torchrun, ``auto`` and ``cuda`` mean ``cuda:LOCAL_RANK`` (one GPU per process); ``cpu`` runs
        every rank on the CPU (gloo). Nothing is opened here: see `process_group`.
        """
        ranks = env_ranks(os.environ if environ is None else environ)
        if ranks is None:
            return cls(pick_device(device))
        rank, world_size, local_rank = ranks
        return cls(_rank_device(device, local_rank, world_size), rank, world_size, local_rank, distributed=True)


def env_ranks(environ: Mapping[str, str]) -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's variables; None when none is set."""
    given = {k: environ.get(k) for k in _ENV}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        present = ", ".join(k for k in _ENV if k not in missing)
        raise RuntimeError(f"{', '.join(missing)} missing from the environment while {present} is set: start the "
                           "processes with torchrun, or unset these variables for one process")
    try:
        rank, world_size, local_rank = (int(given[k]) for k in _ENV)
    except ValueError:
        raise RuntimeError(f"torchrun's variables must be integers, got {given}") from None
    if not (world_size >= 1 and 0 <= rank < world_size and 0 <= local_rank <= rank):
        raise RuntimeError(f"inconsistent torchrun variables {given}: need 0 <= LOCAL_RANK <= RANK < WORLD_SIZE")
    return rank, world_size, local_rank


def _rank_device(requested: str | torch.device | None, local_rank: int, world_size: int) -> torch.device:
    """The device of the process with ``local_rank``: its own GPU, or the CPU."""
    if requested in (None, "auto"):
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    dev = pick_device(requested)  # refuses cuda without a GPU
    if dev.type != "cuda":
        return dev
    if dev.index is not None and world_size > 1:
        raise RuntimeError(f"--device {dev} would put every process on the same GPU; under torchrun use --device cuda "
                           f"(or auto): process k then uses cuda:k")
    if local_rank >= torch.cuda.device_count():
        raise RuntimeError(f"process {local_rank} of this machine has no GPU: {torch.cuda.device_count()} visible; "
                           f"start at most that many with --nproc_per_node={torch.cuda.device_count()}")
    return torch.device("cuda", local_rank)


@contextmanager
def process_group(ctx: DistContext, timeout: timedelta | None = None) -> Iterator[DistContext]:
    """Open the process group of ``ctx`` (when it is distributed) for a ``with`` block; always closed after.

    A block that ends without an exception waits at a barrier for every rank to end too, so no rank closes its
    connections and exits while another still has work to do (with gloo such an early exit could abort the
    process). A block that raises closes the group at once: the other ranks may never get there.
    A collective that waits longer than ``timeout`` (default `DEFAULT_TIMEOUT`) fails instead of hanging.
    """
    if not ctx.distributed:
        yield ctx
        return
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    tdist.init_process_group(ctx.backend, rank=ctx.rank, world_size=ctx.world_size, timeout=timeout or DEFAULT_TIMEOUT)
    try:
        yield ctx
        barrier(ctx)
    finally:
        if tdist.is_initialized():
            tdist.destroy_process_group()


def all_reduce_sum(t: torch.Tensor, ctx: DistContext | None) -> torch.Tensor:
    """The sum of ``t`` over all ranks (a new tensor); ``t`` itself in one process."""
    if ctx is None or not ctx.distributed:
        return t
    t = t.detach().clone()
    tdist.all_reduce(t, op=tdist.ReduceOp.SUM)
    return t


def all_reduce_mean(t: torch.Tensor, ctx: DistContext | None) -> torch.Tensor:
    """The mean of ``t`` over all ranks (a new tensor); ``t`` itself in one process."""
    if ctx is None or not ctx.distributed:
        return t
    return all_reduce_sum(t, ctx) / ctx.world_size


def barrier(ctx: DistContext | None) -> None:
    """Wait until every rank got here (nothing to wait for in one process)."""
    if ctx is not None and ctx.distributed:
        tdist.barrier(device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)


class LossModule(torch.nn.Module):
    """``model.loss`` as a module's forward: DDP prepares its gradient all-reduce in ``forward``, so the loss
    has to be computed through it. Holds ``model`` itself: the parameters are the same tensors."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, y: torch.Tensor, chunk: int = 0) -> torch.Tensor:
        return self.model.loss(x, y, chunk=chunk)


def ddp_loss(model: torch.nn.Module, ctx: DistContext) -> DistributedDataParallel:
    """DDP around ``model.loss``: ``ddp_loss(model, ctx)(x, y)`` is the loss of this rank's rows, and its
    backward leaves in every rank the gradients averaged over all ranks. Rank 0's weights are copied to
    the others here, so every rank starts from the same model."""
    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(LossModule(model), device_ids=ids)
