"""``python -m gpt_lesson``: the whole lesson in one run.

book -> tokens -> 90/10 split -> a sample before training -> train (watching the shape of a sample and the model's
recitation at every evaluation) -> a sample after -> a run folder with ``metrics.json``, ``loss.png``,
``learning.png``, ``samples.txt`` and ``checkpoint.pt``.

Every argument is checked before any work starts (the training settings against the tokenized book, by the run's
`RunPlan`): a bad one ends the run with one line and exit code 2, and nothing else printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
from .distributed import DistContext, process_group
from .generation import LESSON_PROMPT, generate_tokens
from .memorization import copied
from .model import GPTConfig, Model5
from .presets import PRESETS, choose_preset, preset, train_config
from .split import tail_split
from .tokens import decode, encode, for_display
from .config import TrainConfig, add_flags, flags_given, setting
from .learning import Watch, learning_summary
from .plan import RunPlan
from .training import History, Trainer, TrainingInterrupted

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
    watch: bool = setting(True, "at every evaluation, also measure the shape of a sample against the book's and how "
                                "much training (and test) text the model recites (gpt_lesson.Watch)")
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
class Invocation:
    """What the command line asks for, decided (and checked) before any work; the run's `RunPlan` is built from it
    once the book is tokenized."""

    device: torch.device
    name: str
    why: str
    model: GPTConfig
    train: TrainConfig
    out: Path
    dist: DistContext  # this process's place in a torchrun job (one process without torchrun)
    checkpoint: dict | None  # the checkpoint to resume from, read and verified once (None: a new run)


def decide(args: argparse.Namespace) -> Invocation:
    """Check every argument and decide the configs; raise ValueError/RuntimeError/FileNotFoundError if one is bad."""
    dist = DistContext.from_env(args.device)
    ckpt = read_checkpoint(args.resume) if args.resume else None  # the one read of the checkpoint file
    if ckpt is not None:
        model_cfg, name, why = GPTConfig.from_dict(ckpt["config"]), "checkpoint", f"config read from {args.resume}"
        saved = ckpt["train_config"]
        base = TrainConfig.from_dict(saved) if saved else TrainConfig(seq_len=model_cfg.context_length)
    else:
        name, why = choose_preset(dist.device) if args.preset == "auto" else (args.preset, "chosen with --preset")
        model_cfg, base = preset(name), train_config(name)
    tc = base.with_overrides(**flags_given(args, TrainConfig))
    if args.sample_tokens < 0:
        raise ValueError(f"--sample-tokens must be >= 0, got {args.sample_tokens}")
    out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    _check_out(out, resuming=bool(args.resume), overwrite=args.overwrite)
    return Invocation(dist.device, name, why, model_cfg, tc, out, dist, ckpt)


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
    try:  # every check before any work (and before a torchrun job opens its process group)
        inv = decide(args)
        text = _load_text(args, inv)
        plan = RunPlan.build(inv.model, inv.train, text.train, text.test, world_size=inv.dist.world_size,
                             rank=inv.dist.rank, checkpoint=inv.checkpoint)
    except (BookError, ValueError, RuntimeError, FileNotFoundError) as e:
        if not _other_rank():  # every rank finds the same bad input: rank 0 says it
            print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        with process_group(inv.dist):  # one process: no group; torchrun: a clean end waits for every rank
            return _run(args, inv, text, plan)
    except TrainingInterrupted as e:  # raised through the group: an interrupted rank waits for no other
        hint = f"; continue with: python -m gpt_lesson --resume {e.checkpoint}" if e.step > 0 else ""
        if inv.dist.is_main:
            print(f"\ninterrupted at step {e.step}{hint}", file=sys.stderr)
        return 130
    except Exception as e:
        if not inv.dist.distributed:
            raise  # one process: the traceback itself
        # this rank failed, or lost a rank that did: one line, the group closed, a non-zero exit
        print(f"error on rank {inv.dist.rank} of {inv.dist.world_size}: {_one_line(e)}", file=sys.stderr)
        return 1


@dataclass(frozen=True)
class _Text:
    """The book as the run trains on it."""

    source: str
    n_chars: int
    tokens: torch.Tensor
    train: torch.Tensor
    test: torch.Tensor
    notes: str  # what loading the book said (a cached or shipped copy, and why)


def _load_text(args: argparse.Namespace, inv: Invocation) -> _Text:
    """Load, clean, tokenize and split the book (in every process of a torchrun job: from the cache, or the copy
    shipped with the package, once the first download is cached)."""
    notes = io.StringIO()
    with contextlib.redirect_stdout(notes):  # said after the plan is checked: a bad argument prints nothing else
        book = load_book(args.book, offline=True if args.offline else None, verbose=inv.dist.is_main)
    text = book.text if args.raw else clean_text(book.text)
    tokens = encode(text)
    train_tokens, test_tokens = tail_split(tokens, 0.9)
    return _Text(book.source, len(text), tokens, train_tokens, test_tokens, notes.getvalue())


def _run(args: argparse.Namespace, inv: Invocation, text: _Text, plan: RunPlan) -> int:
    """The run itself, on every rank; rank 0 alone prints, samples and writes the run folder."""
    main_rank = inv.dist.is_main
    say = print if main_rank else _silent
    say(describe_runtime(inv.device))
    if inv.dist.distributed:
        say(f"torchrun: {inv.dist.world_size} processes ({inv.dist.backend}), each on its own rows of every batch")
    say(f"preset: {inv.name} ({inv.why})")
    say(text.notes, end="")
    say(f"book: {text.n_chars:,} characters from {text.source}; {len(text.tokens):,} tokens "
        f"({len(text.train):,} train / {len(text.test):,} test)")
    torch.manual_seed(plan.train.seed)  # the model's initial weights
    model = Model5(plan.model).to(inv.device)
    say(f"model: {model.num_params():,} parameters; {plan.describe()}")
    if main_rank:
        inv.out.mkdir(parents=True, exist_ok=True)
    before = "" if plan.checkpoint is not None or not main_rank else _sample(model, args, plan.train.seed)[0]
    if before:
        print("\n--- before training ---\n" + before + "\n")
    watch = None  # rank 0 alone records (and saves) the history
    if args.watch and main_rank:
        watch = Watch.of(text.train, text.test, context_length=plan.model.context_length, seed=plan.train.seed)
    trainer = Trainer(plan, model, text.train, text.test, device=inv.device, dist=inv.dist, progress=args.progress,
                      checkpoint_path=inv.out / "checkpoint.pt", on_eval=watch)
    history = trainer.run()  # Ctrl-C raises TrainingInterrupted, handled in main()
    if not main_rank:
        return 0
    after, new_ids = _sample(model, args, plan.train.seed)
    print("\n--- after training ---\n" + after + "\n")
    copying = _copying(new_ids, text.train, text.test)
    if copying:
        print(copying["summary"])
    _write_run(inv, plan, history, before, after, {"book_source": text.source, "n_tokens": len(text.tokens),
                                                   "memorization": copying})
    return 0


def _silent(*args, **kwargs) -> None:
    pass


def _other_rank() -> bool:
    """True in a torchrun process other than rank 0 (read before the context exists: it may be what failed)."""
    rank = os.environ.get("RANK", "0")
    return rank.isdigit() and int(rank) > 0


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


def _write_run(inv: Invocation, plan: RunPlan, history: History, before: str, after: str, data: dict) -> None:
    """loss.png, samples.txt and metrics.json into the run folder, and the closing lines."""
    import matplotlib.pyplot as plt  # matplotlib only when a plot is made

    from .plots import plot_learning, plot_losses

    figures = {"loss.png": plot_losses(history)}
    if history.learning:
        figures["learning.png"] = plot_learning(history)
    for name, fig in figures.items():
        fig.savefig(inv.out / name, dpi=120)
        plt.close(fig)
    copying = data.get("memorization")
    (inv.out / "samples.txt").write_text(
        (f"--- before training ---\n{before}\n\n" if before else "") + f"--- after training ---\n{after}\n"
        + (f"\n{copying['summary']}\nlongest copied span: {copying['train']['text']!r}\n" if copying else ""),
        encoding="utf-8",
    )
    metrics = {
        "preset": inv.name, "config": plan.model.to_dict(), "train_config": plan.train.to_dict(),
        "device": str(inv.device), "world_size": plan.world_size, "steps": plan.steps, "batch_size": plan.batch_size,
        "seq_len": plan.seq_len, "plan": plan.to_dict(), **data,
        "history": history.to_dict(),
    }
    (inv.out / "metrics.json").write_text(json.dumps(metrics, indent=2, allow_nan=False), encoding="utf-8")
    tail = history.train_loss[-10:]
    if history.test_loss:
        print(f"test loss {history.test_loss[0]:.3f} -> {history.test_loss[-1]:.3f}; ", end="")
    print(f"train loss (last {len(tail)} steps) {sum(tail) / max(1, len(tail)):.3f}")
    print(f"{history.tokens_per_s:,.0f} tokens/s, {history.wall_seconds:.0f} s of training; run folder: {inv.out}")
    if history.learning:
        print(learning_summary(history.learning))
