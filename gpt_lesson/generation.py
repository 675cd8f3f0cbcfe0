"""Step 07: generate text, with temperature, top-k or greedy decoding and a KV cache.

Without a cache, every new token runs the whole window through the model again. With the cache,
each layer keeps the keys and values of the tokens already seen, so a new token costs one position.

**Past the context.** The model has learned *absolute* positions: a cached key was computed at its position
(0, 1, 2, ...) in the window. Sliding the window by one token would move every token to the position one lower,
which changes every key and value in every layer, so the cache cannot slide: it would have to be refilled at
every step, and past the context the cache would gain nothing. The window policy instead: when the window is
full (``context_length`` tokens), it restarts from its last ``keep`` tokens (default ``context_length // 2``),
one refill of ``keep`` tokens per ``context_length - keep + 1`` new tokens, single positions in between. The cost is
context: right after a refill the model sees only ``keep`` tokens, and on average about
``(keep + context_length) / 2`` instead of ``context_length``. The path without the cache follows the same
window policy, so both give exactly the same tokens for the same generator. ``keep=context_length`` slides the
window by one token each step (the most context; the cache is then refilled at every step and saves nothing).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from .model import KVCache, Model5
from .step import eval_mode
from .timing import Timing, time_interleaved
from .tokens import check_tokens, decode, encode, for_display
from .verdicts import Verdict, ratio_verdict

LESSON_PROMPT = "The man-mountain shall not depart from our dominions"


def window_keep(context_length: int, keep: int | None = None) -> int:
    """The tokens a full window restarts from: ``keep``, checked, or by default ``context_length // 2``."""
    if keep is None:
        return max(1, context_length // 2)
    if not (isinstance(keep, int) and not isinstance(keep, bool) and 1 <= keep <= context_length):
        raise ValueError(f"keep must be an integer from 1 to context_length={context_length} (tokens a full window "
                         f"restarts from; default context_length // 2), got {keep!r}")
    return keep


def _next_token(
    logits: torch.Tensor, temperature: float, top_k: int | None, greedy: bool, generator: torch.Generator | None
) -> torch.Tensor:
    """logits (B, V) -> next ids (B, 1)."""
    if greedy:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)


def _check_options(max_new_tokens: int, temperature: float, top_k: int | None, greedy: bool) -> None:
    """A clear ValueError for a sampling option out of range."""
    if not (isinstance(max_new_tokens, int) and not isinstance(max_new_tokens, bool) and max_new_tokens >= 0):
        raise ValueError(f"max_new_tokens must be an integer >= 0 (tokens to add), got {max_new_tokens!r}")
    if not (isinstance(temperature, (int, float)) and not isinstance(temperature, bool)
            and (temperature > 0 or greedy)):  # NaN fails "> 0" too
        greedy_hint = "; for the most likely token use greedy=True" if temperature in (0, 0.0) else ""
        raise ValueError(f"temperature must be a number > 0 (1.0: the model's own probabilities), "
                         f"got {temperature!r}{greedy_hint}")
    if top_k is not None and not (isinstance(top_k, int) and not isinstance(top_k, bool) and top_k >= 1):
        raise ValueError(f"top_k must be a positive integer (sample among the k most likely tokens) or None, "
                         f"got {top_k!r}")


@torch.no_grad()
def generate_tokens(
    model: Model5,
    idx: torch.Tensor,
    max_new_tokens: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    keep: int | None = None,
) -> torch.Tensor:
    """idx (B, T0) -> (B, T0 + max_new_tokens). The model sees at most context_length tokens: a longer prompt is
    cropped to its last context_length, and a full window restarts from its last ``keep`` tokens (default
    context_length // 2; the module docstring says why), with or without the cache."""
    _check_options(max_new_tokens, temperature, top_k, greedy)
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"the prompt must be a tensor of token ids (use gpt_lesson.encode), got {type(idx).__name__}")
    if idx.dim() == 1:
        idx = idx[None]
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty; give at least one token (for example a newline)")
    check_tokens(idx.reshape(-1), "the prompt", vocab_size=model.config.vocab_size)
    ctx = model.config.context_length
    keep = window_keep(ctx, keep)
    device = next(model.parameters()).device
    idx = idx.to(device)
    dtype = next(model.parameters()).dtype
    cache = None
    start = max(0, idx.size(1) - ctx)  # the model sees idx[:, start:]
    with eval_mode(model):
        for _ in range(max_new_tokens):
            if idx.size(1) - start > ctx:  # the window is full: restart it from its last `keep` tokens
                start, cache = idx.size(1) - keep, None
            if not use_cache:
                logits = model(idx[:, start:])[:, -1]
            elif cache is None:  # (re)fill the cache with the window
                cache = KVCache(model.config, idx.size(0), device, dtype)
                logits = model(idx[:, start:], cache)[:, -1]
            else:
                logits = model(idx[:, -1:], cache)[:, -1]
            idx = torch.cat([idx, _next_token(logits, temperature, top_k, greedy, generator)], dim=1)
    return idx


def generate(
    model: Model5,
    prompt: str = LESSON_PROMPT,
    max_new_tokens: int = 100,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    greedy: bool = False,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    keep: int | None = None,
) -> str:
    """Continue ``prompt`` and return prompt + continuation as text (Windows line endings shown as newlines)."""
    if not prompt:
        raise ValueError("the prompt is empty; give some text, e.g. the lesson's prompt gpt_lesson.LESSON_PROMPT")
    ids = encode(prompt)
    ctx = model.config.context_length
    if len(ids) > ctx:
        warnings.warn(f"the prompt has {len(ids)} tokens; the model sees only its last {ctx}", stacklevel=2)
    out = generate_tokens(
        model, ids[None], max_new_tokens, temperature=temperature, top_k=top_k, greedy=greedy,
        generator=generator, use_cache=use_cache, keep=keep,
    )
    return for_display(decode(out[0]))


@dataclass(frozen=True)
class GenerationTime:
    """Seconds to generate ``new_tokens`` tokens with and without the KV cache (greedy, the same tokens)."""

    new_tokens: int
    cache: Timing
    no_cache: Timing

    @property
    def speedup(self) -> float:
        """Median time without the cache over median time with it."""
        return self.no_cache.median / self.cache.median

    def verdict(self) -> Verdict:
        """Is the cache faster beyond the noise of the repeats? (`gpt_lesson.ratio_verdict`, paired by round.)"""
        return ratio_verdict(f"no-cache / cache time, {self.new_tokens} tokens", self.no_cache.times,
                             self.cache.times, above="the KV cache is faster", below="the KV cache is slower")

    def __str__(self) -> str:
        return (f"{self.new_tokens} tokens: {self.cache.median:.3f} s with the KV cache, {self.no_cache.median:.3f} s "
                f"without ({self.speedup:.2f}x)")


def time_generation(
    model: Model5,
    prompt_ids: torch.Tensor,
    lengths: list[int] | tuple[int, ...],
    *,
    repeats: int = 3,
    warmup: int = 1,
    device: torch.device | str | None = None,
    keep: int | None = None,
) -> list[GenerationTime]:
    """Time greedy generation of each of ``lengths`` new tokens after ``prompt_ids`` ((T0,) or (B, T0)), with and
    without the KV cache, the two taking turns (`gpt_lesson.time_interleaved`): one `GenerationTime` per length,
    medians of ``repeats``. ``device``: where the model is (default: its parameters' device)."""
    model_device = next(model.parameters()).device
    device = model_device if device is None else torch.device(device)
    if device.type != model_device.type or (device.index is not None and device != model_device):
        raise ValueError(f"the model is on {model_device}, not {device}; move it with model.to(device) first")
    if not lengths or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in lengths):
        raise ValueError(f"lengths must be a non-empty list of positive token counts, got {lengths!r}")
    prompt_ids = prompt_ids.to(device)
    out = []
    for n in lengths:
        runs = {str(use): (lambda use=use, n=n: generate_tokens(model, prompt_ids, n, greedy=True, use_cache=use,
                                                                 keep=keep))
                for use in (True, False)}
        t = time_interleaved(runs, device, warmup=warmup, repeats=repeats)
        out.append(GenerationTime(n, t["True"], t["False"]))
    return out
