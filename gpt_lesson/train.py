"""Step 06: train Model 5 on random batches, evaluate, keep a history, save and resume checkpoints.

The lesson's defaults: batch 16, T 256, AdamW (lr 1e-3, weight decay 0.01), 500 random batches,
test loss at step 0 and every 100 steps. Unlike the course, the test loss is a mean over several
test batches (one 16×256 batch is a noisy estimate), and the same test batches are used at
every evaluation, so the points of the curve differ only because the model changed.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .batches import random_batch
from .book import write_atomic
from .device import autocast_dtype
from .model import GPTConfig, Model5
from .tokens import check_tokens

CHECKPOINT_FORMAT = "gpt_lesson-checkpoint-1"


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


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
) -> float:
    """Mean loss over ``n_batches`` random batches of ``tokens``; the same batches for the same seed."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    g = torch.Generator(device="cpu").manual_seed(seed)
    total = torch.zeros((), device=device)
    for _ in range(n_batches):
        x, y = random_batch(tokens, batch_size, seq_len, generator=g, device=device, allowed=allowed)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            total += model.loss(x, y).float()
    model.train(was_training)
    return (total / n_batches).item()


def train(
    model: Model5,
    train_tokens: torch.Tensor,
    test_tokens: torch.Tensor | None = None,
    *,
    steps: int = 500,
    batch_size: int = 16,
    seq_len: int | None = None,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    eval_every: int = 100,
    eval_batches: int = 8,
    seed: int = 1337,
    device: torch.device | str | None = None,
    amp: bool = True,
    grad_clip: float | None = None,
    compile: bool = False,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume_from: str | os.PathLike | None = None,
    stop_after: int | None = None,
    fused: bool = True,
) -> History:
    """Train ``model`` for ``steps`` random batches of (batch_size, seq_len) and return the `History`.

    - ``device``: where to train (default: where the model is); the model is moved there.
    - ``amp``: on CUDA, autocast to bf16 where native (compute capability >= 8.0), else fp16 with a
      gradient scaler; on CPU always fp32.
    - ``checkpoint_path``: saved atomically at the end (and every ``checkpoint_every`` steps).
    - ``resume_from``: a checkpoint of this model's config; the run continues from its step with the
      same batches, so a resumed run gives the losses of an unbroken one.
    - ``stop_after``: leave after this many steps of this call (an interruption you can resume from).
    - ``fused``: AdamW's fused kernel (one pass over the weights) where PyTorch has it; False: the
      plain multi-tensor version. Same update up to float rounding.
    """
    check_tokens(train_tokens, "train_tokens")
    cfg = model.config
    seq_len = cfg.context_length if seq_len is None else seq_len
    if seq_len > cfg.context_length:
        raise ValueError(f"seq_len={seq_len} exceeds the model's context_length={cfg.context_length}")
    if steps < 1 or eval_every < 1:
        raise ValueError(f"steps and eval_every must be >= 1, got steps={steps}, eval_every={eval_every}")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    dtype = autocast_dtype(device) if amp else None
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # fp32 matmuls on tensor cores (Ampere and newer)
        torch.backends.cudnn.allow_tf32 = True
    # Keep the text where the model is: batches are then drawn and gathered there, no copy per step.
    train_tokens = train_tokens.to(device)
    test_tokens = test_tokens.to(device) if test_tokens is not None else None

    optimizer = make_adamw(model, lr=lr, weight_decay=weight_decay, fused=fused)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    gen = torch.Generator(device=device).manual_seed(seed)
    history, start = History(), 0
    rng_state = None
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, model, optimizer, map_location=device)
        start, history = ckpt["step"], History.from_dict(ckpt["history"])
        if start > steps:
            raise ValueError(f"the checkpoint is at step {start}, past steps={steps}; ask for steps >= {start}")
        gen.set_state(ckpt["rng"]["sampler"].to("cpu"))
        if "scaler" in ckpt and scaler.is_enabled():
            scaler.load_state_dict(ckpt["scaler"])
        rng_state = ckpt["rng"]
    loss_fn = torch.compile(model.loss) if compile else model.loss
    end = steps if stop_after is None else min(steps, start + stop_after)

    def do_eval(step: int) -> None:
        if test_tokens is None or step in history.eval_steps:
            return
        loss = evaluate(model, test_tokens, batch_size=batch_size, seq_len=seq_len, n_batches=eval_batches,
                        seed=seed + 1, dtype=dtype)
        history.eval_steps.append(step)
        history.test_loss.append(loss)

    t_wall = time.perf_counter()
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # dropout's randomness, seeded here, restored after
        torch.manual_seed(seed)
        if rng_state is not None:
            torch.set_rng_state(rng_state["torch"])
            if device.type == "cuda" and "cuda" in rng_state:
                torch.cuda.set_rng_state(rng_state["cuda"], device)
        model.train()
        losses = torch.zeros(end - start, device=device)  # filled on the device, read back in bulk
        done = 0  # how many of `losses` are already in the history
        t_train = 0.0

        def flush(upto: int) -> None:
            nonlocal done, t_train
            history.train_loss.extend(losses[done:upto].tolist())
            history.tokens_seen += (upto - done) * batch_size * seq_len
            history.train_seconds += t_train
            done, t_train = upto, 0.0

        bar = tqdm(range(start, end), total=steps, initial=start, desc="train", disable=not progress)
        read_every = 1 if device.type == "cpu" else 10  # each read waits for the GPU: not every step
        for step in bar:
            i = step - start
            if step % eval_every == 0:
                do_eval(step)
            t0 = time.perf_counter()
            x, y = random_batch(train_tokens, batch_size, seq_len, generator=gen)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            losses[i] = loss.detach().float()
            if (i + 1) % read_every == 0 or step == end - 1:
                _check_finite(losses[: i + 1], start, lr)
                bar.set_postfix(loss=f"{losses[i].item():.3f}")
            t_train += time.perf_counter() - t0
            if checkpoint_path and checkpoint_every and (step + 1) % checkpoint_every == 0 and step + 1 < end:
                flush(i + 1)
                save_checkpoint(checkpoint_path, model, optimizer, step + 1, history, gen, scaler)
        bar.close()
        flush(end - start)
        if end == steps or end % eval_every == 0:
            do_eval(end)
        history.wall_seconds += time.perf_counter() - t_wall
        if checkpoint_path:
            save_checkpoint(checkpoint_path, model, optimizer, end, history, gen, scaler)
    return history


def make_adamw(model: torch.nn.Module, *, lr: float, weight_decay: float, fused: bool = True) -> torch.optim.AdamW:
    """AdamW over all parameters (as the course). The fused kernel updates 124M weights about 5x faster
    than the multi-tensor one on this project's CPU (docs/performance.md); PyTorch before 2.4 has it
    for CUDA only, so elsewhere the multi-tensor version is used."""
    if fused:
        try:
            return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # "fused=True requires ... devices: ['cuda']" on older PyTorch
            pass
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)


def _check_finite(losses: torch.Tensor, start: int, lr: float) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        step = start + int(bad[0])
        raise TrainingDiverged(
            f"the loss became {losses[int(bad[0])].item()} at step {step}. Try a lower learning rate "
            f"(lr={lr:g} -> {lr / 3:g}), gradient clipping (grad_clip=1.0), or amp=False for full fp32."
        )


# ---- checkpoints -------------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    history: History | None = None,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
) -> Path:
    """Save everything a resume needs, atomically: a crash mid-write never replaces a good checkpoint."""
    path = Path(path)
    rng = {"torch": torch.get_rng_state()}
    if generator is not None:
        rng["sampler"] = generator.get_state()
    if torch.cuda.is_available() and next(model.parameters()).is_cuda:
        rng["cuda"] = torch.cuda.get_rng_state(next(model.parameters()).device)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history.to_dict() if history is not None else None,
        "rng": rng,
    }
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    write_atomic(path, lambda f: torch.save(state, f))
    return path


def read_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict:
    """Load a checkpoint file safely (``weights_only=True``) and check that it is one of ours."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; train with checkpoint_path=... first")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, zip errors, plain text...
        raise ValueError(f"{str(path)!r} is not a gpt_lesson checkpoint (torch.load failed: {type(e).__name__})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{str(path)!r} is not a gpt_lesson checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    return ckpt


def checkpoint_config(path: str | os.PathLike) -> GPTConfig:
    """The config a checkpoint was saved with: ``Model5(checkpoint_config(path))`` fits it."""
    return GPTConfig.from_dict(read_checkpoint(path)["config"])


def load_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: torch.device | str = "cpu",
) -> dict:
    """Load weights (and optimizer state) into ``model``; refuse a checkpoint of another config."""
    ckpt = read_checkpoint(path, map_location)
    saved = GPTConfig.from_dict(ckpt["config"])
    shape_fields = ("vocab_size", "context_length", "n_layer", "n_head", "n_embd", "vocab_multiple")
    diff = {f: (getattr(saved, f), getattr(model.config, f)) for f in shape_fields if getattr(saved, f) != getattr(model.config, f)}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a} vs model {b}" for k, (a, b) in diff.items())
        raise ValueError(
            f"checkpoint {str(path)!r} was saved from another config ({detail}). "
            "Build the model with Model5(checkpoint_config(path)) to load it."
        )
    model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt

