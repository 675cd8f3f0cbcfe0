"""Checkpoints: the one place that knows their format. Written atomically, read back safely, checked on load.

A checkpoint (format ``gpt_lesson-checkpoint-3``) holds the model config, the weights and a SHA-256 of them, the
optimizer (and fp16 scaler) state, the step, the history, the `TrainConfig` it was trained with, the run's plan
(`gpt_lesson.RunPlan.to_dict`) and the RNG state of dropout. It holds no sampler state: the batches of step s
follow from the seed and s alone (`gpt_lesson.plan`), on any device,
so a run saved on a GPU resumes on a CPU and the other way round.

Files of an older layout are brought to today's by `upgrade`, in memory, when they are read; nothing else in the
package knows the old layouts.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import torch

from .fileio import write_atomic
from .model import GPTConfig, Model5

CHECKPOINT_FORMAT = "gpt_lesson-checkpoint-3"
OLD_FORMATS = ("gpt_lesson-checkpoint-1", "gpt_lesson-checkpoint-2")

# GPTConfig fields that do not change what a model with given weights computes in evaluation: a checkpoint
# saved with another value loads, with one line saying so. Every other field must match.
_TRAINING_ONLY_FIELDS = ("dropout", "gpt2_init", "scaled_residual_init")


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


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor of a state dict: names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(state_dict):
        t = state_dict[name].detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.view(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def save_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None,
    step: int,
    history=None,
    scaler: torch.amp.GradScaler | None = None,
    *,
    train_config=None,
    plan: dict | None = None,
) -> Path:
    """Save everything a resume needs, atomically: a crash mid-write never replaces a good checkpoint,
    and weights with NaN/inf are refused before anything is written."""
    path = Path(path)
    check_finite_weights(model)
    device = next(model.parameters()).device
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    weights = model.state_dict()
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": model.config.to_dict(),
        "model": weights,
        "model_sha256": weights_sha256(weights),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "step": step,
        "history": history.to_dict() if history is not None else None,
        "train_config": train_config.to_dict() if train_config is not None else None,
        "plan": plan,
        "rng": rng,
    }
    if scaler is not None and scaler.is_enabled():
        state["scaler"] = scaler.state_dict()
    write_atomic(path, lambda f: torch.save(state, f))
    return path


def upgrade(ckpt: dict) -> dict:
    """A checkpoint dict of an older layout in today's (format 3), in memory; one of today's comes back as it is.

    Format 2: no ``plan`` (None: not recorded); everything else as today.

    Format 1, as written by version 0.1.0: ``loss_chunk`` in the model config (now a training setting, moved into
    ``train_config`` when there is one), no ``train_config``, and the sampler's generator state in ``rng`` (batches
    now follow from the seed; dropped). Format 1 before the sampler choice: a ``train_config`` without ``sampler``
    (those runs drew random batches). Every format 1 file: no checksum (``model_sha256`` None: nothing to verify),
    and a history without the learning rate of each step (every step had the run's ``lr``; None for 0.1.0).
    """
    if ckpt.get("format") == CHECKPOINT_FORMAT:
        return ckpt
    if ckpt.get("format") not in OLD_FORMATS:
        raise ValueError(f"unknown checkpoint format {ckpt.get('format')!r}")
    if ckpt["format"] == "gpt_lesson-checkpoint-2":
        return {**ckpt, "format": CHECKPOINT_FORMAT, "plan": None}
    ckpt = dict(ckpt)
    config = dict(ckpt["config"])
    loss_chunk = config.pop("loss_chunk", None)
    train_config = ckpt.get("train_config")
    if train_config is not None:
        train_config = {"sampler": "random", **train_config}
        if loss_chunk is not None:
            train_config.setdefault("loss_chunk", loss_chunk)
    history = ckpt.get("history")
    if history is not None and "lr" not in history:  # every step had the run's one learning rate (None: unknown)
        history = {**history, "lr": [train_config["lr"] if train_config else None] * len(history["train_loss"])}
    ckpt.update(format=CHECKPOINT_FORMAT, config=config, train_config=train_config, model_sha256=None, plan=None,
                history=history, rng={k: v for k, v in ckpt["rng"].items() if k != "sampler"})
    return ckpt


def read_checkpoint(path: str | os.PathLike, map_location: torch.device | str = "cpu") -> dict:
    """Load a checkpoint file safely (``weights_only=True``), check that it is one of ours and that its weights
    match their checksum, and bring it to today's layout (`upgrade`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {str(path)!r}; train with checkpoint_path=... first")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # pickle errors, zip errors, plain text...
        raise ValueError(f"{str(path)!r} is not a gpt_lesson checkpoint (torch.load failed: {type(e).__name__})") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") not in (CHECKPOINT_FORMAT, *OLD_FORMATS):
        raise ValueError(f"{str(path)!r} is not a gpt_lesson checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    ckpt = {**upgrade(ckpt), "path": str(path)}  # where it was read from, for messages (not saved)
    if ckpt["model_sha256"] is not None and weights_sha256(ckpt["model"]) != ckpt["model_sha256"]:
        raise ValueError(f"checkpoint {str(path)!r} is damaged: its weights do not match the checksum saved with "
                         "them (a disk or copy error changed the file). Use an earlier checkpoint or train again.")
    return ckpt


def checkpoint_config(path: str | os.PathLike) -> GPTConfig:
    """The config a checkpoint was saved with: ``Model5(checkpoint_config(path))`` fits it."""
    return GPTConfig.from_dict(read_checkpoint(path)["config"])


def config_differences(saved: GPTConfig, model: GPTConfig) -> tuple[dict, dict]:
    """(fields that change what the model computes, fields that do not), each ``{field: (saved, model)}``, where
    ``saved`` and ``model`` differ."""
    diff = {k: (v, getattr(model, k)) for k, v in saved.to_dict().items() if v != getattr(model, k)}
    harmless = {k: v for k, v in diff.items() if k in _TRAINING_ONLY_FIELDS}
    return {k: v for k, v in diff.items() if k not in harmless}, harmless


def load_checkpoint(
    path: str | os.PathLike,
    model: Model5,
    optimizer: torch.optim.Optimizer | None = None,
    map_location: torch.device | str = "cpu",
    *,
    verbose: bool = True,
) -> dict:
    """Load weights (and optimizer state) into ``model``; refuse a checkpoint whose config would make ``model``
    compute something else. A difference that does not (dropout, the init) is loaded, and one line says so."""
    return apply_checkpoint(read_checkpoint(path, map_location), model, optimizer, source=path, verbose=verbose)


def apply_checkpoint(ckpt: dict, model: Model5, optimizer: torch.optim.Optimizer | None = None, *,
                     source: str | os.PathLike = "the checkpoint", verbose: bool = True) -> dict:
    """`load_checkpoint` for a checkpoint already read (`read_checkpoint`): its weights (and optimizer state) into
    ``model`` (and ``optimizer``), after the same config check."""
    refuse_other_config(ckpt, model.config, source, verbose=verbose)
    return load_state(ckpt, model, optimizer)


def refuse_other_config(ckpt: dict, config: GPTConfig, source: str | os.PathLike = "the checkpoint", *,
                        verbose: bool = True) -> None:
    """Refuse a checkpoint whose config would make a model of ``config`` compute something else; a difference that
    does not (dropout, the init) passes, and one line says so."""
    refused, harmless = config_differences(GPTConfig.from_dict(ckpt["config"]), config)
    if refused:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs model {b!r}" for k, (a, b) in refused.items())
        raise ValueError(
            f"checkpoint {str(source)!r} was saved from another config ({detail}). "
            "Build the model with Model5(checkpoint_config(path)) to load it."
        )
    if harmless and verbose:
        detail = ", ".join(f"{k}={b!r} (checkpoint: {a!r})" for k, (a, b) in harmless.items())
        print(f"loaded into a model with {detail}: the same function in evaluation, other training behaviour")


def load_state(ckpt: dict, model: Model5, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """The weights (and optimizer state) of a checkpoint already read and checked (`read_checkpoint`,
    `refuse_other_config`: a `gpt_lesson.RunPlan` does both) into ``model`` (and ``optimizer``)."""
    model.load_state_dict(ckpt["model"])
    if optimizer is not None and ckpt.get("optimizer") is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
    return ckpt
