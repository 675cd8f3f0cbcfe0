"""Checkpoints: everything a resume needs, written atomically and read back safely.

A checkpoint holds the model config, the weights, the optimizer (and fp16 scaler) state, the step, the
history, the `TrainConfig` it was trained with and the RNG state of dropout. It holds no sampler state:
the batches of step s follow from the seed and s alone (`gpt_lesson.training`), on any device, so a run
saved on a GPU resumes on a CPU and the other way round.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from .fileio import write_atomic
from .model import GPTConfig, Model5

CHECKPOINT_FORMAT = "gpt_lesson-checkpoint-1"


class NonFiniteWeights(RuntimeError):
    """The weights hold NaN or inf: saving them would replace a good checkpoint with a broken one."""


def check_finite_weights(model: torch.nn.Module) -> None:
    """Raise `NonFiniteWeights` naming the first parameter that holds NaN or inf."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteWeights(
                f"parameter {name} holds NaN or inf, so it was not saved (the previous checkpoint is kept). "
                "Resume from that checkpoint with a lower learning rate or grad_clip=1.0."
            )


def save_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    history=None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    train_config=None,
) -> Path:
    """Save everything a resume needs, atomically: a crash mid-write never replaces a good checkpoint,
    and weights with NaN/inf are refused before anything is written."""
    path = Path(path)
    check_finite_weights(model)
    device = next(model.parameters()).device
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history.to_dict() if history is not None else None,
        "train_config": train_config.to_dict() if train_config is not None else None,
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


_SHAPE_FIELDS = ("vocab_size", "context_length", "n_layer", "n_head", "n_embd", "vocab_multiple")


def load_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: torch.device | str = "cpu",
) -> dict:
    """Load weights (and optimizer state) into ``model``; refuse a checkpoint of another config."""
    ckpt = read_checkpoint(path, map_location)
    saved = GPTConfig.from_dict(ckpt["config"])
    diff = {f: (getattr(saved, f), getattr(model.config, f)) for f in _SHAPE_FIELDS if getattr(saved, f) != getattr(model.config, f)}
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
