"""The bottom floor: every training setting in one frozen dataclass, and command-line flags made from fields.

`TrainConfig` holds every setting of a training run. Each field carries its help text in its metadata, so the
command line (``python -m gpt_lesson``) builds its flags from the fields (`add_flags`): a new setting is one
field here, and its flag, its checkpoint entry and its ``metrics.json`` entry follow. This module imports no
other module of the package, so every module may import it.
"""

from __future__ import annotations

import argparse
import math
import types
import typing
from dataclasses import MISSING, Field, asdict, dataclass, field, fields, replace
from typing import Any

SAMPLERS = ("random", "epoch", "without_replacement")  # how a run's batches are drawn (`gpt_lesson.batches`)
SCHEDULES = ("constant", "cosine")  # the learning rate after warmup (`TrainConfig.lr_at`)


def setting(default: Any, help: str, **argparse_extra: Any) -> Any:
    """A dataclass field with its help text (and extra `argparse` keywords, e.g. ``choices``) in its metadata."""
    return field(default=default, metadata={"help": help, **argparse_extra})


# Settings that decide which batches a run sees, and the optimizer's parameter groups: a resumed run must keep them.
FIXED_ON_RESUME = ("seed", "batch_size", "seq_len", "eval_batches", "sampler", "decay_matrices_only")


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run, validated here, saved in checkpoints and in ``metrics.json``.

    The defaults are the course's: batch 16, AdamW with lr 1e-3 and weight decay 0.01 on every parameter,
    500 random batches, a constant learning rate, no clipping, the test loss at step 0 and every 100 steps.
    What nanoGPT and *LLMs from Scratch* teach instead are switches, all off by default: ``warmup_steps``,
    ``schedule="cosine"`` (with ``min_lr_ratio``), ``grad_clip`` and ``decay_matrices_only``.
    """

    steps: int = setting(500, "random batches to train on")
    batch_size: int = setting(16, "the global batch: the rows each step's loss is the mean over, over all processes")
    grad_accum: int = setting(1, "micro-batches per step and process: the same losses in less memory")
    seq_len: int | None = setting(None, "tokens per window; none: the model's context length")
    lr: float = setting(1e-3, "AdamW's learning rate (the peak of a schedule)")
    weight_decay: float = setting(0.01, "AdamW's weight decay")
    eval_every: int = setting(100, "test loss at step 0, every this many steps, and at the end")
    eval_batches: int = setting(8, "test batches averaged per evaluation (the course used 1)")
    seed: int = setting(1337, "seed of the batches, the test batches and dropout")
    amp: bool = setting(True, "on CUDA: bf16 autocast where native (compute capability >= 8.0), else fp16 + scaler")
    grad_clip: float | None = setting(None, "clip the gradient norm to this; none: no clipping")
    compile: bool = setting(False, "torch.compile the loss (forward and backward)")
    fused: bool = setting(True, "AdamW's fused kernel where PyTorch has it")
    loss_chunk: int = setting(0, "fp32 only: the head and the loss this many rows at a time (0: all logits at once)")
    checkpoint_every: int | None = setting(None, "also save the checkpoint every this many steps; none: at the end "
                                                 "(and on Ctrl-C) only")
    sampler: str = setting("random", "how batches are drawn: the lesson's random starts, one shuffled epoch of "
                                     "non-overlapping windows, or random starts without replacement", choices=SAMPLERS)
    warmup_steps: int = setting(0, "linear warmup: the learning rate climbs to lr over this many steps; 0: none")
    schedule: str = setting("constant", "the learning rate after warmup: constant, or a cosine decay that reaches "
                                        "lr * min_lr_ratio at the last step", choices=SCHEDULES)
    min_lr_ratio: float = setting(0.1, "the floor of the cosine decay, as a fraction of lr")
    decay_matrices_only: bool = setting(False, "weight decay on matrices only (2-D weights); biases and LayerNorm "
                                               "gains without it (two parameter groups)")

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "grad_accum", "eval_every", "eval_batches"):
            _require(name, getattr(self, name), is_int(getattr(self, name)) and getattr(self, name) >= 1,
                     "a positive integer")
        for name in ("seq_len", "checkpoint_every"):
            v = getattr(self, name)
            _require(name, v, v is None or (is_int(v) and v >= 1), "a positive integer or None")
        _require("lr", self.lr, is_number(self.lr) and self.lr >= 0, "a number >= 0 (the lesson's is 1e-3)")
        _require("weight_decay", self.weight_decay, is_number(self.weight_decay) and self.weight_decay >= 0,
                 "a number >= 0")
        clip = self.grad_clip
        _require("grad_clip", clip, clip is None or (is_number(clip) and clip > 0),
                 "a positive number or None (a negative clip would turn training into gradient ascent)")
        _require("loss_chunk", self.loss_chunk, is_int(self.loss_chunk) and self.loss_chunk >= 0,
                 "0 (off) or a positive row count")
        _require("grad_accum", self.grad_accum, self.batch_size % self.grad_accum == 0,
                 f"a divisor of batch_size={self.batch_size} (each micro-batch gets batch_size / grad_accum rows)")
        _require("seed", self.seed, is_int(self.seed) and self.seed >= 0, "an integer >= 0")
        for name in ("amp", "compile", "fused"):
            _require(name, getattr(self, name), isinstance(getattr(self, name), bool), "True or False")
        _require("sampler", self.sampler, self.sampler in SAMPLERS, f"one of {', '.join(map(repr, SAMPLERS))}")
        _require("warmup_steps", self.warmup_steps, is_int(self.warmup_steps) and 0 <= self.warmup_steps <= self.steps,
                 f"an integer from 0 to steps={self.steps}")
        _require("schedule", self.schedule, self.schedule in SCHEDULES, f"one of {', '.join(map(repr, SCHEDULES))}")
        _require("min_lr_ratio", self.min_lr_ratio, is_number(self.min_lr_ratio) and 0 <= self.min_lr_ratio <= 1,
                 "a number from 0 to 1 (the cosine decay's floor over lr)")
        _require("decay_matrices_only", self.decay_matrices_only, isinstance(self.decay_matrices_only, bool),
                 "True or False")

    def lr_at(self, step: int) -> float:
        """The learning rate of step ``step`` (0-based): lr * (step + 1) / warmup_steps during warmup, then lr
        (constant), or a cosine from lr down to lr * min_lr_ratio at the last step. A function of the step alone,
        so a resumed run follows the same schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        decay_steps = self.steps - self.warmup_steps - 1
        progress = 1.0 if decay_steps <= 0 else min(1.0, (step - self.warmup_steps) / decay_steps)
        floor = self.lr * self.min_lr_ratio
        return floor + 0.5 * (self.lr - floor) * (1.0 + math.cos(math.pi * progress))

    def seq_len_for(self, model_config: Any) -> int:
        """The window length this run uses with a model of ``model_config`` (a `GPTConfig`); past its context
        length is an error."""
        seq_len = model_config.context_length if self.seq_len is None else self.seq_len
        if seq_len > model_config.context_length:
            raise ValueError(
                f"seq_len={seq_len} exceeds the model's context_length={model_config.context_length}; "
                f"use seq_len <= {model_config.context_length}"
            )
        return seq_len

    def check_resumable_from(self, saved: dict | None, source: object) -> None:
        """Refuse to resume a run saved with ``saved`` (a checkpoint's ``train_config``; None: not recorded) under
        other settings that decide its batches or its optimizer's groups; lr, its schedule and weight decay may
        change (and are recorded)."""
        if saved is None:
            return
        defaults = TrainConfig()  # a field the checkpoint does not hold had its default then
        saved = {k: saved.get(k, getattr(defaults, k)) for k in FIXED_ON_RESUME}
        diff = {k: (saved[k], getattr(self, k)) for k in FIXED_ON_RESUME if saved[k] != getattr(self, k)}
        if diff:
            detail = ", ".join(f"{k}: checkpoint {a} vs now {b}" for k, (a, b) in diff.items())
            raise ValueError(f"cannot resume {str(source)!r} with other batch or optimizer settings ({detail}): the "
                             "run would see other batches or other parameter groups. Resume with the checkpoint's "
                             "values, or start a new run.")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            known = ", ".join(f.name for f in fields(cls))
            raise ValueError(f"unknown TrainConfig fields {sorted(unknown)}; known: {known}")
        return cls(**d)

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed; an unknown name is an error that lists the known ones."""
        unknown = set(overrides) - {f.name for f in fields(self)}
        if unknown:
            raise TypeError(f"unknown training setting(s) {sorted(unknown)}; TrainConfig has: "
                            f"{', '.join(f.name for f in fields(self))}")
        return replace(self, **overrides)


def is_int(v: Any) -> bool:
    """An int, and not a bool (True would pass as 1)."""
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    """A finite int or float, and not a bool."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _require(name: str, value: Any, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"TrainConfig.{name} must be {what}, got {value!r}")


# ---- Command-line flags from dataclass fields ------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *, keep_unset: bool = False,
              default_note: str = "", exclude: tuple[str, ...] = (), include: tuple[str, ...] | None = None) -> None:
    """One ``--field-name`` flag per field of the dataclass ``cls`` that has help text in its metadata (only the
    fields named in ``include`` where it is given; none named in ``exclude``).

    The flag's type, choices and ``(default: ...)`` come from the field. A ``bool`` field gets ``--x`` and
    ``--no-x``; ``X | None`` accepts ``none``; ``tuple[int, ...]`` takes comma-separated values.
    ``keep_unset``: a flag not given is left out of the namespace (`flags_given` then lists only what was given),
    so that another source (a preset, a checkpoint) keeps its value; ``default_note`` then says whose value that is.
    """
    hints = typing.get_type_hints(cls)
    unknown = set(include or ()) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"add_flags: include names {sorted(unknown)}, which {cls.__name__} has no field for")
    for f in fields(cls):
        if "help" not in f.metadata or f.name in exclude or (include is not None and f.name not in include):
            continue
        default = _default(f)
        shown = "none" if default is None else ",".join(map(str, default)) if isinstance(default, tuple) else default
        kw: dict[str, Any] = {"dest": f.name, "help": f"{f.metadata['help']} (default: {default_note}{shown})",
                              "default": argparse.SUPPRESS if keep_unset else default}
        kind, optional = _unwrap(hints[f.name])
        if kind is bool and not optional:
            kw["action"] = argparse.BooleanOptionalAction
        else:
            kw["type"] = _parser_for(kind, optional, f.name)
            kw["metavar"] = f.metadata.get("metavar", f.name.upper())
            if "choices" in f.metadata:
                kw["metavar"] = "{" + ",".join(map(str, f.metadata["choices"])) + "}"
                kw["type"] = _choice(kw["type"], tuple(f.metadata["choices"]), f.name)
        parser.add_argument("--" + f.name.replace("_", "-"), **kw)


def flags_given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The fields of ``cls`` that ``args`` holds (with ``keep_unset``: the ones given on the command line)."""
    return {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}


def _default(f: Field) -> Any:
    return f.default_factory() if f.default is MISSING and f.default_factory is not MISSING else f.default


def _unwrap(hint: Any) -> tuple[Any, bool]:
    """(the type, whether None is allowed) of a field's annotation."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


_BOOL_WORDS = {"true": True, "on": True, "yes": True, "1": True, "false": False, "off": False, "no": False, "0": False}


def _parser_for(kind: Any, optional: bool, name: str):
    """A function from the command line's string to the field's type."""
    def parse(text: str) -> Any:
        if optional and text.lower() in ("none", "auto"):
            return None
        if kind is bool:
            if text.lower() not in _BOOL_WORDS:
                raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} takes on, off or auto, got {text!r}")
            return _BOOL_WORDS[text.lower()]
        if typing.get_origin(kind) is tuple:
            item = typing.get_args(kind)[0]
            return tuple(item(part) for part in text.split(",") if part.strip())
        return kind(text)
    parse.__name__ = getattr(kind, "__name__", "value")  # argparse names the type in its error message
    return parse


def _choice(parse, choices: tuple, name: str):
    def check(text: str) -> Any:
        value = parse(text)
        if value is not None and value not in choices:
            allowed = ", ".join(map(str, choices))
            raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} must be one of {allowed}, "
                                             f"got {text!r}")
        return value
    check.__name__ = parse.__name__
    return check
