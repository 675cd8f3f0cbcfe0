"""``python -m gpt_lesson``: the whole lesson in one run.

book -> tokens -> 90/10 split -> a sample before training -> train -> a sample after -> a run folder
with ``metrics.json``, ``loss.png``, ``samples.txt`` and ``checkpoint.pt``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from .book import clean_text, load_book
from .device import describe_runtime, pick_device
from .generate import LESSON_PROMPT, generate
from .model import PRESETS, TRAIN_SHAPES, Model5, choose_preset, preset
from .split import tail_split
from .tokens import encode
from .train import checkpoint_config, train


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m gpt_lesson",
        description="Train Model 5 (GPT-2 small) on Gulliver's Travels with random batches, as in the lesson.",
    )
    p.add_argument("--preset", default="auto", choices=["auto", *PRESETS],
                   help="model size; auto = model5 on a GPU, cpu on a CPU (default: auto)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--steps", type=int, default=500, help="random batches to train on (default: 500)")
    p.add_argument("--batch-size", type=int, default=None, help="default: the preset's (16 for model5)")
    p.add_argument("--seq-len", type=int, default=None, help="default: the preset's context length")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--eval-batches", type=int, default=8, help="test batches averaged per evaluation")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--book", default="829", help="Gutenberg id, URL or local .txt path (default: 829)")
    p.add_argument("--raw", action="store_true", help="train on the raw file (header, licence, CRLF), as the course did")
    p.add_argument("--offline", action="store_true", help="never use the network (cache or shipped copy)")
    p.add_argument("--out", default=None, help="run folder (default: runs/<date-time>)")
    p.add_argument("--resume", default=None, metavar="CHECKPOINT", help="continue a run from its checkpoint.pt")
    p.add_argument("--sample-tokens", type=int, default=100, help="tokens to generate before and after")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (GPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        device = pick_device(args.device)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe_runtime(device))

    if args.resume:
        try:
            cfg = checkpoint_config(args.resume)
        except (FileNotFoundError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        name, why = "checkpoint", f"config read from {args.resume}"
    else:
        name, why = (choose_preset(device) if args.preset == "auto" else (args.preset, "chosen with --preset"))
        cfg = preset(name)
    print(f"preset: {name} ({why})")
    # A resumed run keeps the batch shape of the preset it was trained with (same batches, same losses).
    shape_name = next((n for n, c in PRESETS.items() if c == cfg), name)
    default_b, default_t = TRAIN_SHAPES.get(shape_name, (16, cfg.context_length))
    batch_size = args.batch_size or default_b
    seq_len = args.seq_len or min(default_t, cfg.context_length)

    book = load_book(args.book, offline=True if args.offline else None)
    text = book.text if args.raw else clean_text(book.text)
    tokens = encode(text)
    train_tokens, test_tokens = tail_split(tokens, 0.9)
    print(f"book: {len(text):,} characters from {book.source}; {len(tokens):,} tokens "
          f"({len(train_tokens):,} train / {len(test_tokens):,} test)")

    torch.manual_seed(args.seed)  # the model's initial weights
    model = Model5(cfg).to(device)
    print(f"model: {model.num_params():,} parameters; batches of {batch_size}x{seq_len}; {args.steps} steps")

    out = Path(args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S"))
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(device="cpu")
    before = "" if args.resume else generate(model, LESSON_PROMPT, args.sample_tokens, generator=gen.manual_seed(args.seed))
    if before:
        print("\n--- before training ---\n" + before + "\n")

    try:
        history = train(
            model, train_tokens, test_tokens, steps=args.steps, batch_size=batch_size, seq_len=seq_len, lr=args.lr,
            weight_decay=args.weight_decay, eval_every=args.eval_every, eval_batches=args.eval_batches,
            grad_clip=args.grad_clip, seed=args.seed, device=device, compile=args.compile,
            progress=not args.no_progress, checkpoint_path=out / "checkpoint.pt",
            checkpoint_every=100, resume_from=args.resume,
        )
    except ValueError as e:  # bad numbers: --steps 0, --seq-len past the context, resuming past --steps ...
        print(f"error: {e}", file=sys.stderr)
        return 2
    after = generate(model, LESSON_PROMPT, args.sample_tokens, generator=gen.manual_seed(args.seed))
    print("\n--- after training ---\n" + after + "\n")

    from .plots import plot_losses  # matplotlib only when a plot is made

    fig = plot_losses(history)
    fig.savefig(out / "loss.png", dpi=120)
    (out / "samples.txt").write_text(
        (f"--- before training ---\n{before}\n\n" if before else "") + f"--- after training ---\n{after}\n", encoding="utf-8"
    )
    metrics = {
        "preset": name, "config": cfg.to_dict(), "device": str(device), "steps": args.steps,
        "batch_size": batch_size, "seq_len": seq_len, "book_source": book.source, "n_tokens": len(tokens),
        "history": history.to_dict(),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    first = history.test_loss[0] if history.test_loss else float("nan")
    last = history.test_loss[-1] if history.test_loss else float("nan")
    print(f"test loss {first:.3f} -> {last:.3f}; train loss (last 10 steps) "
          f"{sum(history.train_loss[-10:]) / max(1, len(history.train_loss[-10:])):.3f}")
    print(f"{history.tokens_per_s:,.0f} tokens/s, {history.wall_seconds:.0f} s of training; run folder: {out}")
    return 0
