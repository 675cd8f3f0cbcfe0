"""``python -m gpt_lesson.bench``: how fast is the lesson, measured honestly, on whatever device is here.

Prints a table and writes JSON: the device's matmul ceiling (before and after the models); Model 5's
forward pass and training step at the lesson's 16×256 (tokens/s, MFU) next to variants of ours (the
other loss path, a padded vocabulary, torch.compile) and HuggingFace's GPT2LMHeadModel built from the
same config, like for like, all taking turns so that the machine's drift falls on each alike; a
batch-size sweep; optionally a profile of one step; the random sampler against a Python loop and a
DataLoader; generation with and without the KV cache; optionally the lesson's full 500-batch run.
Every figure is a median over repeats after warm-up, synchronized on CUDA.

`run` is the table of contents; each section below is one function of the shared `Bench` context
(device, configs, the batch, the log and the results), configured by one frozen `BenchOptions`. Its fields, with
`CommandOptions`'s and those of `TrainConfig` that the bench uses (`TRAIN_FLAGS`: ``BenchOptions.train`` holds a
whole `TrainConfig`), are the command line's flags (`gpt_lesson.config.add_flags`): an option is declared once.
Every training step is a `gpt_lesson.step.TrainStep`, every autocast `gpt_lesson.device.autocast`.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import torch

from .batches import epoch_loader, loop_batch, random_batch
from .config import TrainConfig, add_flags, flags_given, setting
from .device import autocast, autocast_dtype, pick_device
from .evaluation import logits_loss
from .generation import generate_tokens
from .model import GPTConfig, Model5, forward_flops
from .presets import PRESETS, preset, train_config
from .step import TrainStep, make_adamw
from .timing import Timing, matmul_ceiling, time_interleaved, time_it
from .training import train


# The fields of `TrainConfig` the bench reads, and so its flags for them: the batch every contender trains on,
# ours' loss path and whether ours is also timed compiled (the lesson run trains with the whole TrainConfig).
TRAIN_FLAGS = ("batch_size", "seq_len", "loss_chunk", "compile")


def lesson_train(name: str = "model5") -> TrainConfig:
    """What the bench trains with by default: preset ``name``'s `TrainConfig` (its loss_chunk, say) at the lesson's
    batch shape, Model 5's 16×256, whatever batch the preset itself trains with."""
    lesson = train_config("model5")
    return train_config(name, batch_size=lesson.batch_size, seq_len=lesson.seq_len)


@dataclass(frozen=True)
class BenchOptions:
    """What to measure and how: everything `run` takes besides the device and the model config, and the source
    of the command line's flags for it (`add_flags`). The training settings are ``train``, a `TrainConfig` (of
    which `TRAIN_FLAGS` are flags): its batch_size × seq_len (seq_len none: the model's context) is the batch every
    contender trains on, its loss_chunk ours' loss path, its compile adds ours compiled; the lesson run trains with
    all of it. ``BenchOptions()`` is what the command line measures with no flag."""

    train: TrainConfig = field(default_factory=lesson_train)
    repeats: int = setting(3, "timed repeats after one warm-up; every figure is their median")
    sweep: tuple[int, ...] = setting((), "further batch sizes for ours alone, comma-separated, e.g. 4,8,32; "
                                         "empty: no sweep", metavar="SIZES")
    hf: bool = setting(True, "HuggingFace's GPT2LMHeadModel of the same config as a contender (needs transformers)")
    fused_adamw: bool | None = setting(None, "AdamW's fused kernel: on, off, or auto (= none): fused where PyTorch "
                                             "has it", metavar="{auto,on,off}")
    gen_tokens: int = setting(200, "tokens to generate, with and without the KV cache")
    lesson_steps: int = setting(0, "also time a full training run of this many batches (500 = the lesson, 0 = off)")
    matmul_n: int = setting(4096, "size of the ceiling's square matrices (at least 8192 for a GPU's 16-bit types)")
    profile: bool = setting(False, "also profile one training step of ours: where the time goes")
    chunk_variant: int = setting(1024, "also time ours with the other loss path: full logits if ours chunks, else "
                                       "chunks of this many rows (0 = off)")
    # 64, the command line's default: what `python -m gpt_lesson.bench` users got and what docs/performance.md
    # measured. This dataclass said 0 while the flags were declared apart from it.
    vocab_variant: int = setting(64, "also time ours with the vocabulary padded to a multiple of this (0 = off)")
    n_tokens: int = setting(200_000, "random tokens to draw the batches from")

    def __post_init__(self) -> None:
        if not isinstance(self.train, TrainConfig):
            raise TypeError(f"BenchOptions.train must be a TrainConfig, e.g. train_config('model5', batch_size=8), "
                            f"got {type(self.train).__name__}")


@dataclass(frozen=True)
class CommandOptions:
    """What ``python -m gpt_lesson.bench`` takes besides `BenchOptions`: where, which model, where the results go."""

    device: str = setting("auto", "auto, cpu, cuda or cuda:N")
    preset: str = setting("model5", "the model to measure, with its training loss_chunk", choices=tuple(PRESETS))
    vocab_multiple: int | None = setting(None, "pad the model's vocabulary to a multiple of this; none: the preset's")
    threads: int | None = setting(None, "CPU threads; none: PyTorch's choice")
    json: str | None = setting(None, "also write the results to this file as JSON; none: print only", metavar="FILE")


@dataclass
class Bench:
    """The state every section shares: where, what, the data, the log and the results so far."""

    device: torch.device
    cfg: GPTConfig
    opts: BenchOptions
    log: Callable[[str], object]
    dtype: torch.dtype | None
    fused: bool
    tokens: torch.Tensor  # (n_tokens,) on the CPU, for the DataLoader and the lesson run
    tokens_dev: torch.Tensor  # the same on the device
    gen: torch.Generator  # on the device: the batches
    x: torch.Tensor  # the lesson-sized batch every contender trains on
    y: torch.Tensor
    res: dict = field(default_factory=dict)

    @property
    def batch_size(self) -> int:
        return self.opts.train.batch_size

    @property
    def seq_len(self) -> int:
        return self.opts.train.seq_len

    @property
    def repeats(self) -> int:
        return self.opts.repeats

    @property
    def loss_chunk(self) -> int:
        return self.opts.train.loss_chunk

    @property
    def compile(self) -> bool:
        return self.opts.train.compile

    @classmethod
    def create(cls, device: torch.device, cfg: GPTConfig, opts: BenchOptions, log) -> "Bench":
        # seq_len none: the model's context; past it: an error that names both
        opts = replace(opts, train=replace(opts.train, seq_len=opts.train.seq_len_for(cfg)))
        dtype = autocast_dtype(device)
        fused = True if opts.fused_adamw is None else opts.fused_adamw
        cpu_gen = torch.Generator(device="cpu").manual_seed(0)
        tokens = torch.randint(0, cfg.vocab_size, (opts.n_tokens,), generator=cpu_gen)
        tokens_dev = tokens.to(device)
        gen = torch.Generator(device=device).manual_seed(0)
        x, y = random_batch(tokens_dev, opts.train.batch_size, opts.train.seq_len, generator=gen)
        b = cls(device, cfg, opts, log, dtype, fused, tokens, tokens_dev, gen, x, y)
        b.res.update(_header(b))
        return b


@dataclass
class Contender:
    """One model taking turns: its label, the module, what its forward pass runs, its training step."""

    label: str
    model: torch.nn.Module
    forward_module: torch.nn.Module  # the model, or its compiled form
    step: TrainStep


def run(device: torch.device, cfg: GPTConfig, opts: BenchOptions = BenchOptions(), *, log=print) -> dict:
    """Run every measurement; return a JSON-ready dict. ``log`` gets a line per finished measurement."""
    b = Bench.create(device, cfg, opts, log)
    # The ceiling is measured before and after the models and the higher of the two is used, so that a
    # slow moment of the machine during one measurement cannot inflate every MFU figure.
    before = measure_ceilings(b, "before")
    contenders = make_contenders(b)
    fwd_t, step_t = time_in_turns(b, contenders)
    record_contenders(b, contenders, fwd_t, step_t)
    record_ratios_over_hf(b, contenders, step_t)
    if opts.profile:
        b.res["profile"] = profile_step(contenders["ours"].step, b.x, b.y, b.device, log=log)
    model, keys = contenders["ours"].model, list(contenders)
    del contenders  # free the other contenders (and every optimizer state) before the sweep
    if opts.sweep:
        sweep(b, model)
    after = measure_ceilings(b, "after")
    record_mfu(b, keys, before, after)
    measure_sampler(b)
    measure_generation(b, model)
    if opts.lesson_steps:
        lesson_run(b)
    return b.res


# --- the run's header ----------------------------------------------------------------------------------------


def _header(b: Bench) -> dict:
    d = b.device
    cpu = f"CPU ({platform.processor() or platform.machine()})"
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": torch.cuda.get_device_name(d) if d.type == "cuda" else cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "dtype": str(b.dtype or torch.float32).replace("torch.", ""),
        "config": b.cfg.to_dict(),
        "loss_chunk": b.loss_chunk,
        "batch_size": b.batch_size,
        "seq_len": b.seq_len,
        "compile": b.compile,
        "fused_adamw": b.fused,
    }


# --- ceilings ------------------------------------------------------------------------------------------------


def measure_ceilings(b: Bench, when: str) -> dict[str, float]:
    """FLOP/s of large matrix products per dtype: fp32 everywhere, bf16 and fp16 on CUDA."""
    n = b.opts.matmul_n
    out = {"float32": matmul_ceiling(b.device, torch.float32, n)}
    if b.device.type == "cuda":
        for dt in (torch.bfloat16, torch.float16):
            out[str(dt).replace("torch.", "")] = matmul_ceiling(b.device, dt, max(n, 8192))
    b.log(f"{f'matmul ceiling ({when}):':<24} " + ", ".join(f"{k} {v / 1e12:.3f} TFLOP/s" for k, v in out.items()))
    return out


# --- contenders ----------------------------------------------------------------------------------------------


def make_contenders(b: Bench) -> dict[str, Contender]:
    """The models compared, each with its own optimizer, all alive at once so that they can take turns:
    ours as configured; variants of ours (the other loss path, padded vocabulary, compiled); HuggingFace's."""
    torch.manual_seed(0)
    model = Model5(b.cfg).to(b.device)
    out = {"ours": _contender(b, f"Model5 (loss_chunk={b.loss_chunk})", model, loss_chunk=b.loss_chunk)}
    if b.opts.chunk_variant:
        # The same weights with the other loss path: chunked head + cross-entropy (never all B*T*V logits at
        # once) if ours computes the full logits, the full logits if ours is chunked.
        other = 0 if b.loss_chunk else b.opts.chunk_variant
        out["ours_chunked" if other else "ours_full_logits"] = _contender(b, f"Model5 (loss_chunk={other})", model,
                                                                          loss_chunk=other)
    vocab = b.opts.vocab_variant
    if vocab and b.cfg.padded_vocab % vocab:
        padded = Model5(replace(b.cfg, vocab_multiple=vocab)).to(b.device)
        out["ours_padded"] = _contender(b, f"Model5 (vocab {padded.config.padded_vocab})", padded,
                                        loss_chunk=b.loss_chunk)
    if b.compile:
        # The same module compiled (it shares the weights); compilation happens in the warm-up calls.
        out["ours_compiled"] = _contender(b, "Model5 compiled", model, loss_chunk=b.loss_chunk, compile=True)
    if b.opts.hf:
        hf = _hf_contender(b)
        if hf is not None:
            out["hf"] = hf
    return out


def _contender(b: Bench, label: str, model: torch.nn.Module, *, loss_chunk: int = 0, compile: bool = False,
               loss_fn=None) -> Contender:
    step = _train_step(b, model, loss_chunk=loss_chunk, compile=compile, loss_fn=loss_fn)
    return Contender(label, model, torch.compile(model) if compile else model, step)


def _train_step(b: Bench, model: torch.nn.Module, *, loss_chunk: int = 0, compile: bool = False,
                loss_fn=None) -> TrainStep:
    """A training step of ``model`` with its own AdamW (the fused kernel as the options say)."""
    opt = make_adamw(model, lr=1e-4, weight_decay=0.01, fused=b.fused)
    return TrainStep(model, opt, dtype=b.dtype, loss_chunk=loss_chunk, compile=compile, loss_fn=loss_fn)


def _hf_contender(b: Bench) -> Contender | None:
    try:
        hf_model = _hf_model(b.cfg, b.device)
    except ImportError:
        b.log("transformers is not installed: HuggingFace comparison skipped (pip install transformers)")
        return None
    # HF's model has no chunked loss: its step gets loss_chunk=0, so TrainStep calls loss_fn(x, y), the package's
    # one cross-entropy of a model's logits (HF's own labels= would shift the targets again)
    return _contender(b, "GPT2LMHeadModel (HF)", hf_model, loss_fn=logits_loss(lambda x: hf_model(input_ids=x).logits))


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


def _no_grad(model, x: torch.Tensor, dtype: torch.dtype | None):
    with torch.no_grad(), autocast(x.device.type, dtype):
        return model(x)


# --- forward pass and training step, in turns ----------------------------------------------------------------


def time_in_turns(b: Bench, contenders: dict[str, Contender]) -> tuple[dict[str, Timing], dict[str, Timing]]:
    """Forward passes, then training steps, of every contender in turns (ours, HF, ours, HF, ...): drift of
    this machine's speed falls on every contender alike."""
    fwd_fns = {k: (lambda c=c: _no_grad(c.forward_module, b.x, b.dtype)) for k, c in contenders.items()}
    step_fns = {k: (lambda c=c: c.step(b.x, b.y)) for k, c in contenders.items()}
    if "ours_compiled" in contenders:  # compilation (and recompilation for the training step) before any clock starts
        for _ in range(2):
            fwd_fns["ours_compiled"]()
            step_fns["ours_compiled"]()
    fwd_t = time_interleaved(fwd_fns, b.device, warmup=1, repeats=b.repeats)
    step_t = time_interleaved(step_fns, b.device, warmup=1, repeats=b.repeats)
    return fwd_t, step_t


def record_contenders(b: Bench, contenders: dict[str, Contender], fwd_t: dict[str, Timing],
                      step_t: dict[str, Timing]) -> None:
    for key, c in contenders.items():
        b.res[key] = _entry(b, c.label, fwd_t[key], step_t[key], b.batch_size)


def _entry(b: Bench, label: str, fwd: Timing, step: Timing, batch_size: int) -> dict:
    """The figures of one model at one batch size, logged as one line."""
    tokens = batch_size * b.seq_len
    e = {"batch_size": batch_size, "forward_s": fwd.median, "step_s": step.median, "step_range_s": [step.min, step.max],
         "forward_tokens_per_s": tokens / fwd.median, "step_tokens_per_s": tokens / step.median}
    b.log(f"{label:<28} B={batch_size:<3} forward {fwd.median:8.3f} s   step {step.median:8.3f} s "
          f"(range {step.min:.2f}-{step.max:.2f})   {e['step_tokens_per_s']:7.0f} tok/s")
    return e


# --- ratios --------------------------------------------------------------------------------------------------


def record_ratios_over_hf(b: Bench, contenders: dict[str, Contender], step_t: dict[str, Timing]) -> None:
    """Training-step throughput of each of ours over HF's: of the medians, and within each round of turns."""
    if "hf" not in b.res:
        return
    for key in [k for k in contenders if k != "hf"]:
        b.res[f"{key}_over_hf_step"] = b.res["hf"]["step_s"] / b.res[key]["step_s"]
        # the ratio within each round of turns, which drift between rounds cannot bias
        per_round = [h / o for h, o in zip(step_t["hf"].times, step_t[key].times)]
        b.res[f"{key}_over_hf_step_per_round"] = per_round
        b.log(f"{contenders[key].label} / HF training-step throughput: {b.res[f'{key}_over_hf_step']:.2f}x "
              f"(per round: {', '.join(f'{r:.2f}' for r in per_round)})")


# --- profile -------------------------------------------------------------------------------------------------


def profile_step(step: TrainStep, x: torch.Tensor, y: torch.Tensor, device: torch.device, *, top: int = 12,
                 log=print) -> dict:
    """Profile one training step on (x, y): the ``top`` operators by their own time (CUDA time on a GPU)."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])) as prof:
        step(x, y)
        if cuda:
            torch.cuda.synchronize(device)
    own = partial(_own_us, cuda=cuda)
    events = [e for e in prof.key_averages() if own(e) > 0]
    total = sum(own(e) for e in events)
    rows = [{"op": e.key, "seconds": own(e) / 1e6, "share": own(e) / total, "calls": e.count}
            for e in sorted(events, key=own, reverse=True)[:top]]
    mm = sum(own(e) for e in events if "mm" in e.key.lower() or "gemm" in e.key.lower())
    log(f"profile of one training step of ours ({total / 1e6:.2f} s of {'GPU' if cuda else 'CPU'} time, own time per "
        f"operator; matrix products (names with 'mm'/'gemm') {100 * mm / total:.1f}% of it):")
    for r in rows:
        log(f"  {r['op'][:60]:<60} {r['seconds']:8.3f} s  {100 * r['share']:5.1f}%  ({r['calls']} calls)")
    return {"total_s": total / 1e6, "matmul_share": mm / total, "top": rows}


def _own_us(event, cuda: bool) -> float:
    """An operator's own time in microseconds; the attribute's name changed between PyTorch versions."""
    if cuda:
        return getattr(event, "self_device_time_total", None) or getattr(event, "self_cuda_time_total", 0.0)
    return event.self_cpu_time_total


# --- sweep ---------------------------------------------------------------------------------------------------


def sweep(b: Bench, model: Model5) -> None:
    """Ours alone at the other batch sizes of ``opts.sweep`` (forward and training step)."""
    b.res["sweep"] = []
    for bs in b.opts.sweep:
        if bs == b.batch_size:
            continue
        xb, yb = random_batch(b.tokens_dev, bs, b.seq_len, generator=b.gen)
        fwd = time_it(lambda: _no_grad(model, xb, b.dtype), b.device, warmup=1, repeats=b.repeats)
        step = _train_step(b, model, loss_chunk=b.loss_chunk)
        step_t = time_it(lambda: step(xb, yb), b.device, warmup=1, repeats=b.repeats)
        b.res["sweep"].append(_entry(b, "Model5 sweep", fwd, step_t, bs))


# --- ceilings after, MFU -------------------------------------------------------------------------------------


def record_mfu(b: Bench, keys: list[str], before: dict[str, float], after: dict[str, float]) -> None:
    """The higher of the two ceilings, and each entry's MFU against it (padding rows count as no work)."""
    ceilings = {k: max(before[k], after[k]) for k in before}
    b.res["matmul_tflops"] = {k: v / 1e12 for k, v in ceilings.items()}
    b.res["matmul_tflops_before_after"] = {k: [before[k] / 1e12, after[k] / 1e12] for k in before}
    ceiling = ceilings[b.res["dtype"]]
    for e in [b.res[k] for k in keys] + b.res.get("sweep", []):
        f = forward_flops(b.cfg, e["batch_size"], b.seq_len)  # padding rows are not counted: they do no useful work
        e["forward_mfu"] = f / e["forward_s"] / ceiling
        e["step_mfu"] = 3 * f / e["step_s"] / ceiling
    b.log(f"MFU of a training step against the higher ceiling ({ceiling / 1e12:.3f} TFLOP/s, {b.res['dtype']}): "
          + ", ".join(f"{k} {100 * b.res[k]['step_mfu']:.1f}%" for k in keys))


# --- sampler -------------------------------------------------------------------------------------------------


def measure_sampler(b: Bench, calls: int = 100) -> None:
    """The sampler against a Python loop and a DataLoader: time per batch (mean of ``calls`` calls) and its
    share of one training step. At small B every version is dominated by per-operation overhead."""
    sizes = sorted({b.batch_size, 64, 256})
    rows = []
    for bs in sizes:
        t_vec = _per_call(lambda: random_batch(b.tokens_dev, bs, b.seq_len, generator=b.gen), b.device, calls)
        t_loop = _per_call(lambda: loop_batch(b.tokens_dev, bs, b.seq_len, generator=b.gen), b.device, calls)
        rows.append({"batch_size": bs, "random_batch_s": t_vec, "loop_s": t_loop, "speedup_vs_loop": t_loop / t_vec})
        b.log(f"sampler B={bs:<4} random_batch {1e6 * t_vec:8.1f} us   Python loop {1e6 * t_loop:8.1f} us   "
              f"{t_loop / t_vec:5.1f}x as fast")
    loader = epoch_loader(b.tokens, b.batch_size, b.seq_len, generator=torch.Generator().manual_seed(0))
    t_dl = _per_call(_Cycle(loader), "cpu", calls)
    row = rows[sizes.index(b.batch_size)]
    share = row["random_batch_s"] / b.res["ours"]["step_s"]
    s = b.res["sampler"] = {**row, "dataloader_s": t_dl, "share_of_step": share, "sizes": rows}
    b.log(f"sampler at B={b.batch_size}: DataLoader {1e6 * t_dl:.1f} us per batch; random_batch is "
          f"{100 * s['share_of_step']:.4f}% of a training step")


def _per_call(fn: Callable[[], object], device, calls: int) -> float:
    """Mean seconds per call of ``fn``: the median of 5 timings of ``calls`` calls each."""
    return time_it(lambda: [fn() for _ in range(calls)], device, warmup=1, repeats=5).median / calls


class _Cycle:
    """The next batch of a DataLoader on each call, starting a new epoch when one ends (an epoch may hold
    fewer batches than the calls)."""

    def __init__(self, loader) -> None:
        self.loader, self.it = loader, iter(loader)

    def __call__(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)


# --- generation ----------------------------------------------------------------------------------------------


def measure_generation(b: Bench, model: Model5) -> None:
    """Tokens/s with and without the KV cache (greedy, so both do the same work)."""
    prompt = b.tokens_dev[:8][None]
    n_new = min(b.opts.gen_tokens, b.cfg.context_length - prompt.size(1))
    gen = {}
    for use_cache in (True, False):
        t = time_it(lambda: generate_tokens(model, prompt, n_new, greedy=True, use_cache=use_cache), b.device,
                    warmup=1, repeats=max(1, b.repeats - 1))
        gen["cache" if use_cache else "no_cache"] = n_new / t.median
    gen["new_tokens"] = n_new
    gen["speedup"] = gen["cache"] / gen["no_cache"]
    b.res["generation_tokens_per_s"] = gen
    b.log(f"generation of {n_new} tokens: {gen['cache']:.1f} tok/s with KV cache, {gen['no_cache']:.1f} without "
          f"({gen['speedup']:.1f}x)")


# --- the lesson's run ----------------------------------------------------------------------------------------


def lesson_run(b: Bench) -> None:
    """A full training run of ``opts.lesson_steps`` batches, as the lesson trains (evaluations included)."""
    steps = b.opts.lesson_steps
    torch.manual_seed(0)
    m = Model5(b.cfg).to(b.device)
    config = b.opts.train.with_overrides(steps=steps, eval_every=100, eval_batches=8)
    h = train(m, b.tokens, b.tokens[:20_000], config, device=b.device, progress=False)
    b.res["lesson_run"] = {"steps": steps, "wall_s": h.wall_seconds, "tokens_per_s": h.tokens_per_s}
    b.log(f"lesson run: {steps} batches of {b.batch_size}x{b.seq_len} in {h.wall_seconds:.1f} s "
          f"(evaluations included), {h.tokens_per_s:,.0f} tok/s")


# --- command line --------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    """Every flag comes from a field: `CommandOptions` for the command, `BenchOptions` for what is measured, and
    `TrainConfig` (the `TRAIN_FLAGS` of ``BenchOptions.train``) for the training settings."""
    p = argparse.ArgumentParser(prog="python -m gpt_lesson.bench", description=__doc__.split("\n\n")[0])
    add_flags(p.add_argument_group("the command"), CommandOptions)
    add_flags(p.add_argument_group("what to measure (BenchOptions)"), BenchOptions)
    train = p.add_argument_group(
        "training settings (BenchOptions.train, a TrainConfig)",
        "--batch-size x --seq-len: the batch every contender trains on (the preset's context grows to --seq-len); "
        "--loss-chunk: ours' loss path; --compile: also time ours compiled (and compile the lesson run). A flag not "
        "given keeps the preset's setting, at the lesson's batch of 16x256.")
    add_flags(train, TrainConfig, include=TRAIN_FLAGS, keep_unset=True, default_note="TrainConfig's ")
    return p


def options_from_args(args: argparse.Namespace) -> tuple[GPTConfig, BenchOptions]:
    """The model config and the options the command line asks for: the preset's model, its context lengthened to
    ``--seq-len`` and its vocabulary padded as ``--vocab-multiple`` says; the training settings are the preset's
    at the lesson's 16×256 (`lesson_train`), with the `TRAIN_FLAGS` given. A bad setting is a ValueError."""
    cmd = CommandOptions(**flags_given(args, CommandOptions))
    train = lesson_train(cmd.preset).with_overrides(**flags_given(args, TrainConfig))
    opts = BenchOptions(train=train, **flags_given(args, BenchOptions))
    context = PRESETS[cmd.preset].model.context_length
    overrides = {"context_length": max(train.seq_len or context, context)}  # seq_len none: the preset's context
    if cmd.vocab_multiple is not None:
        overrides["vocab_multiple"] = cmd.vocab_multiple
    return preset(cmd.preset, **overrides), opts


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        cfg, opts = options_from_args(args)
    except ValueError as e:  # e.g. --batch-size 0, refused by TrainConfig: one line, before any work
        parser.error(str(e))
    cmd = CommandOptions(**flags_given(args, CommandOptions))
    if cmd.threads:
        torch.set_num_threads(cmd.threads)
    device = pick_device(cmd.device)
    tc = opts.train
    print(f"# gpt_lesson.bench  {time.strftime('%Y-%m-%d')}  torch {torch.__version__}  device {device}  "
          f"threads {torch.get_num_threads()}  preset {cmd.preset} (loss_chunk={tc.loss_chunk}, "
          f"vocab_multiple={cfg.vocab_multiple})  B={tc.batch_size} T={tc.seq_len_for(cfg)}  compile={tc.compile}")
    res = run(device, cfg, opts)
    if cmd.json:
        Path(cmd.json).parent.mkdir(parents=True, exist_ok=True)
        Path(cmd.json).write_text(json.dumps(res, indent=2), encoding="utf-8")
        print(f"results written to {cmd.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
