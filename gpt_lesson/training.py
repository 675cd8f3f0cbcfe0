"""Step 06: train Model 5 on random batches, evaluate, keep a history, save and resume checkpoints.

Every training setting is a field of `gpt_lesson.config.TrainConfig` (the lesson's defaults: batch 16, AdamW
with lr 1e-3 and weight decay 0.01, 500 random batches, test loss at step 0 and every 100 steps). Unlike the
course, the test loss is a mean over several test batches (one 16×256 batch is a noisy estimate), and the same
test batches are used at every evaluation (`gpt_lesson.evaluation.EvalSet`).

`Trainer` is one run, which can be run in stretches (`Trainer.run_to`) and calls back at evaluations and saves;
`train` builds one and runs it to the end. The random start positions of every step are drawn up front, on the
CPU, from a generator seeded with ``config.seed``: the batch of step s depends on the seed and s only, whatever
the device, so a run trained in stretches, or resumed from a checkpoint, draws exactly the batches of an
unbroken one.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoints import load_state, save_checkpoint
from .config import TrainConfig
from .device import autocast_dtype, tf32_matmuls
from .distributed import DistContext, all_reduce_mean, ddp_loss
from .evaluation import EvalSet, _mean_loss, evaluate
from .batches import gather_windows
from .model import Model5
from .plan import RunPlan, per_process_batch
from .step import TrainStep, make_adamw, set_lr, set_weight_decay

__all__ = ["History", "TrainConfig", "Trainer", "TrainingDiverged", "TrainingInterrupted", "evaluate",
           "per_process_batch", "train"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: ``step`` steps are done and, with a checkpoint path, saved in ``checkpoint``."""

    def __init__(self, message: str, *, step: int, checkpoint=None) -> None:
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


@dataclass
class History:
    """What a run recorded. ``train_loss[i]`` is the loss of step i (0-based, before its update), ``lr[i]`` the
    learning rate of its update."""

    train_loss: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # time spent in training steps (evaluation excluded)
    wall_seconds: float = 0.0
    tokens_seen: int = 0
    learning: list[dict] = field(default_factory=list)  # what a `gpt_lesson.Watch` measured at each evaluation

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.train_seconds if self.train_seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        """A history read back from a checkpoint; fields it does not hold keep their defaults."""
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


EvalCallback = Callable[["Trainer", int, float], None]  # (trainer, step, test loss)
SaveCallback = Callable[["Trainer", int, Path], None]  # (trainer, step, checkpoint path)


class Trainer:
    """One training run, as its `RunPlan` says, of ``model`` on ``train_tokens``; it can be run in stretches.

    - ``plan``: `RunPlan.build(model.config, config, train_tokens, test_tokens, ...)`, which checked every input
      (and read the checkpoint to resume from, if any); the Trainer trusts it.
    - ``run_to(step)`` trains up to that step (evaluating at the plan's ``eval_steps``); ``run()`` to the end.
      Stretches give the losses of one unbroken run.
    - ``on_eval(trainer, step, loss)`` (one callback or several, in order) is called after each evaluation,
      ``on_save(trainer, step, path)`` after each save: a notebook, an experiment or a `gpt_lesson.Watch` hooks in
      there instead of stopping and resuming.
    - ``device``: where to train (default: where the model is); ``dist``: this process's place in a torchrun job.
    """

    def __init__(self, plan: RunPlan, model: Model5, train_tokens: torch.Tensor,
                 test_tokens: torch.Tensor | None = None, *, device: torch.device | str | None = None,
                 dist: DistContext | None = None, progress: bool = True,
                 checkpoint_path: str | os.PathLike | None = None,
                 on_eval: EvalCallback | Sequence[EvalCallback] | None = None,
                 on_save: SaveCallback | None = None) -> None:
        assert model.config == plan.model and len(train_tokens) == plan.n_train_tokens, "build the plan of this run"
        self.plan, self.config = plan, plan.train
        c = plan.train
        self.dist = dist if dist is not None else DistContext(torch.device("cpu"))
        assert (self.dist.rank, self.dist.world_size) == (plan.rank, plan.world_size), "the plan of another process"
        self.device = _run_device(model, device, self.dist)
        self.model = model.to(self.device)
        optimizer = make_adamw(model, lr=plan.lrs[0], weight_decay=c.weight_decay, fused=c.fused,
                               decay_matrices_only=c.decay_matrices_only)
        self.step_fn = TrainStep(model, optimizer, dtype=autocast_dtype(self.device) if c.amp else None,
                                 grad_clip=c.grad_clip, loss_chunk=c.loss_chunk, compile=c.compile,
                                 grad_accum=plan.micro_batches,
                                 ddp=ddp_loss(model, self.dist) if self.dist.distributed else None)
        # Keep the text where the model is: batches are then gathered there, no copy per step.
        self.train_tokens = train_tokens.to(self.device, torch.long)
        self.test_set = None if test_tokens is None else EvalSet.for_plan(test_tokens.to(self.device), plan)
        self.starts = plan.starts.to(self.device)[:, plan.rows]  # this process's rows of every step's batch
        self.progress, self.checkpoint_path = progress and self.dist.is_main, checkpoint_path
        self.on_eval = tuple(on_eval) if isinstance(on_eval, Sequence) else (on_eval,) if on_eval else ()
        self.on_save = on_save
        self.history, self.step, self._rng = History(), 0, None
        if plan.checkpoint is not None:
            self._resume(plan.checkpoint)

    def _resume(self, ckpt: dict) -> None:
        load_state(ckpt, self.model, self.step_fn.optimizer)
        self.step, self.history, self._rng = ckpt["step"], History.from_dict(ckpt["history"]), ckpt["rng"]
        # The optimizer state brought back the old weight decay; this run's may differ (and is recorded).
        set_weight_decay(self.step_fn.optimizer, self.config.weight_decay)
        if "scaler" in ckpt and self.step_fn.scaler.is_enabled():
            self.step_fn.scaler.load_state_dict(ckpt["scaler"])

    def run(self) -> History:
        """Train to ``config.steps``."""
        return self.run_to(self.config.steps)

    def run_to(self, end: int) -> History:
        """Train the steps from ``self.step`` up to ``end`` (at most ``config.steps``) and return the history."""
        c = self.config
        if not (isinstance(end, int) and self.step <= end <= c.steps):
            raise ValueError(f"run_to({end!r}): give a step from the current step {self.step} to steps={c.steps}")
        t_wall = time.perf_counter()
        cuda = [self.device] if self.device.type == "cuda" else []
        with tf32_matmuls(self.device), torch.random.fork_rng(devices=cuda):
            torch.manual_seed(c.seed)  # dropout's randomness, seeded here, restored after
            self._restore_rng()
            self.model.train()
            losses = _LossBuffer(self.history, self.step, end - self.step, self.plan.tokens_per_step, self.device)
            bar = tqdm(range(self.step, end), total=c.steps, initial=self.step, desc="train", disable=not self.progress)
            try:
                self._loop(bar, losses, end)
            except KeyboardInterrupt:
                bar.close()
                raise self._interrupted(losses) from None
            bar.close()
            losses.flush(end - self.step)
            self.step = end
            if end in self.plan.eval_steps:
                self._evaluate(end)
            self._rng = _rng_state(self.device)
            self.history.wall_seconds += time.perf_counter() - t_wall
            if self.checkpoint_path:
                self.save(self.checkpoint_path)
        return self.history

    def _loop(self, bar, losses: _LossBuffer, end: int) -> None:
        c, start, optimizer = self.config, self.step, self.step_fn.optimizer
        for step in bar:
            if step in self.plan.eval_steps:
                self._evaluate(step)
            t0 = time.perf_counter()
            set_lr(optimizer, self.plan.lrs[step])
            x, y = gather_windows(self.train_tokens, self.starts[step], self.plan.seq_len)
            loss = all_reduce_mean(self.step_fn(x, y), self.dist)  # the mean over the global batch
            # the history keeps the learning rate the optimizer used, as it holds it
            losses.put(step - start, loss, optimizer.param_groups[0]["lr"], bar, last=step == end - 1)
            losses.seconds += time.perf_counter() - t0
            if self.checkpoint_path and c.checkpoint_every and (step + 1) % c.checkpoint_every == 0 and step + 1 < end:
                losses.flush(step + 1 - start)
                self._save_at(self.checkpoint_path, step + 1)

    def _evaluate(self, step: int) -> None:
        if self.test_set is None or step in self.history.eval_steps:
            return
        loss = _mean_loss(self.model, self.test_set, self.step_fn.loss_policy,
                          self.plan.world_size * self.plan.micro_batches, self.dist)
        self.history.eval_steps.append(step)
        self.history.test_loss.append(loss)
        for callback in self.on_eval:
            callback(self, step, loss)

    def save(self, path: str | os.PathLike) -> None:
        """Save the run at its current step (rank 0 only: every rank holds the same weights)."""
        self._save_at(path, self.step)

    def _save_at(self, path, step: int) -> None:
        if not self.dist.is_main:
            return
        save_checkpoint(path, self.model, self.step_fn.optimizer, step, self.history, self.step_fn.scaler,
                        train_config=self.config, plan=self.plan.to_dict())
        if self.on_save is not None:
            self.on_save(self, step, Path(path))

    def _interrupted(self, losses: _LossBuffer) -> TrainingInterrupted:
        """Ctrl-C: keep the steps done so far in a checkpoint (when the run has a path) and say how to go on."""
        done, path = self.step + losses.filled, self.checkpoint_path
        losses.flush(losses.filled)
        if path and done > self.step:
            self._save_at(path, done)
            how = f"checkpoint saved at step {done}: continue with resume_from={str(path)!r}"
        else:
            how = "no checkpoint path was given, so nothing was saved" if not path else "no step was done"
        return TrainingInterrupted(f"interrupted at step {done}; {how}", step=done, checkpoint=path)

    def _restore_rng(self) -> None:
        if self._rng is None:
            return
        torch.set_rng_state(self._rng["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in self._rng:  # a run saved on a CPU has none: seeded afresh
            torch.cuda.set_rng_state(self._rng["cuda"].cpu(), self.device)


def _rng_state(device: torch.device) -> dict:
    """Dropout's random state (inside the run's forked RNG), to continue it in the next stretch."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def _run_device(model: Model5, device, dist: DistContext) -> torch.device:
    if dist.distributed:
        if device is not None and torch.device(device) != dist.device:
            raise ValueError(f"device={device} differs from this rank's device {dist.device}; "
                             "leave device out under torchrun")
        return dist.device
    return torch.device(device) if device is not None else next(model.parameters()).device


def train(
    model: Model5,
    train_tokens: torch.Tensor,
    test_tokens: torch.Tensor | None = None,
    config: TrainConfig | None = None,
    *,
    device: torch.device | str | None = None,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    resume_from: str | os.PathLike | None = None,
    stop_after: int | None = None,
    allowed: torch.Tensor | None = None,
    dist: DistContext | None = None,
    watch: EvalCallback | None = None,
    **overrides,
) -> History:
    """Train ``model`` on ``config.steps`` random batches of ``train_tokens`` and return the `History`.

    - ``config``: a `TrainConfig` (default: the lesson's); keyword ``overrides`` change single fields
      (``train(model, tr, te, steps=50)``).
    - ``device``: where to train (default: where the model is); the model is moved there.
    - ``checkpoint_path``: saved atomically at the end (and every ``config.checkpoint_every`` steps).
    - ``resume_from``: a checkpoint of this model's config; the run continues from its step with the
      same batches, so a resumed run gives the losses of an unbroken one.
    - ``stop_after``: leave after this many steps of this call (an interruption you can resume from).
    - ``allowed``: the starts into ``train_tokens`` that batches may use (a block split's
      ``split.starts("train", T)``); None: every start. ``config.sampler`` draws from them.
    - ``dist``: this process's place in a torchrun job (`gpt_lesson.distributed`, group opened): it trains on
      its rows of every global batch with DDP, on ``dist.device``; only rank 0 shows progress and saves.
    - ``watch``: a `gpt_lesson.Watch` (or any ``on_eval`` callback): the shape of a sample and the extraction
      probe at every evaluation, in ``History.learning``.
    """
    config = (config or TrainConfig()).with_overrides(**overrides)
    if stop_after is not None and not (isinstance(stop_after, int) and not isinstance(stop_after, bool)
                                       and stop_after >= 1):
        raise ValueError(f"stop_after must be a positive number of steps (or None: run to the end), got {stop_after!r}")
    if not isinstance(model, Model5):
        raise TypeError(f"model must be a gl.Model5, got {type(model).__name__}")
    dist = dist if dist is not None else DistContext(torch.device("cpu"))
    plan = RunPlan.build(model.config, config, train_tokens, test_tokens, world_size=dist.world_size, rank=dist.rank,
                         allowed=allowed, checkpoint=resume_from)
    trainer = Trainer(plan, model, train_tokens, test_tokens, device=device, dist=dist, progress=progress,
                      checkpoint_path=checkpoint_path, on_eval=watch)
    end = config.steps if stop_after is None else min(config.steps, trainer.step + stop_after)
    return trainer.run_to(end)


class _LossBuffer:
    """Losses kept on the device and read back in bulk (each read waits for a GPU), with the learning rate each
    step used and the time spent."""

    def __init__(self, history: History, start: int, n: int, tokens_per_step: int, device: torch.device):
        self.history, self.start, self.tokens_per_step = history, start, tokens_per_step
        self.values = torch.zeros(n, device=device)
        self.lrs: list[float] = []
        self.read_every = 1 if device.type == "cpu" else 10
        self.done, self.seconds, self.filled = 0, 0.0, 0

    def put(self, i: int, loss: torch.Tensor, lr: float, bar, *, last: bool) -> None:
        self.values[i] = loss.float()
        self.lrs.append(lr)
        self.filled = i + 1
        if (i + 1) % self.read_every == 0 or last:
            _check_finite(self.values[: i + 1], self.start, lr)
            bar.set_postfix(loss=f"{self.values[i].item():.3f}")

    def flush(self, upto: int) -> None:
        """Move losses [done, upto) into the history, with their learning rates, tokens and seconds."""
        self.history.train_loss.extend(self.values[self.done : upto].tolist())
        self.history.lr.extend(self.lrs[self.done : upto])
        self.history.tokens_seen += (upto - self.done) * self.tokens_per_step
        self.history.train_seconds += self.seconds
        self.done, self.seconds = upto, 0.0


def _check_finite(losses: torch.Tensor, start: int, lr: float) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        step = start + int(bad[0])
        raise TrainingDiverged(
            f"the loss became {losses[int(bad[0])].item()} at step {step}. Try a lower learning rate "
            f"(lr={lr:g} -> {lr / 3:g}), gradient clipping (grad_clip=1.0), or amp=False for full fp32."
        )
