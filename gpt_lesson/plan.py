"""Step 06: the plan of a training run, resolved and checked once, before any work.

A run is decided by the model config, the `TrainConfig`, the token vectors, the number of processes and, for a
resumed run, a checkpoint. `RunPlan.build` turns them into everything the run will do: the window length, the rows
of every batch that each process trains on, the micro-batches, the learning rate of every step, the steps at which
the test loss is measured, and the start positions of every step's batch. It checks every input once, with a
message that names the problem and the fix, and reads (and verifies) the checkpoint once.

Everything downstream (`gpt_lesson.Trainer`, `TrainStep`, the evaluation, the sampler) trusts the plan: it asserts
its invariants instead of checking them again. The CLI, the benchmark, the experiments and the notebooks all build
plans this way, and checkpoints and ``metrics.json`` record the plan (`RunPlan.to_dict`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .batches import _check_sizes, check_allowed, draw_starts
from .checkpoints import read_checkpoint, refuse_other_config
from .config import TrainConfig
from .model import GPTConfig
from .tokens import check_tokens

__all__ = ["RunPlan", "per_process_batch"]


@dataclass(frozen=True)
class RunPlan:
    """Everything a training run does, resolved from its inputs by `RunPlan.build`.

    - ``seq_len``: tokens per window (T); ``batch_size``: rows of every global batch (B, over all processes);
    - ``rows``: this process's rows of every batch (``rank``-th of ``world_size`` equal slices), trained in
      ``micro_batches`` pieces of ``micro_rows`` rows each;
    - ``lrs[s]``: the learning rate of step s (`TrainConfig.lr_at`), the one value the optimizer is given;
    - ``eval_steps``: the steps after which the test loss is measured (0, every ``eval_every``, and the last);
    - ``starts``: (steps, B) int64 on the CPU, the start positions of every step's global batch;
    - ``start_step``: 0, or the step of the checkpoint the run resumes from (``checkpoint``, read once).
    """

    model: GPTConfig
    train: TrainConfig
    seq_len: int
    world_size: int
    rank: int
    micro_batches: int
    micro_rows: int
    lrs: tuple[float, ...]
    eval_steps: tuple[int, ...]
    n_train_tokens: int
    n_test_tokens: int | None
    start_step: int = 0
    resumed_from: str | None = None
    starts: torch.Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    checkpoint: dict | None = field(default=None, repr=False, compare=False)

    @classmethod
    def build(cls, model: GPTConfig, train: TrainConfig, train_tokens: torch.Tensor,
              test_tokens: torch.Tensor | None = None, *, world_size: int = 1, rank: int = 0,
              allowed: torch.Tensor | None = None, checkpoint: str | os.PathLike | dict | None = None) -> RunPlan:
        """The plan of a run of a model of config ``model`` with settings ``train`` on ``train_tokens`` (test loss on
        ``test_tokens``; None: no evaluation), as process ``rank`` of ``world_size``.

        ``allowed``: the starts into ``train_tokens`` that batches may use (a block split's training starts).
        ``checkpoint``: resume from this file (read and verified here, once), or a checkpoint already read
        (`gpt_lesson.read_checkpoint`). Raises ValueError/TypeError naming the bad input and the fix.
        """
        if not isinstance(model, GPTConfig):
            raise TypeError(f"model must be a GPTConfig (e.g. gl.preset('cpu')), got {type(model).__name__}")
        if not isinstance(train, TrainConfig):
            raise TypeError(f"train must be a TrainConfig (e.g. gl.train_config('cpu')), got {type(train).__name__}")
        seq_len = train.seq_len_for(model)
        for name, tokens in (("train_tokens", train_tokens), ("test_tokens", test_tokens)):
            if tokens is not None or name == "train_tokens":  # only the test part may be left out
                check_tokens(tokens, name, vocab_size=model.vocab_size)
                # a window of seq_len + 1 tokens must fit, said of the tensor the caller passed
                _check_sizes(len(tokens), train.batch_size, seq_len, tokens=name)
        if allowed is not None:
            check_allowed(allowed, len(train_tokens), seq_len)
        rows = per_process_batch(train, world_size)
        if not (isinstance(rank, int) and 0 <= rank < world_size):
            raise ValueError(f"rank must be in 0 … {world_size - 1} (world_size={world_size}), got {rank!r}")
        ckpt, source = _read(checkpoint)
        start = 0
        if ckpt is not None:
            start = _check_resumable(ckpt, model, train, source)
        every = train.eval_every
        return cls(
            model=model, train=train, seq_len=seq_len, world_size=world_size, rank=rank,
            micro_batches=train.grad_accum, micro_rows=rows // train.grad_accum,
            lrs=tuple(train.lr_at(s) for s in range(train.steps)),
            eval_steps=tuple(sorted({*range(0, train.steps, every), train.steps})) if test_tokens is not None else (),
            n_train_tokens=len(train_tokens), n_test_tokens=None if test_tokens is None else len(test_tokens),
            start_step=start, resumed_from=source,
            starts=draw_starts(len(train_tokens), train.steps, train.batch_size, seq_len, seed=train.seed,
                               sampler=train.sampler, allowed=allowed),
            checkpoint=ckpt,
        )

    @property
    def batch_size(self) -> int:
        return self.train.batch_size

    @property
    def steps(self) -> int:
        return self.train.steps

    @property
    def rows(self) -> slice:
        """This process's rows of every global batch."""
        n = self.micro_rows * self.micro_batches
        return slice(self.rank * n, (self.rank + 1) * n)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def to_dict(self) -> dict:
        """What ``metrics.json`` and checkpoints record: every resolved value (the start table as its sampler and
        seed, which redraw it; the learning rates as their first and last values and their count)."""
        return {
            "seq_len": self.seq_len, "batch_size": self.batch_size, "world_size": self.world_size,
            "micro_batches": self.micro_batches, "micro_rows": self.micro_rows, "steps": self.steps,
            "eval_steps": list(self.eval_steps), "lr_first": self.lrs[0], "lr_last": self.lrs[-1],
            "n_train_tokens": self.n_train_tokens, "n_test_tokens": self.n_test_tokens,
            "sampler": self.train.sampler, "seed": self.train.seed, "start_step": self.start_step,
            "resumed_from": self.resumed_from,
        }

    def describe(self) -> str:
        """One line: the batch and how it is shared, e.g. ``batches of 16x256 = 2 processes x 8 rows; 500 steps``."""
        n, k = self.world_size, self.micro_batches
        parts = ([f"{n} processes"] if n > 1 else []) + ([f"{k} micro-batches"] if k > 1 else [])
        split = " = " + " x ".join([*parts, f"{self.micro_rows} rows"]) if parts else ""
        return f"batches of {self.batch_size}x{self.seq_len}{split}; {self.steps} steps"


def per_process_batch(config: TrainConfig, world_size: int) -> int:
    """Rows of each global batch that one of ``world_size`` processes trains on (it splits them further into
    ``config.grad_accum`` micro-batches); a batch that does not split evenly is an error."""
    if not (isinstance(world_size, int) and not isinstance(world_size, bool) and world_size >= 1):
        raise ValueError(f"world_size must be a positive number of processes, got {world_size!r}")
    n = world_size * config.grad_accum
    if config.batch_size % n:
        fit = max(n, round(config.batch_size / n) * n)
        raise ValueError(f"the global batch_size={config.batch_size} does not split over {world_size} process(es) "
                         f"x grad_accum={config.grad_accum} = {n} equal micro-batches; use a batch size that is a "
                         f"multiple of {n} (e.g. {fit}), or change grad_accum or the number of processes")
    return config.batch_size // world_size


def _read(checkpoint: str | os.PathLike | dict | None) -> tuple[dict | None, str | None]:
    if checkpoint is None:
        return None, None
    if isinstance(checkpoint, dict):
        return checkpoint, checkpoint.get("path", "the checkpoint")
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path or a checkpoint read with gl.read_checkpoint, got "
                        f"{type(checkpoint).__name__}")
    return read_checkpoint(checkpoint), str(Path(checkpoint))


def _check_resumable(ckpt: dict, model: GPTConfig, train: TrainConfig, source: str) -> int:
    """The step to resume from, after checking that the checkpoint fits the model and these settings."""
    refuse_other_config(ckpt, model, source)
    if ckpt["step"] > train.steps:
        raise ValueError(f"the checkpoint is at step {ckpt['step']}, past steps={train.steps}; "
                         f"ask for steps >= {ckpt['step']}")
    train.check_resumable_from(ckpt["train_config"], source)  # before its optimizer state is loaded
    return ckpt["step"]
