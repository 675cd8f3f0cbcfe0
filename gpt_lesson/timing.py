"""Honest timing: warm up, synchronize the GPU before and after, repeat, report the median and spread.

The course's timer called ``torch.cuda.synchronize()`` only before starting the clock; CUDA
kernels run asynchronously, so a clock stopped that way can stop while the GPU is still busy and
miss the work still queued (notebook 05's exercise 3 measures how much, on a GPU runtime).
`time_it` synchronizes on both sides of every repeat.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from .device import autocast
from .step import TrainStep


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


def time_it(fn: Callable[[], object], device: torch.device | str = "cpu", *, warmup: int = 1,
            repeats: int = 5) -> Timing:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls, synchronizing on CUDA."""
    return time_interleaved({"fn": fn}, device, warmup=warmup, repeats=repeats)["fn"]


def time_interleaved(
    fns: dict[str, Callable[[], object]], device: torch.device | str = "cpu", *, warmup: int = 1, repeats: int = 5
) -> dict[str, Timing]:
    """Time several functions in turns (A B C, A B C, ...) so that drift of the machine's speed over the
    run (other load, clock changes) falls on all of them alike, not on whichever ran last."""
    device = torch.device(device)
    if not (isinstance(repeats, int) and not isinstance(repeats, bool) and repeats >= 1):
        raise ValueError(f"repeats must be a positive integer (timed calls; the median is reported), got {repeats!r}")
    if not (isinstance(warmup, int) and not isinstance(warmup, bool) and warmup >= 0):
        raise ValueError(f"warmup must be an integer >= 0 (untimed calls first), got {warmup!r}")
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


def time_forward(model: torch.nn.Module, x: torch.Tensor, *, warmup: int = 1, repeats: int = 5,
                 dtype: torch.dtype | None = None) -> Timing:
    """Median time of ``model(x)`` without gradients; ``dtype`` runs it under CUDA autocast."""

    def run() -> None:
        with torch.no_grad(), autocast(x.device.type, dtype):
            model(x)

    return time_it(run, x.device, warmup=warmup, repeats=repeats)


def time_train_step(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer, *,
    warmup: int = 1, repeats: int = 5, dtype: torch.dtype | None = None,
) -> Timing:
    """Median time of one step: forward, loss, backward, optimizer step (the weights change)."""
    step = TrainStep(model, optimizer, dtype=dtype)
    return time_it(lambda: step(x, y), x.device, warmup=warmup, repeats=repeats)


def matmul_ceiling(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32, n: int = 2048,
                   repeats: int = 5) -> float:
    """Measured FLOP/s of an n×n by n×n matrix product: the practical peak that MFU is taken against."""
    device = torch.device(device)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    t = time_it(lambda: a @ b, device, warmup=2, repeats=repeats)
    return 2 * n**3 / t.median


def load_note() -> str:
    """The machine's load average next to a timing. The timed code's own threads count in it, so a load up to the
    number of cores can be its own work; well above that, another program shared the cores and slowed the figure."""
    cores = os.cpu_count() or 1
    if not hasattr(os, "getloadavg"):  # Windows
        return f"{cores} cores; load average not available here"
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {cores} cores"
