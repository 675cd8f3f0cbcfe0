#!/usr/bin/env python3
"""What watching a run costs: the parts of one `gpt_lesson.Watch` record (the extraction probe on training and on
test text; a greedy and a sampled continuation and their shape) against one training step of the same preset,
taking turns.

    python scripts/measure_watch.py                 # the `cpu` preset, the defaults (n=32, p=32, m=64)
    python scripts/measure_watch.py --preset tiny --repeats 2
    python scripts/measure_watch.py --preset model5 --device cuda   # what scripts/gpu_check.sh runs on a GPU

Run it alone on the machine (the figures of a loaded machine are void). It prints the median of each, and the share
a run of the preset's 500 steps spends in the watch at its evaluations (steps 0, 100, ..., 500: six records).
"""

from __future__ import annotations

import argparse

import torch

import gpt_lesson as gl


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (cuda when there is a GPU)")
    args = p.parse_args(argv)
    device = gl.pick_device(args.device)
    tokens = gl.encode(gl.clean_text(gl.shipped_book().text))
    train, test = gl.tail_split(tokens, 0.9)
    cfg, tc = gl.preset(args.preset), gl.train_config(args.preset)
    torch.manual_seed(0)
    model = gl.Model5(cfg)
    plan = gl.RunPlan.build(cfg, tc, train, test)
    trainer = gl.Trainer(plan, model, train, test, device=device, progress=False)  # moves the model to device
    watch = gl.Watch.of(train, test, context_length=cfg.context_length, seed=tc.seed)
    x, y = gl.gather_windows(trainer.train_tokens, plan.starts[0], plan.seq_len)
    probe = dict(n=watch.n, prompt_len=watch.prompt_len, continuation=watch.continuation, seed=watch.seed)
    timings = gl.time_interleaved({
        "probe (training + test text)": lambda: [gl.extraction(model, t, **probe) for t in (train, test)],
        "two samples and their shape": lambda: gl.sample_shapes(model, watch.prompt_ids, watch.sample_tokens,
                                                                seed=watch.seed, known_words=watch.known_words),
        "whole record": lambda: watch.record(model, 0),
        "training step": lambda: trainer.step_fn(x, y)}, device, warmup=1, repeats=args.repeats)
    step = timings["training step"].median
    evaluations = len(range(0, 500, tc.eval_every)) + 1
    print(f"torch {torch.__version__} on {device}, {torch.get_num_threads()} CPU threads, preset {args.preset} "
          f"({model.num_params():,} parameters, batch {tc.batch_size}x{plan.seq_len}); probe n={watch.n}, "
          f"prompt {watch.prompt_len}, continuation {watch.continuation}; samples of {watch.sample_tokens} tokens")
    for name, t in timings.items():
        print(f"{name}: median {t.median:.3f} s over {len(t.times)} repeats ({', '.join(f'{v:.3f}' for v in t.times)})")
    run = 500 * step
    for name in ("probe (training + test text)", "two samples and their shape", "whole record"):
        cost = evaluations * timings[name].median
        print(f"a 500-step run, {evaluations} evaluations: {name} {cost:.1f} s on {run:.0f} s of training steps: "
              f"+{cost / run:.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
