"""``python -m gpt_lesson.bench``: how fast is the lesson, measured honestly, on whatever device is here.

Prints a table and writes JSON: the device's matmul ceiling (before and after the models); Model 5's
forward pass and training step at the lesson's 16×256 (tokens/s, MFU) next to variants of ours (the
other loss path, a padded vocabulary, torch.compile) and HuggingFace's GPT2LMHeadModel built from the
same config, like for like, all taking turns so that the machine's drift falls on each alike; a
batch-size sweep; optionally a profile of one step; the random sampler against a Python loop and a
DataLoader; generation with and without the KV cache; optionally the lesson's full 500-batch run.
Every figure is a median over repeats after warm-up, synchronized on CUDA.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

from .batches import epoch_loader, loop_batch, random_batch
from .device import autocast_dtype, pick_device
from .generate import generate_tokens
from .model import PRESETS, GPTConfig, Model5, preset
from .timing import forward_flops, matmul_ceiling, time_interleaved, time_it, train_step_fn
from .train import make_adamw, train


def _hf_model(cfg: GPTConfig, device: torch.device):
    """transformers' GPT2LMHeadModel of the same shape: SDPA attention, no dropout, exact GELU."""
    from transformers import GPT2Config, GPT2LMHeadModel

    hf_cfg = GPT2Config(
        vocab_size=cfg.vocab_size, n_positions=cfg.context_length, n_embd=cfg.n_embd, n_layer=cfg.n_layer,
        n_head=cfg.n_head, activation_function="gelu", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=cfg.ln_eps, tie_word_embeddings=True, attn_implementation="sdpa",
        bos_token_id=cfg.vocab_size - 1, eos_token_id=cfg.vocab_size - 1,
    )
    return GPT2LMHeadModel(hf_cfg).to(device)


def _hf_loss(model):
    def loss(x, y):
        logits = model(input_ids=x).logits  # (B, T, V); HF's own labels= would shift again
        return F.cross_entropy(logits.view(-1, logits.size(-1)), y.reshape(-1))

    return loss


def run(
    device: torch.device,
    cfg: GPTConfig,
    batch_size: int,
    seq_len: int,
    *,
    repeats: int = 3,
    sweep: list[int] | None = None,
    hf: bool = True,
    compile: bool = False,
    fused_adamw: bool | None = None,
    gen_tokens: int = 200,
    lesson_steps: int = 0,
    matmul_n: int = 4096,
    profile: bool = False,
    chunk_variant: int = 1024,
    vocab_variant: int = 0,
    n_tokens: int = 200_000,
    log=print,
) -> dict:
    """Run every measurement; return a JSON-ready dict. ``log`` gets a line per finished measurement."""
    dtype = autocast_dtype(device)
    fused = True if fused_adamw is None else fused_adamw
    res: dict = {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": str(dtype or torch.float32).replace("torch.", ""),
        "config": cfg.to_dict(),
        "batch_size": batch_size,
        "seq_len": seq_len,
        "compile": compile,
        "fused_adamw": fused,
    }

    def measure_ceilings() -> dict[str, float]:
        out = {"float32": matmul_ceiling(device, torch.float32, matmul_n)}
        if device.type == "cuda":
            for dt in (torch.bfloat16, torch.float16):
                out[str(dt).replace("torch.", "")] = matmul_ceiling(device, dt, max(matmul_n, 8192))
        return out

    # The ceiling is measured before and after the models and the higher of the two is used, so that a
    # slow moment of the machine during one measurement cannot inflate every MFU figure.
    before = measure_ceilings()
    log("matmul ceiling (before): " + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in before.items()))

    g = torch.Generator(device="cpu").manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (n_tokens,), generator=g)
    tokens_dev = tokens.to(device)
    gdev = torch.Generator(device=device).manual_seed(0)
    x, y = random_batch(tokens_dev, batch_size, seq_len, generator=gdev)

    def entry(fwd, step, b: int) -> dict:
        return {"batch_size": b, "forward_s": fwd.median, "step_s": step.median, "step_range_s": [step.min, step.max],
                "forward_tokens_per_s": b * seq_len / fwd.median, "step_tokens_per_s": b * seq_len / step.median}

    # The models compared, each with its own optimizer, all alive at once so that they can take turns:
    # ours as configured; variants of ours (chunked loss, padded vocabulary, compiled); HuggingFace's.
    torch.manual_seed(0)
    model = Model5(cfg).to(device)
    contenders: dict[str, tuple[str, torch.nn.Module, object]] = {
        "ours": (f"Model5 (loss_chunk={cfg.loss_chunk})", model, model.loss)}
    if chunk_variant:
        # The same weights with the other loss path: chunked head + cross-entropy (never all B*T*V logits at
        # once) if ours computes the full logits, the full logits if ours is chunked.
        other = 0 if cfg.loss_chunk else chunk_variant
        other_loss = Model5(replace(cfg, loss_chunk=other)).to(device)
        other_loss.load_state_dict(model.state_dict())
        contenders["ours_chunked" if other else "ours_full_logits"] = (f"Model5 (loss_chunk={other})", other_loss, other_loss.loss)
    if vocab_variant and cfg.padded_vocab % vocab_variant:
        padded = Model5(replace(cfg, vocab_multiple=vocab_variant)).to(device)
        contenders["ours_padded"] = (f"Model5 (vocab {padded.config.padded_vocab})", padded, padded.loss)
    if compile:
        # The same module compiled (it shares the weights); compilation happens in the warm-up calls.
        contenders["ours_compiled"] = ("Model5 compiled", torch.compile(model), torch.compile(model.loss))
    if hf:
        try:
            hf_model = _hf_model(replace(cfg, loss_chunk=0, vocab_multiple=1), device)
        except ImportError:
            log("transformers is not installed: HuggingFace comparison skipped (pip install transformers)")
        else:
            contenders["hf"] = ("GPT2LMHeadModel (HF)", hf_model, _hf_loss(hf_model))
    fwd_fns, step_fns = {}, {}
    for key, (_, m, loss_fn) in contenders.items():
        fwd_fns[key] = lambda m=m: _no_grad(m, x, dtype)
        opt = make_adamw(model if key == "ours_compiled" else m, lr=1e-4, weight_decay=0.01, fused=fused)
        step_fns[key] = train_step_fn(loss_fn, opt, x, y, dtype)
    if compile:  # compilation (and recompilation for the training step) before any clock starts
        for _ in range(2):
            fwd_fns["ours_compiled"]()
            step_fns["ours_compiled"]()
    # In turns (ours, HF, ours, HF, ...): drift of this machine's speed falls on every contender alike.
    fwd_t = time_interleaved(fwd_fns, device, warmup=1, repeats=repeats)
    step_t = time_interleaved(step_fns, device, warmup=1, repeats=repeats)
    for key, (label, _, _) in contenders.items():
        res[key] = entry(fwd_t[key], step_t[key], batch_size)
        log(f"{label:<28} B={batch_size:<3} forward {fwd_t[key].median:8.3f} s   step {step_t[key].median:8.3f} s "
            f"(range {step_t[key].min:.2f}-{step_t[key].max:.2f})   {res[key]['step_tokens_per_s']:7.0f} tok/s")
    variants = [k for k in contenders if k != "hf"]
    if "hf" in res:
        for key in variants:
            res[f"{key}_over_hf_step"] = res["hf"]["step_s"] / res[key]["step_s"]
            # the ratio within each round of turns, which drift between rounds cannot bias
            per_round = [h / o for h, o in zip(step_t["hf"].times, step_t[key].times)]
            res[f"{key}_over_hf_step_per_round"] = per_round
            log(f"{contenders[key][0]} / HF training-step throughput: {res[f'{key}_over_hf_step']:.2f}x "
                f"(per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    if profile:
        res["profile"] = _profile(step_fns["ours"], device, log=log)
    del fwd_fns, step_fns, contenders
    hf_model = other_loss = padded = None  # free the other contenders before the sweep  # noqa: F841
    if sweep:
        res["sweep"] = []
        for b in sweep:
            if b == batch_size:
                continue
            xb, yb = random_batch(tokens_dev, b, seq_len, generator=gdev)
            fwd = time_it(lambda: _no_grad(model, xb, dtype), device, warmup=1, repeats=repeats)
            opt = make_adamw(model, lr=1e-4, weight_decay=0.01, fused=fused)
            step = time_it(train_step_fn(model.loss, opt, xb, yb, dtype), device, warmup=1, repeats=repeats)
            res["sweep"].append(entry(fwd, step, b))
            log(f"{'Model5 sweep':<28} B={b:<3} forward {fwd.median:8.3f} s   step {step.median:8.3f} s "
                f"(range {step.min:.2f}-{step.max:.2f})   {b * seq_len / step.median:7.0f} tok/s")

    after = measure_ceilings()
    log("matmul ceiling (after):  " + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in after.items()))
    ceilings = {k: max(before[k], after[k]) for k in before}
    res["matmul_tflops"] = {k: v / 1e12 for k, v in ceilings.items()}
    res["matmul_tflops_before_after"] = {k: [before[k] / 1e12, after[k] / 1e12] for k in before}
    ceiling = ceilings[res["dtype"]]
    for e in [res[k] for k in [*variants, "hf"] if k in res] + res.get("sweep", []):  # "hf" may be skipped
        f = forward_flops(cfg, e["batch_size"], seq_len)  # padding rows are not counted: they do no useful work
        e["forward_mfu"] = f / e["forward_s"] / ceiling
        e["step_mfu"] = 3 * f / e["step_s"] / ceiling
    log(f"MFU of a training step against the higher ceiling ({ceiling / 1e12:.3f} TFLOP/s, {res['dtype']}): "
        + ", ".join(f"{k} {100 * res[k]['step_mfu']:.1f}%" for k in [*variants, "hf"] if k in res))

    # The sampler, against a Python loop and a DataLoader: time per batch (mean of many calls) and its
    # share of one training step. At small B every version is dominated by per-operation overhead.
    calls = 100

    def per_call(fn, dev) -> float:
        return time_it(lambda: [fn() for _ in range(calls)], dev, warmup=1, repeats=5).median / calls

    sizes = sorted({batch_size, 64, 256})
    rows = []
    for b in sizes:
        t_vec = per_call(lambda: random_batch(tokens_dev, b, seq_len, generator=gdev), device)
        t_loop = per_call(lambda: loop_batch(tokens_dev, b, seq_len, generator=gdev), device)
        rows.append({"batch_size": b, "random_batch_s": t_vec, "loop_s": t_loop, "speedup_vs_loop": t_loop / t_vec})
        log(f"sampler B={b:<4} random_batch {1e6 * t_vec:8.1f} us   Python loop {1e6 * t_loop:8.1f} us   "
            f"{t_loop / t_vec:5.1f}x as fast")
    loader = epoch_loader(tokens, batch_size, seq_len, generator=torch.Generator().manual_seed(0))
    it = iter(loader)

    def next_loader_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:  # one epoch may hold fewer batches than the calls: start the next
            it = iter(loader)
            return next(it)

    t_dl = per_call(next_loader_batch, "cpu")
    lesson_row = rows[sizes.index(batch_size)]
    res["sampler"] = {**lesson_row, "dataloader_s": t_dl, "share_of_step": lesson_row["random_batch_s"] / res["ours"]["step_s"],
                      "sizes": rows}
    log(f"sampler at B={batch_size}: DataLoader {1e6 * t_dl:.1f} us per batch; random_batch is "
        f"{100 * res['sampler']['share_of_step']:.4f}% of a training step")

    # Generation: tokens/s with and without the KV cache (greedy, so both do the same work).
    prompt = tokens_dev[:8][None]
    n_new = min(gen_tokens, cfg.context_length - prompt.size(1))
    gen = {}
    for use_cache in (True, False):
        t = time_it(lambda: generate_tokens(model, prompt, n_new, greedy=True, use_cache=use_cache), device,
                    warmup=1, repeats=max(1, repeats - 1))
        gen["cache" if use_cache else "no_cache"] = n_new / t.median
    gen["new_tokens"] = n_new
    gen["speedup"] = gen["cache"] / gen["no_cache"]
    res["generation_tokens_per_s"] = gen
    log(f"generation of {n_new} tokens: {gen['cache']:.1f} tok/s with KV cache, {gen['no_cache']:.1f} without "
        f"({gen['speedup']:.1f}x)")

    if lesson_steps:
        torch.manual_seed(0)
        m = Model5(cfg).to(device)
        h = train(m, tokens, tokens[:20_000], steps=lesson_steps, batch_size=batch_size, seq_len=seq_len,
                  eval_every=100, eval_batches=8, device=device, compile=compile, progress=False)
        res["lesson_run"] = {"steps": lesson_steps, "wall_s": h.wall_seconds, "tokens_per_s": h.tokens_per_s}
        log(f"lesson run: {lesson_steps} batches of {batch_size}x{seq_len} in {h.wall_seconds:.1f} s "
            f"(evaluations included), {h.tokens_per_s:,.0f} tok/s")
    return res


def _profile(step, device: torch.device, *, top: int = 12, log=print) -> dict:
    """Profile one call of ``step``: the ``top`` operators by their own time (CUDA time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step()
        if cuda:
            torch.cuda.synchronize(device)

    def own_us(e) -> float:  # microseconds; the attribute's name changed between PyTorch versions
        if cuda:
            return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0.0)
        return e.self_cpu_time_total

    events = [e for e in prof.key_averages() if own_us(e) > 0]
    total = sum(own_us(e) for e in events)
    rows = [{"op": e.key, "seconds": own_us(e) / 1e6, "share": own_us(e) / total, "calls": e.count}
            for e in sorted(events, key=own_us, reverse=True)[:top]]
    mm = sum(own_us(e) for e in events if "mm" in e.key.lower() or "gemm" in e.key.lower())
    log(f"profile of one training step of ours ({total / 1e6:.2f} s of {'GPU' if cuda else 'CPU'} time, own time per "
        f"operator; matrix products (names with 'mm'/'gemm') {100 * mm / total:.1f}% of it):")
    for r in rows:
        log(f"  {r['op'][:60]:<60} {r['seconds']:8.3f} s  {100 * r['share']:5.1f}%  ({r['calls']} calls)")
    return {"total_s": total / 1e6, "matmul_share": mm / total, "top": rows}


def _no_grad(model, x, dtype):
    with torch.no_grad(), torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
        return model(x)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gpt_lesson.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--preset", default="model5", choices=list(PRESETS))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--sweep", default="", help="comma-separated batch sizes, e.g. 4,8,32")
    p.add_argument("--loss-chunk", type=int, default=None, help="override the preset's loss_chunk (0 = full logits)")
    p.add_argument("--vocab-multiple", type=int, default=None, help="pad the vocabulary to a multiple of this")
    p.add_argument("--compile", action="store_true", help="also time ours under torch.compile (and compile the lesson run)")
    p.add_argument("--vocab-variant", type=int, default=64, help="also time ours with the vocabulary padded to a multiple of this (0 = off)")
    p.add_argument("--chunk-variant", type=int, default=1024,
                   help="also time ours with the other loss path: full logits if the preset chunks, else chunks of this many rows (0 = off)")
    p.add_argument("--fused-adamw", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--no-hf", action="store_true", help="skip the HuggingFace comparison")
    p.add_argument("--profile", action="store_true", help="also profile one training step: where the time goes")
    p.add_argument("--gen-tokens", type=int, default=200)
    p.add_argument("--lesson-steps", type=int, default=0, help="also time a full run of this many batches (500 = the lesson)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: PyTorch's choice)")
    p.add_argument("--json", default=None, help="write the results here (default: print only)")
    args = p.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    overrides = {"context_length": max(args.seq_len, PRESETS[args.preset].context_length)}
    if args.loss_chunk is not None:
        overrides["loss_chunk"] = args.loss_chunk
    if args.vocab_multiple is not None:
        overrides["vocab_multiple"] = args.vocab_multiple
    cfg = preset(args.preset, **overrides)
    fused = {"auto": None, "on": True, "off": False}[args.fused_adamw]
    print(f"# gpt_lesson.bench  {time.strftime('%Y-%m-%d')}  torch {torch.__version__}  device {device}  "
          f"threads {torch.get_num_threads()}  preset {args.preset} (loss_chunk={cfg.loss_chunk}, "
          f"vocab_multiple={cfg.vocab_multiple})  B={args.batch_size} T={args.seq_len}  compile={args.compile}")
    res = run(device, cfg, args.batch_size, args.seq_len, repeats=args.repeats,
              sweep=[int(b) for b in args.sweep.split(",") if b], hf=not args.no_hf, compile=args.compile,
              fused_adamw=fused, gen_tokens=args.gen_tokens, lesson_steps=args.lesson_steps,
              profile=args.profile, vocab_variant=args.vocab_variant, chunk_variant=args.chunk_variant)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
