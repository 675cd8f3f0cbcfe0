"""``python -m gpt_lesson.bench``: how fast is the lesson, measured honestly, on whatever device is here.

Prints a table and writes JSON: the device's matmul ceiling; Model 5's forward and training step at
the lesson's 16×256 (tokens/s, MFU); a batch-size sweep; HuggingFace's GPT2LMHeadModel built from the
same config, like for like; the random sampler against a Python loop and a DataLoader; generation
with and without the KV cache; optionally the lesson's full 500-batch run.
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
from .timing import forward_flops, matmul_ceiling, time_it
from .train import make_adamw, train


def _step_fn(loss_fn, model, optimizer, x, y, dtype):
    scaler = torch.amp.GradScaler(x.device.type, enabled=dtype == torch.float16)

    def step() -> None:
        with torch.autocast(x.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(x, y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step


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
    matmul_n: int = 2048,
    chunk_variant: int = 1024,
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
    ceilings = {"float32": matmul_ceiling(device, torch.float32, matmul_n)}
    if device.type == "cuda":
        for dt in (torch.bfloat16, torch.float16):
            ceilings[str(dt).replace("torch.", "")] = matmul_ceiling(device, dt, 8192)
    res["matmul_tflops"] = {k: v / 1e12 for k, v in ceilings.items()}
    ceiling = ceilings[res["dtype"]]
    log("matmul ceiling: " + ", ".join(f"{k} {v / 1e12:.2f} TFLOP/s" for k, v in ceilings.items()))

    g = torch.Generator(device="cpu").manual_seed(0)
    tokens = torch.randint(0, cfg.vocab_size, (n_tokens,), generator=g)
    tokens_dev = tokens.to(device)
    gdev = torch.Generator(device=device).manual_seed(0)
    x, y = random_batch(tokens_dev, batch_size, seq_len, generator=gdev)

    def measure(name: str, model, loss_fn, b: int = batch_size) -> dict:
        xb, yb = (x, y) if b == batch_size else random_batch(tokens_dev, b, seq_len, generator=gdev)
        fwd_fn = torch.compile(model) if compile else model
        fwd = time_it(lambda: _no_grad(fwd_fn, xb, dtype), device, warmup=1 + compile, repeats=repeats)
        opt = make_adamw(model, lr=1e-4, weight_decay=0.01, fused=fused)
        step = time_it(_step_fn(loss_fn, model, opt, xb, yb, dtype), device, warmup=1 + compile, repeats=repeats)
        f = forward_flops(cfg, b, seq_len)
        out = {
            "batch_size": b,
            "forward_s": fwd.median,
            "step_s": step.median,
            "step_range_s": [step.min, step.max],
            "forward_tokens_per_s": b * seq_len / fwd.median,
            "step_tokens_per_s": b * seq_len / step.median,
            "forward_mfu": f / fwd.median / ceiling,
            "step_mfu": 3 * f / step.median / ceiling,
        }
        log(f"{name:<28} B={b:<3} forward {fwd.median:8.3f} s   step {step.median:8.3f} s   "
            f"{out['step_tokens_per_s']:9.0f} tok/s   MFU {100 * out['step_mfu']:5.1f}%")
        return out

    torch.manual_seed(0)
    model = Model5(cfg).to(device)
    loss_fn = torch.compile(model.loss) if compile else model.loss
    res["ours"] = measure(f"Model5 (loss_chunk={cfg.loss_chunk})", model, loss_fn)
    if chunk_variant and cfg.loss_chunk == 0:
        # The same weights with the chunked head + cross-entropy (never all B*T*V logits at once).
        chunked = Model5(replace(cfg, loss_chunk=chunk_variant)).to(device)
        chunked.load_state_dict(model.state_dict())
        res["ours_chunked"] = measure(f"Model5 (loss_chunk={chunk_variant})", chunked,
                                      torch.compile(chunked.loss) if compile else chunked.loss)
        del chunked
    if sweep:
        res["sweep"] = [measure("Model5 sweep", model, loss_fn, b) for b in sweep if b != batch_size]

    if hf:
        try:
            hf_model = _hf_model(replace(cfg, loss_chunk=0), device)
        except ImportError:
            log("transformers is not installed: HuggingFace comparison skipped (pip install transformers)")
        else:
            hf_loss = _hf_loss(hf_model)
            res["hf"] = measure("GPT2LMHeadModel (HF)", hf_model, torch.compile(hf_loss) if compile else hf_loss)
            res["ours_over_hf_step"] = res["hf"]["step_s"] / res["ours"]["step_s"]
            log(f"ours / HF training-step throughput: {res['ours_over_hf_step']:.2f}x")
            if "ours_chunked" in res:
                res["ours_chunked_over_hf_step"] = res["hf"]["step_s"] / res["ours_chunked"]["step_s"]
                log(f"ours (chunked loss) / HF training-step throughput: {res['ours_chunked_over_hf_step']:.2f}x")
            del hf_model

    # The sampler, against a Python loop and a DataLoader, as a share of one training step.
    t_vec = time_it(lambda: random_batch(tokens_dev, batch_size, seq_len, generator=gdev), device, warmup=3, repeats=50)
    t_loop = time_it(lambda: loop_batch(tokens, batch_size, seq_len, generator=g), "cpu", warmup=3, repeats=50)
    loader = epoch_loader(tokens, batch_size, seq_len, generator=torch.Generator().manual_seed(0))
    it = iter(loader)

    def next_loader_batch():
        nonlocal it
        try:
            return next(it)
        except StopIteration:  # one epoch may hold fewer batches than the repeats: start the next
            it = iter(loader)
            return next(it)

    t_dl = time_it(next_loader_batch, "cpu", warmup=3, repeats=50)
    res["sampler"] = {
        "random_batch_s": t_vec.median, "loop_s": t_loop.median, "dataloader_s": t_dl.median,
        "speedup_vs_loop": t_loop.median / t_vec.median,
        "share_of_step": t_vec.median / res["ours"]["step_s"],
    }
    log(f"sampler: random_batch {1e6 * t_vec.median:.0f} us, Python loop {1e6 * t_loop.median:.0f} us "
        f"({res['sampler']['speedup_vs_loop']:.2f}x as fast), DataLoader {1e6 * t_dl.median:.0f} us; "
        f"{100 * res['sampler']['share_of_step']:.3f}% of a training step")

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
    p.add_argument("--compile", action="store_true", help="torch.compile the model and the loss")
    p.add_argument("--fused-adamw", choices=["auto", "on", "off"], default="auto")
    p.add_argument("--no-hf", action="store_true", help="skip the HuggingFace comparison")
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
              fused_adamw=fused, gen_tokens=args.gen_tokens, lesson_steps=args.lesson_steps)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
