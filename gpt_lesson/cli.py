"""``python -m gpt_lesson``: the whole lesson in one run.

book -> tokens -> 90/10 split -> a sample before training -> train -> a sample after -> a run folder
with ``metrics.json``, ``loss.png``, ``samples.txt`` and ``checkpoint.pt``.

Every argument is checked before any work starts: a bad one ends the run with one line and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .book import BookError, clean_text, load_book
from .checkpoints import read_checkpoint
from .device import describe_runtime
from .distributed import DistContext, barrier, process_group
from .generation import LESSON_PROMPT, generate_tokens
from .memorization import copied
from .model import GPTConfig, Model5
from .presets import PRESETS, choose_preset, preset, train_config
from .split import tail_split
from .tokens import decode, encode, for_display
from .config import TrainConfig, add_flags, flags_given, setting
from .training import History, TrainingInterrupted, per_process_batch, train

@dataclass(frozen=True)
class RunOptions:
    """What ``python -m gpt_lesson`` does besides training; with `TrainConfig`, the source of every flag."""

    preset: str = setting("auto", "model size and its training settings; auto = model5 on a GPU, cpu on a CPU",
                          choices=("auto", *PRESETS))
    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    book: str = setting("829", "Gutenberg id, URL or local .txt path")
    raw: bool = setting(False, "train on the raw file (header, licence, CRLF), as the course did")
    offline: bool = setting(False, "never use the network (cache or shipped copy)")
    out: str | None = setting(None, "run folder; none: runs/<date-time>", metavar="FOLDER")
    overwrite: bool = setting(False, "start afresh in an --out folder that holds a run")
    resume: str | None = setting(None, "continue a run from its checkpoint.pt", metavar="CHECKPOINT")
    sample_tokens: int = setting(100, "tokens to generate before and after training", metavar="N")
    progress: bool = setting(True, "show a progress bar")


def build_parser() -> argparse.ArgumentParser:
    """Every flag comes from a field: `RunOptions` for the run, `TrainConfig` for the training settings."""
    p = argparse.ArgumentParser(
        prog="python -m gpt_lesson",
        description="Train Model 5 (GPT-2 small) on Gulliver's Travels with random batches, as in the lesson.",
    )
    add_flags(p.add_argument_group("the run"), RunOptions)
    add_flags(p.add_argument_group("training settings (TrainConfig; a flag not given keeps the preset's or the "
                                   "checkpoint's value)"), TrainConfig, keep_unset=True, default_note="TrainConfig's ")
    return p


@dataclass(frozen=True)
class Plan:
    """What a run will do, decided (and checked) before any work."""

    device: torch.device
    name: str
    why: str
    model: GPTConfig
    train: TrainConfig
    out: Path
    dist: DistContext  # this process's place in a torchrun job (one process without torchrun)


def plan(args: argparse.Namespace) -> Plan:
    """Check every argument and decide the configs; raise ValueError/RuntimeError/FileNotFoundError if one is bad."""
    dist = DistContext.from_env(args.device)
    device = dist.device
    if args.resume:
        ckpt = read_checkpoint(args.resume)
        model_cfg, name, why = GPTConfig.from_dict(ckpt["config"]), "checkpoint", f"config read from {args.resume}"
        saved = ckpt["train_config"]
        base = TrainConfig.from_dict(saved) if saved else TrainConfig(seq_len=model_cfg.context_length)
    else:
        name, why = choose_preset(device) if args.preset == "auto" else (args.preset, "chosen with --preset")
        model_cfg, base = preset(name), train_config(name)
    tc = base.with_overrides(**flags_given(args, TrainConfig))
    tc.seq_len_for(model_cfg)
    per_process_batch(tc, dist.world_size)
    if args.resume:
        tc.check_resumable_from(ckpt["train_config"], args.resume)
    if args.resume and ckpt["step"] > tc.steps:
        raise ValueError(f"the checkpoint is at step {ckpt['step']}, past --steps {tc.steps}; "
                         f"ask for --steps >= {ckpt['step']}")
    if args.sample_tokens < 0:
        raise ValueError(f"--sample-tokens must be >= 0, got {args.sample_tokens}")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    _check_out(out, resuming=bool(args.resume), overwrite=args.overwrite)
    return Plan(device, name, why, model_cfg, tc, out, dist)


def _check_out(out: Path, *, resuming: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a folder; choose another --out")
    if any(parent.is_file() for parent in out.parents):
        raise ValueError(f"--out {str(out)!r} lies under a file; choose another --out")
    if (out / "checkpoint.pt").exists() and not (resuming or overwrite):
        raise ValueError(f"{str(out)!r} already holds a run; continue it with --resume {out / 'checkpoint.pt'}, "
                         "replace it with --overwrite, or choose another --out")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        p = plan(args)
    except (ValueError, RuntimeError, FileNotFoundError) as e:
        if not _other_rank():  # every rank finds the same bad input: rank 0 says it
            print(f"error: {e}", file=sys.stderr)
        return 2
    if not p.dist.distributed:
        return _run(args, p)
    try:
        with process_group(p.dist):
            return _run(args, p)
    except Exception as e:  # this rank failed, or lost a rank that did: one line, the group closed, a non-zero exit
        print(f"error on rank {p.dist.rank} of {p.dist.world_size}: {_one_line(e)}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, p: Plan) -> int:
    """The run itself, on every rank; rank 0 alone prints, samples and writes the run folder."""
    main_rank = p.dist.is_main
    say = print if main_rank else _silent
    say(describe_runtime(p.device))
    if p.dist.distributed:
        say(f"torchrun: {p.dist.world_size} processes ({p.dist.backend}), each on its own rows of every batch")
    say(f"preset: {p.name} ({p.why})")
    if not main_rank:
        barrier(p.dist)  # rank 0 loads the book first: one download into the cache, not one per rank
    try:
        book = load_book(args.book, offline=True if args.offline else None, verbose=main_rank)
    except (BookError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if main_rank:
        barrier(p.dist)
    text = book.text if args.raw else clean_text(book.text)
    tokens = encode(text)
    train_tokens, test_tokens = tail_split(tokens, 0.9)
    say(f"book: {len(text):,} characters from {book.source}; {len(tokens):,} tokens "
        f"({len(train_tokens):,} train / {len(test_tokens):,} test)")
    torch.manual_seed(p.train.seed)  # the model's initial weights
    model = Model5(p.model).to(p.device)
    seq_len = p.train.seq_len_for(p.model)
    say(f"model: {model.num_params():,} parameters; batches of {p.train.batch_size}x{seq_len}{_split(p)}; "
        f"{p.train.steps} steps")
    if main_rank:
        p.out.mkdir(parents=True, exist_ok=True)
    before = "" if args.resume or not main_rank else _sample(model, args, p.train.seed)[0]
    if before:
        print("\n--- before training ---\n" + before + "\n")
    try:
        history = train(model, train_tokens, test_tokens, p.train, device=p.device, dist=p.dist,
                        progress=args.progress, checkpoint_path=p.out / "checkpoint.pt", resume_from=args.resume)
    except TrainingInterrupted as e:
        hint = f"; continue with: python -m gpt_lesson --resume {e.checkpoint}" if e.step > 0 else ""
        say(f"\ninterrupted at step {e.step}{hint}", file=sys.stderr)
        return 130
    if not main_rank:
        return 0
    after, new_ids = _sample(model, args, p.train.seed)
    print("\n--- after training ---\n" + after + "\n")
    copying = _copying(new_ids, train_tokens, test_tokens)
    if copying:
        print(copying["summary"])
    _write_run(p, history, before, after, {"book_source": book.source, "n_tokens": len(tokens),
                                           "memorization": copying})
    return 0


def _silent(*args, **kwargs) -> None:
    pass


def _other_rank() -> bool:
    """True in a torchrun process other than rank 0 (read before the context exists: it may be what failed)."""
    rank = os.environ.get("RANK", "0")
    return rank.isdigit() and int(rank) > 0


def _split(p: Plan) -> str:
    """How one batch is shared: '' for one process without accumulation."""
    n, k = p.dist.world_size, p.train.grad_accum
    parts = ([f"{n} processes"] if n > 1 else []) + ([f"{k} micro-batches"] if k > 1 else [])
    return " = " + " x ".join([*parts, f"{p.train.batch_size // (n * k)} rows"]) if parts else ""


def _one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:400] if lines else ''}"


def _sample(model: Model5, args: argparse.Namespace, seed: int) -> tuple[str, torch.Tensor]:
    """The lesson's prompt continued by ``--sample-tokens`` tokens: (prompt and continuation as text, the new ids)."""
    prompt = encode(LESSON_PROMPT)
    ids = generate_tokens(model, prompt[None], args.sample_tokens, generator=torch.Generator().manual_seed(seed))[0]
    return for_display(decode(ids)), ids[len(prompt) :].cpu()


def _copying(new_ids: torch.Tensor, train_tokens: torch.Tensor, test_tokens: torch.Tensor, n: int = 8) -> dict | None:
    """How much of the sample occurs verbatim in the training part, and in the test part (the control); None for a
    sample shorter than n tokens."""
    if len(new_ids) < n:
        return None
    found = {part: copied(new_ids, tokens, n) for part, tokens in (("train", train_tokens), ("test", test_tokens))}
    tr, te = found["train"], found["test"]
    summary = (f"copied from the training part: {tr.share:.0%} of the sample's {n}-grams, longest span {tr.longest} "
               f"tokens; from the test part (never trained on, the control): {te.share:.0%}, longest {te.longest}")
    return {"n": n, "summary": summary, **{part: {"share": c.share, "longest": c.longest, "text": c.text}
                                          for part, c in found.items()}}


def _write_run(p: Plan, history: History, before: str, after: str, data: dict) -> None:
    """loss.png, samples.txt and metrics.json into the run folder, and the closing lines."""
    from .plots import plot_losses  # matplotlib only when a plot is made

    plot_losses(history).savefig(p.out / "loss.png", dpi=120)
    copying = data.get("memorization")
    (p.out / "samples.txt").write_text(
        (f"--- before training ---\n{before}\n\n" if before else "") + f"--- after training ---\n{after}\n"
        + (f"\n{copying['summary']}\nlongest copied span: {copying['train']['text']!r}\n" if copying else ""),
        encoding="utf-8",
    )
    seq_len = p.train.seq_len_for(p.model)
    metrics = {
        "preset": p.name, "config": p.model.to_dict(), "train_config": p.train.to_dict(), "device": str(p.device),
        "world_size": p.dist.world_size, "steps": p.train.steps, "batch_size": p.train.batch_size, "seq_len": seq_len,
        **data,
        "history": history.to_dict(),
    }
    (p.out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False), encoding="utf-8")
    tail = history.train_loss[-10:]
    if history.test_loss:
        print(f"test loss {history.test_loss[0]:.3f} -> {history.test_loss[-1]:.3f}; ", end="")
    print(f"train loss (last {len(tail)} steps) {sum(tail) / max(1, len(tail)):.3f}")
    print(f"{history.tokens_per_s:,.0f} tokens/s, {history.wall_seconds:.0f} s of training; run folder: {p.out}")
