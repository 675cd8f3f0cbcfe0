"""Honest timing: warm up, synchronize the GPU before and after, repeat, report the median and spread.

The course's timer called ``torch.cuda.synchronize()`` only before starting the clock; CUDA
kernels run asynchronously, so it stopped the clock while the GPU was still busy and its GPU
times came out too low. `time_it` synchronizes on both sides of every repeat.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .model import GPTConfig


@dataclass(frozen=True)
class Timing:
    times: tuple[float, ...]  # seconds, one per repeat

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def max(self) -> float:
        return max(self.times)

    def __str__(self) -> str:
        return f"{self.median:.3f} s (median of {len(self.times)}, range {self.min:.3f}-{self.max:.3f} s)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_it(fn: Callable[[], object], device: torch.device | str = "cpu", *, warmup: int = 1, repeats: int = 5) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, synchronizing on CUDA."""
    return time_interleaved({"fn": fn}, device, warmup=warmup, repeats=repeats)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu", *, warmup: int = 1, repeats: int = 5
) -> dict[str, Timing]:
    """Time several functions in turns (A B C, A B C, ...) so that drift of the machine's speed over the
    run (other load, clock changes) falls on all of them alike, not on whichever ran last."""
    device = torch.device(device)
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got repeats={repeats}, warmup={warmup}")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - t0)
    return {name: Timing(tuple(t)) for name, t in times.items()}


def time_forward(model: torch.nn.Module, x: torch.Tensor, *, warmup: int = 1, repeats: int = 5, dtype: torch.dtype | None = None) -> Timing:
    """Median time of ``model(x)`` without gradients; ``dtype`` runs it under CUDA autocast."""

    def run() -> None:
        with torch.no_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            model(x)

    return time_it(run, x.device, warmup=warmup, repeats=repeats)


def train_step_fn(
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], optimizer: torch.optim.Optimizer,
    x: torch.Tensor, y: torch.Tensor, dtype: torch.dtype | None = None,
) -> Callable[[], None]:
    """A function doing one training step on (x, y): forward + loss under ``dtype`` autocast (fp16 with a
    gradient scaler), backward, optimizer step. ``loss_fn`` is e.g. ``model.loss`` or a compiled one."""
    scaler = torch.amp.GradScaler(x.device.type, enabled=dtype == torch.float16)

    def step() -> None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(x, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


def time_train_step(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, *,
    warmup: int = 1, repeats: int = 5, dtype: torch.dtype | None = None,
) -> Timing:
    """Median time of one step: forward, loss, backward, optimizer step (the weights change)."""
    return time_it(train_step_fn(model.loss, optimizer, x, y, dtype), x.device, warmup=warmup, repeats=repeats)


def forward_flops(config: GPTConfig, batch_size: int, seq_len: int) -> int:
    """Matmul FLOPs of one forward pass of (B, T) tokens (PaLM's count, appendix B).

    Per token: 2 FLOPs per weight of every matrix (the blocks' linears and the V×C head) plus
    4·n_layer·T·C for attention scores and their weighted sum (counted as if not causal).
    Training costs 3× this (forward + twice as much backward). Biases and LayerNorms are ignored.
    """
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    matmul_weights = L * 12 * C * C + V * C
    per_token = 2 * matmul_weights + 4 * L * seq_len * C
    return per_token * batch_size * seq_len


def matmul_ceiling(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048, repeats: int = 5) -> float:
    """Measured FLOP/s of an n×n by n×n matrix product: the practical peak that MFU is taken against."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_it(lambda: a @ b, device, warmup=2, repeats=repeats)
    return 2 * n**3 / t.median
