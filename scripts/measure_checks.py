#!/usr/bin/env python3
"""What the checks cost: the token-id check in `Model5.hidden`, and the checkpoint's SHA-256 of the weights.

The check (`gpt_lesson.model.check_ids`) is a min and a max over the B×T ids before the embedding. This script times
a forward pass of a preset's model (no gradients) with the check and with it switched off, in turns (A B, A B, ...,
`gpt_lesson.time_interleaved`), and prints both medians and the difference in percent. Run it alone on an idle
machine; the figure is noise otherwise.

    python scripts/measure_checks.py                    # Model 5 (124M), 16×256, median of 3 each
    python scripts/measure_checks.py --preset tiny      # a quick run that proves the script works
    python scripts/measure_checks.py --checkpoint       # a Model 5 checkpoint: save, read, and the checksum alone

The checkpoint part saves a checkpoint of the preset's model with its AdamW state (after one step, as a real one),
then times the SHA-256 of the weights alone, `save_checkpoint` (which computes it), `torch.load` alone and
`read_checkpoint` (which loads and verifies it), each the median of ``--repeats``.
"""

from __future__ import annotations

import argparse

import torch

import gpt_lesson as gl
from gpt_lesson import model as model_mod


def measure(preset: str, batch_size: int, seq_len: int | None, repeats: int, warmup: int, seed: int = 0) -> dict:
    """Median seconds of one forward pass with and without the id check, and of the check alone."""
    config = gl.preset(preset)
    seq_len = min(256, config.context_length) if seq_len is None else seq_len
    torch.manual_seed(seed)
    model = gl.Model5(config).eval()
    x = torch.randint(0, config.vocab_size, (batch_size, seq_len), generator=torch.Generator().manual_seed(seed))
    checked = model_mod.check_ids

    def with_check() -> None:
        with torch.no_grad():
            model(x)

    def without_check() -> None:
        model_mod.check_ids = lambda *args, **kwargs: None
        try:
            with torch.no_grad():
                model(x)
        finally:
            model_mod.check_ids = checked

    times = gl.time_interleaved({"with": with_check, "without": without_check}, "cpu", warmup=warmup,
                                repeats=repeats)
    alone = gl.time_it(lambda: checked(x, config.vocab_size), "cpu", warmup=warmup, repeats=max(repeats, 5))
    return {"preset": preset, "batch_size": batch_size, "seq_len": seq_len, "threads": torch.get_num_threads(),
            "with": times["with"], "without": times["without"], "check_alone": alone}


def measure_checkpoint(preset: str, repeats: int, seed: int = 0) -> dict:
    """Median seconds of the checksum alone, of a whole save and a whole read (with the check), and of a bare load."""
    import tempfile
    from pathlib import Path

    from gpt_lesson import checkpoints

    torch.manual_seed(seed)
    model = gl.Model5(gl.preset(preset))
    optimizer = gl.make_adamw(model, lr=1e-3, weight_decay=0.01)
    x = torch.randint(0, model.config.vocab_size, (1, 8))
    gl.TrainStep(model, optimizer)(x, x)  # the optimizer's state exists, as in a real checkpoint
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt"
        out = {
            "sha256": gl.time_it(lambda: checkpoints.weights_sha256(model.state_dict()), "cpu", repeats=repeats),
            "save": gl.time_it(lambda: gl.save_checkpoint(path, model, optimizer, 1), "cpu", repeats=repeats),
            "load": gl.time_it(lambda: torch.load(path, weights_only=True), "cpu", repeats=repeats),
            "read": gl.time_it(lambda: gl.read_checkpoint(path), "cpu", repeats=repeats),
        }
        out["bytes"] = path.stat().st_size
    out["weights_bytes"] = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="model5", choices=sorted(gl.PRESETS), help="model size (default: model5)")
    parser.add_argument("--batch-size", type=int, default=16, help="rows per forward pass (default: 16)")
    parser.add_argument("--seq-len", type=int, default=None, help="tokens per row (default: min(256, context))")
    parser.add_argument("--repeats", type=int, default=3, help="timed forward passes of each kind (default: 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed passes of each kind first (default: 1)")
    parser.add_argument("--checkpoint", action="store_true", help="measure the checkpoint checksum instead")
    args = parser.parse_args(argv)
    if args.checkpoint:
        c = measure_checkpoint(args.preset, args.repeats)
        print(f"{args.preset} checkpoint: {c['bytes'] / 1e6:,.0f} MB on disk (weights "
              f"{c['weights_bytes'] / 1e6:,.0f} MB, the tied head counted in both of its names; "
              f"{torch.get_num_threads()} threads)")
        for key, what in (("sha256", "SHA-256 of the weights alone"), ("save", "save_checkpoint (with it)"),
                          ("load", "torch.load alone"), ("read", "read_checkpoint (load + verify)")):
            print(f"  {what:32s} {c[key]}")
        print(f"  the checksum is {100 * c['sha256'].median / c['save'].median:.0f}% of a save and "
              f"{100 * (c['read'].median - c['load'].median) / c['load'].median:+.0f}% on a read")
        return
    r = measure(args.preset, args.batch_size, args.seq_len, args.repeats, args.warmup)
    w, wo = r["with"].median, r["without"].median
    print(f"{r['preset']} forward, {r['batch_size']}x{r['seq_len']} on the CPU ({r['threads']} threads):")
    print(f"  with the id check:    {r['with']}")
    print(f"  without the id check: {r['without']}")
    print(f"  difference: {w - wo:+.4f} s ({100 * (w - wo) / wo:+.2f}% of the forward without the check)")
    print(f"  the check alone (min and max over {r['batch_size'] * r['seq_len']:,} ids): "
          f"{r['check_alone'].median * 1e6:.1f} µs")


if __name__ == "__main__":
    main()
