"""Step 07: generate text, with temperature, top-k or greedy decoding and a KV cache.

Without a cache, every new token runs the whole context through the model again. With the cache,
each layer keeps the keys and values of the tokens already seen, so a new token costs one position.
Both give exactly the same tokens for the same generator (the model has learned positions, so once
the context is full, the window slides and the cache is rebuilt from the cropped context).
"""

from __future__ import annotations

import warnings

import torch

from .model import KVCache, Model5
from .step import eval_mode
from .tokens import check_tokens, decode, encode, for_display

LESSON_PROMPT = "The man-mountain shall not depart from our dominions"


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
) -> torch.Tensor:
    """idx (B, T0) -> (B, T0 + max_new_tokens). The model sees at most its last context_length tokens."""
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
    if not isinstance(idx, torch.Tensor):
        raise TypeError(f"the prompt must be a tensor of token ids (use gpt_lesson.encode), got {type(idx).__name__}")
    if idx.dim() == 1:
        idx = idx[None]
    if idx.size(1) == 0:
        raise ValueError("the prompt is empty; give at least one token (for example a newline)")
    check_tokens(idx.reshape(-1), "the prompt", vocab_size=model.config.vocab_size)
    ctx = model.config.context_length
    device = next(model.parameters()).device
    idx = idx.to(device)
    dtype = next(model.parameters()).dtype
    cache = None
    with eval_mode(model):
        for _ in range(max_new_tokens):
            if not use_cache:
                logits = model(idx[:, -ctx:])[:, -1]
            elif cache is None or cache.pos >= ctx:  # (re)fill the cache from the (cropped) context
                cache = KVCache(model.config, idx.size(0), device, dtype)
                logits = model(idx[:, -ctx:], cache)[:, -1]
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
        generator=generator, use_cache=use_cache,
    )
    return for_display(decode(out[0]))
