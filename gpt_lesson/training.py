"""Step 06: train Model 5 on random batches, evaluate, keep a history, save and resume checkpoints.

Every training setting is a field of `TrainConfig` (the lesson's defaults: batch 16, AdamW with lr 1e-3
and weight decay 0.01, 500 random batches, test loss at step 0 and every 100 steps). Unlike the course,
the test loss is a mean over several test batches (one 16×256 batch is a noisy estimate), and the same
test batches are used at every evaluation, so the points of the curve differ only because the model changed.

The random start positions of every step are drawn up front, on the CPU, from a generator seeded with
``config.seed``: the batch of step s depends on the seed and s only, whatever the device, and a resumed
run draws exactly the batches an unbroken one would have.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace

import torch
from tqdm.auto import tqdm

from .batches import SAMPLERS, batch_starts, gather_windows, random_batch, random_starts
from .checkpoints import load_checkpoint, save_checkpoint
from .device import autocast_dtype
from .distributed import DistContext, all_reduce_mean, all_reduce_sum, ddp_loss
from .model import GPTConfig, Model5
from .step import TrainStep, autocast, chunked_call, eval_mode, loss_chunk_for, make_adamw
from .tokens import check_tokens


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during `train`: ``step`` steps are done and, with a checkpoint path, saved in ``checkpoint``."""

    def __init__(self, message: str, *, step: int, checkpoint=None) -> None:
        super().__init__(message)
        self.step, self.checkpoint = step, checkpoint


_POSITIVE_INTS = ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches")
# Settings that decide which batches a run sees: a resumed run must keep them.
_FIXED_ON_RESUME = ("seed", "batch_size", "seq_len", "eval_batches", "sampler")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run, validated here, saved in checkpoints and in ``metrics.json``."""

    steps: int = 500  # random batches to train on
    batch_size: int = 16  # the global batch: the rows each step's loss is the mean over, whatever the processes
    grad_accum: int = 1  # micro-batches per step and process (same losses, less memory)
    seq_len: int | None = None  # tokens per window; None: the model's context length
    lr: float = 1e-3  # AdamW, as the course
    weight_decay: float = 0.01
    eval_every: int = 100  # test loss at step 0, every this many steps, and at the end
    eval_batches: int = 8  # test batches averaged per evaluation (the course used 1)
    seed: int = 1337  # the batches, the test batches and dropout
    amp: bool = True  # on CUDA: bf16 autocast where native (compute capability >= 8.0), else fp16 + scaler
    grad_clip: float | None = None  # clip the gradient norm to this; None: no clipping
    compile: bool = False  # torch.compile the loss (forward and backward)
    fused: bool = True  # AdamW's fused kernel where PyTorch has it
    loss_chunk: int = 0  # fp32 only: head + loss this many rows at a time (`gpt_lesson.step.loss_chunk_for`)
    checkpoint_every: int | None = None  # also save every this many steps (with a checkpoint path)
    sampler: str = "random"  # the lesson's; or "epoch", "without_replacement" (`gpt_lesson.batches.batch_starts`)

    def __post_init__(self) -> None:
        for name in _POSITIVE_INTS:
            _require(name, getattr(self, name), _is_int(getattr(self, name)) and getattr(self, name) >= 1, "a positive integer")
        for name in ("seq_len", "checkpoint_every"):
            v = getattr(self, name)
            _require(name, v, v is None or (_is_int(v) and v >= 1), "a positive integer or None")
        _require("lr", self.lr, _is_number(self.lr) and self.lr >= 0, "a number >= 0 (the lesson's is 1e-3)")
        _require("weight_decay", self.weight_decay, _is_number(self.weight_decay) and self.weight_decay >= 0, "a number >= 0")
        _require("grad_clip", self.grad_clip, self.grad_clip is None or (_is_number(self.grad_clip) and self.grad_clip > 0),
                 "a positive number or None (a negative clip would turn training into gradient ascent)")
        _require("loss_chunk", self.loss_chunk, _is_int(self.loss_chunk) and self.loss_chunk >= 0, "0 (off) or a positive row count")
        _require("grad_accum", self.grad_accum, self.batch_size % self.grad_accum == 0,
                 f"a divisor of batch_size={self.batch_size} (each micro-batch gets batch_size / grad_accum rows)")
        _require("seed", self.seed, _is_int(self.seed) and self.seed >= 0, "an integer >= 0")
        for name in ("amp", "compile", "fused"):
            _require(name, getattr(self, name), isinstance(getattr(self, name), bool), "True or False")
        _require("sampler", self.sampler, self.sampler in SAMPLERS, f"one of {', '.join(map(repr, SAMPLERS))}")

    def seq_len_for(self, model_config: GPTConfig) -> int:
        """The window length this run uses with a model of ``model_config``; past its context is an error."""
        seq_len = model_config.context_length if self.seq_len is None else self.seq_len
        if seq_len > model_config.context_length:
            raise ValueError(
                f"seq_len={seq_len} exceeds the model's context_length={model_config.context_length}; "
                f"use seq_len <= {model_config.context_length}"
            )
        return seq_len

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def with_overrides(self, **overrides) -> "TrainConfig":
        """A copy with some fields changed; an unknown name is an error that lists the known ones."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown training setting(s) {sorted(unknown)}; TrainConfig has: "
                            f"{', '.join(f.name for f in fields(self))}")
        return replace(self, **overrides)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _require(name: str, value, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name} must be {what}, got {value!r}")


@dataclass
class History:
    """What a run recorded. ``train_loss[i]`` is the loss of step i (0-based, before its update)."""

    train_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    test_loss: list[float] = field(default_factory=list)
    train_seconds: float = 0.0  # time spent in training steps (evaluation excluded)
    wall_seconds: float = 0.0
    tokens_seen: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.tokens_seen / self.train_seconds if self.train_seconds else 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "tokens_per_s": self.tokens_per_s}

    @classmethod
    def from_dict(cls, d: dict) -> "History":
        return cls(**{k: d[k] for k in cls.__dataclass_fields__})


@torch.no_grad()
def evaluate(
    model: Model5,
    tokens: torch.Tensor,
    *,
    batch_size: int = 16,
    seq_len: int = 256,
    n_batches: int = 8,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    allowed: torch.Tensor | None = None,
    loss_chunk: int = 0,
    micro_batches: int = 1,
    dist: DistContext | None = None,
) -> float:
    """Mean loss over ``n_batches`` random batches of ``tokens``; the same batches for the same seed.

    ``micro_batches``: compute each batch in this many equal pieces (the memory of a training micro-batch).
    With a distributed ``dist``, rank r evaluates batches r, r + N, … and the sum is all-reduced: every rank
    returns the mean over all ``n_batches``.
    """
    if n_batches < 1:
        raise ValueError(f"n_batches must be >= 1, got {n_batches} (a mean over no batch is NaN)")
    if batch_size % micro_batches:
        raise ValueError(f"batch_size={batch_size} does not split into micro_batches={micro_batches} equal pieces")
    device = next(model.parameters()).device
    g = torch.Generator(device="cpu").manual_seed(seed)
    chunk = loss_chunk_for(loss_chunk, dtype)
    total = torch.zeros((), device=device)
    rank, world_size = (dist.rank, dist.world_size) if dist is not None and dist.distributed else (0, 1)
    with eval_mode(model):
        for i in range(n_batches):
            if i % world_size != rank:  # another rank's batch: drawn all the same, so g stays in step
                random_starts(len(tokens), batch_size, seq_len, generator=g, allowed=allowed)
                continue
            x, y = random_batch(tokens, batch_size, seq_len, generator=g, device=device, allowed=allowed)
            for xm, ym in zip(x.split(batch_size // micro_batches), y.split(batch_size // micro_batches)):
                with autocast(device.type, dtype):
                    total += chunked_call(model.loss, xm, ym, chunk).float() / micro_batches
    return (all_reduce_sum(total, dist) / n_batches).item()


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
    """
    config = (config or TrainConfig()).with_overrides(**overrides)
    check_tokens(train_tokens, "train_tokens", vocab_size=model.config.vocab_size)
    if test_tokens is not None:
        check_tokens(test_tokens, "test_tokens", vocab_size=model.config.vocab_size)
    seq_len = config.seq_len_for(model.config)
    dist = dist if dist is not None else DistContext(torch.device("cpu"))
    per_process_batch(config, dist.world_size)
    if dist.distributed and device is not None and torch.device(device) != dist.device:
        raise ValueError(f"device={device} differs from this rank's device {dist.device}; "
                         "leave device out under torchrun")
    if dist.distributed:
        device = dist.device
    else:
        device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    dtype = autocast_dtype(device) if config.amp else None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on tensor cores (Ampere and newer)
        torch.backends.cudnn.allow_tf32 = True
    optimizer = make_adamw(model, lr=config.lr, weight_decay=config.weight_decay, fused=config.fused)
    step_fn = TrainStep(model, optimizer, dtype=dtype, grad_clip=config.grad_clip, loss_chunk=config.loss_chunk,
                        compile=config.compile, grad_accum=config.grad_accum,
                        ddp=ddp_loss(model, dist) if dist.distributed else None)
    run = _Run(model, config, seq_len, step_fn, device, train_tokens, test_tokens, dist)
    run.allowed = allowed
    if resume_from is not None:
        run.resume(resume_from)
    end = config.steps if stop_after is None else min(config.steps, run.start + stop_after)
    return run.steps_to(end, progress=progress and dist.is_main, checkpoint_path=checkpoint_path)


class _Run:
    """The state of one call of `train`: model, step function, data on the device, history, start step."""

    def __init__(self, model, config: TrainConfig, seq_len: int, step_fn: TrainStep, device, train_tokens, test_tokens,
                 dist: DistContext):
        self.model, self.config, self.seq_len, self.step_fn, self.device = model, config, seq_len, step_fn, device
        self.dist = dist
        rows = per_process_batch(config, dist.world_size)
        self.rows = slice(dist.rank * rows, (dist.rank + 1) * rows)  # this process's rows of every global batch
        # Keep the text where the model is: batches are then gathered there, no copy per step.
        self.train_tokens = train_tokens.to(device, torch.long)
        self.test_tokens = test_tokens.to(device) if test_tokens is not None else None
        self.history, self.start, self.rng = History(), 0, None
        self.allowed: torch.Tensor | None = None  # train's allowed starts (None: every start)

    def resume(self, path) -> None:
        ckpt = load_checkpoint(path, self.model, self.step_fn.optimizer, map_location=self.device)
        self.start, self.history, self.rng = ckpt["step"], History.from_dict(ckpt["history"]), ckpt["rng"]
        if self.start > self.config.steps:
            raise ValueError(f"the checkpoint is at step {self.start}, past steps={self.config.steps}; "
                             f"ask for steps >= {self.start}")
        check_resume_settings(ckpt.get("train_config"), self.config, path)
        for group in self.step_fn.optimizer.param_groups:  # the optimizer state brings back the old values
            group["lr"], group["weight_decay"] = self.config.lr, self.config.weight_decay
        if "scaler" in ckpt and self.step_fn.scaler.is_enabled():
            self.step_fn.scaler.load_state_dict(ckpt["scaler"])

    def evaluate(self, step: int) -> None:
        if self.test_tokens is None or step in self.history.eval_steps:
            return
        c = self.config
        loss = evaluate(self.model, self.test_tokens, batch_size=c.batch_size, seq_len=self.seq_len,
                        n_batches=c.eval_batches, seed=c.seed + 1, dtype=self.step_fn.dtype, loss_chunk=c.loss_chunk,
                        micro_batches=self.dist.world_size * c.grad_accum, dist=self.dist)
        self.history.eval_steps.append(step)
        self.history.test_loss.append(loss)

    def save(self, path, step: int) -> None:
        if not self.dist.is_main:  # every rank holds the same weights: one writes them
            return
        save_checkpoint(path, self.model, self.step_fn.optimizer, step, self.history, self.step_fn.scaler,
                        train_config=self.config)

    def steps_to(self, end: int, *, progress: bool, checkpoint_path) -> History:
        c, start, t_wall = self.config, self.start, time.perf_counter()
        starts = batch_starts(len(self.train_tokens), end, c.batch_size, self.seq_len, seed=c.seed, sampler=c.sampler,
                              allowed=self.allowed).to(self.device)
        starts = starts[:, self.rows]  # every rank drew the same global batches; each takes its own rows
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(c.seed)  # dropout's randomness, seeded here, restored after
            self._restore_rng()
            self.model.train()
            losses = _LossBuffer(self.history, end - start, c.batch_size * self.seq_len, self.device, c.lr)
            bar = tqdm(range(start, end), total=c.steps, initial=start, desc="train", disable=not progress)
            try:
                self._loop(bar, starts, losses, end, checkpoint_path)
            except KeyboardInterrupt:
                bar.close()
                raise self._interrupted(losses, checkpoint_path) from None
            bar.close()
            losses.flush(end - start)
            if end == c.steps or end % c.eval_every == 0:
                self.evaluate(end)
            self.history.wall_seconds += time.perf_counter() - t_wall
            if checkpoint_path:
                self.save(checkpoint_path, end)
        return self.history

    def _loop(self, bar, starts: torch.Tensor, losses: "_LossBuffer", end: int, checkpoint_path) -> None:
        c, start = self.config, self.start
        for step in bar:
            if step % c.eval_every == 0:
                self.evaluate(step)
            t0 = time.perf_counter()
            x, y = gather_windows(self.train_tokens, starts[step], self.seq_len)
            loss = all_reduce_mean(self.step_fn(x, y), self.dist)  # the mean over the global batch
            losses.put(step - start, loss, start, bar, last=step == end - 1)
            losses.seconds += time.perf_counter() - t0
            if checkpoint_path and c.checkpoint_every and (step + 1) % c.checkpoint_every == 0 and step + 1 < end:
                losses.flush(step + 1 - start)
                self.save(checkpoint_path, step + 1)

    def _interrupted(self, losses: "_LossBuffer", checkpoint_path) -> "TrainingInterrupted":
        """Ctrl-C: keep the steps done so far in a checkpoint (when the run has a path) and say how to go on."""
        done = self.start + losses.filled
        losses.flush(losses.filled)
        if checkpoint_path and done > self.start:
            self.save(checkpoint_path, done)
            how = f"checkpoint saved at step {done}: continue with resume_from={str(checkpoint_path)!r}"
        else:
            how = "no checkpoint path was given, so nothing was saved" if not checkpoint_path else "no step was done"
        return TrainingInterrupted(f"interrupted at step {done}; {how}", step=done, checkpoint=checkpoint_path)

    def _restore_rng(self) -> None:
        if self.rng is None:
            return
        torch.set_rng_state(self.rng["torch"].cpu())
        if self.device.type == "cuda" and "cuda" in self.rng:  # a run saved on a CPU has none: seeded afresh
            torch.cuda.set_rng_state(self.rng["cuda"].cpu(), self.device)


class _LossBuffer:
    """Losses kept on the device and read back in bulk (each read waits for a GPU), with the time spent."""

    def __init__(self, history: History, n: int, tokens_per_step: int, device: torch.device, lr: float):
        self.history, self.tokens_per_step, self.lr = history, tokens_per_step, lr
        self.values = torch.zeros(n, device=device)
        self.read_every = 1 if device.type == "cpu" else 10
        self.done, self.seconds, self.filled = 0, 0.0, 0

    def put(self, i: int, loss: torch.Tensor, start: int, bar, *, last: bool) -> None:
        self.values[i] = loss.float()
        self.filled = i + 1
        if (i + 1) % self.read_every == 0 or last:
            _check_finite(self.values[: i + 1], start, self.lr)
            bar.set_postfix(loss=f"{self.values[i].item():.3f}")

    def flush(self, upto: int) -> None:
        """Move losses [done, upto) into the history, with their tokens and seconds."""
        self.history.train_loss.extend(self.values[self.done : upto].tolist())
        self.history.tokens_seen += (upto - self.done) * self.tokens_per_step
        self.history.train_seconds += self.seconds
        self.done, self.seconds = upto, 0.0


def per_process_batch(config: TrainConfig, world_size: int) -> int:
    """Rows of each global batch that one of ``world_size`` processes trains on (it splits them further
    into ``config.grad_accum`` micro-batches); a batch that does not split evenly is an error."""
    n = world_size * config.grad_accum
    if config.batch_size % n:
        fit = max(n, round(config.batch_size / n) * n)
        raise ValueError(f"the global batch_size={config.batch_size} does not split over {world_size} process(es) "
                         f"x grad_accum={config.grad_accum} = {n} equal micro-batches; use a batch size that is a "
                         f"multiple of {n} (e.g. {fit}), or change grad_accum or the number of processes")
    return config.batch_size // world_size


def check_resume_settings(saved: dict | None, config: "TrainConfig", path) -> None:
    """A resumed run keeps the settings that decide its batches; lr and weight decay may change (and are recorded)."""
    if saved is None:  # a checkpoint written before TrainConfig existed
        return
    saved = {"sampler": "random", **saved}  # checkpoints from before the sampler choice drew random batches
    diff = {k: (saved.get(k), getattr(config, k)) for k in _FIXED_ON_RESUME if saved.get(k) != getattr(config, k)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in diff.items())
        raise ValueError(f"cannot resume {str(path)!r} with other batch settings ({detail}): the run would see "
                         f"other batches. Resume with the checkpoint's values, or start a new run.")


def _check_finite(losses: torch.Tensor, start: int, lr: float) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        step = start + int(bad[0])
        raise TrainingDiverged(
            f"the loss became {losses[int(bad[0])].item()} at step {step}. Try a lower learning rate "
            f"(lr={lr:g} -> {lr / 3:g}), gradient clipping (grad_clip=1.0), or amp=False for full fp32."
        )
