"""Step 07: how much of a generated text is copied from the training text.

With little data and many epochs a model starts to reproduce its training text word for word. `copied` measures
that for generated token ids against a reference token vector (the training part, and the test part as the
control: text the model never saw, so what it "copies" from there is chance or common phrases):

- the share of the generated n-grams (n = 8 tokens by default) that occur verbatim somewhere in the reference;
- the longest generated span that occurs verbatim in the reference, in tokens, and where.

How: the reference's n-grams are hashed into one sorted table (a polynomial hash of n token ids, computed for
every window at once), and each generated n-gram is looked up in it with a binary search, so the whole book as the
reference takes well under a second. The longest copied span is found by growing n: a span of length L is copied
only if its n-grams are, so the search doubles L, then bisects, checking each length against the table of that
length. A hash can collide, so every reported span is checked token by token against the reference.

`extraction` asks the question from the other side, the way an extraction attack does: prompted with ``prompt_len``
tokens of a text, does the model continue it word for word? For ``n`` windows drawn with a seeded generator it
decodes ``continuation`` tokens greedily (batched, with the KV cache) and counts the tokens reproduced before the
first mismatch. Run on the training text and, with the same n, sizes and seed, on the test text as the control: a
model that recites its training text matches far longer there than on text it never saw. It is meant to run at
every evaluation of a training run: one call is a few dozen cached decoding steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .config import is_int
from .generation import generate_tokens
from .model import Model5
from .tokens import check_tokens, decode

_MULT = 1_000_003  # an odd multiplier; the hashes wrap around in int64 (arithmetic modulo 2**64)


def _mult_pow(k: int) -> int:
    """_MULT ** k modulo 2**64, as a signed int64 value."""
    v = pow(_MULT, k, 2**64)
    return v - 2**64 if v >= 2**63 else v


def _hashes(ids: torch.Tensor, n: int) -> torch.Tensor:
    """(len - n + 1,) int64: a polynomial hash of every window of n consecutive ids, with O(len · log n) work:
    windows of 1, 2, 4, ... tokens are combined (the hash of a followed by b is hash(a) · M^len(b) + hash(b))."""
    x = ids.long()
    out, out_len = None, 0
    block, block_len = x, 1  # the hashes of every window of block_len tokens
    m = n
    while m:
        if m & 1:
            if out is None:
                out, out_len = block, block_len
            else:
                k = len(x) - (out_len + block_len) + 1
                out = out[:k] * _mult_pow(block_len) + block[out_len : out_len + k]
                out_len += block_len
        m >>= 1
        if m:
            k = len(x) - 2 * block_len + 1
            block = block[:k] * _mult_pow(block_len) + block[block_len : block_len + k]
            block_len *= 2
    return out


def _lookup(generated: torch.Tensor, ref_hashes: torch.Tensor, n: int) -> torch.Tensor:
    """(len(generated) - n + 1,) bool: whether each generated n-gram's hash occurs among ``ref_hashes``."""
    table = torch.unique(ref_hashes)  # sorted
    h = _hashes(generated, n)
    at = torch.searchsorted(table, h).clamp(max=len(table) - 1)
    return table[at] == h


def _copied_span(generated: torch.Tensor, reference: torch.Tensor, length: int) -> tuple[int, int]:
    """(start in generated, start in reference) of a span of ``length`` tokens copied verbatim (checked token by
    token: a hash may collide), or (-1, -1)."""
    if length > len(generated) or length > len(reference):
        return -1, -1
    ref_hashes = _hashes(reference, length)
    for g in _lookup(generated, ref_hashes, length).nonzero().flatten().tolist():
        span = generated[g : g + length]
        for r in (ref_hashes == _hashes(span, length)[0]).nonzero().flatten().tolist():
            if torch.equal(reference[r : r + length], span):
                return g, r
    return -1, -1


@dataclass(frozen=True)
class Copying:
    """What `copied` found: ``share`` of the ``n``-grams found verbatim in the reference, and the longest copied span
    (``longest`` tokens from ``start`` in the generated ids, at ``ref_start`` in the reference; 0 and -1 if none)."""

    n: int
    ngrams: int  # generated n-grams looked up
    share: float
    longest: int
    start: int
    ref_start: int
    text: str  # the longest copied span, decoded

    def __str__(self) -> str:
        return (f"{self.share:.1%} of {self.ngrams:,} generated {self.n}-grams occur verbatim in the reference; "
                f"longest copied span: {self.longest} tokens")


def copied(generated: torch.Tensor, reference: torch.Tensor, n: int = 8) -> Copying:
    """How much of ``generated`` (1-D token ids) occurs verbatim in ``reference`` (1-D token ids): see the module."""
    check_tokens(generated, "generated")
    check_tokens(reference, "reference")
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"n must be a positive number of tokens (e.g. 8), got {n!r}")
    if len(generated) < n or len(reference) < n:
        raise ValueError(f"n={n} is longer than the generated ids ({len(generated)}) or the reference "
                         f"({len(reference)}); use a smaller n or more text")
    generated, reference = generated.long().cpu(), reference.long().cpu()
    found = _lookup(generated, _hashes(reference, n), n)
    # The longest copied span: double the length while some span of it is copied, then bisect.
    best, lo, hi = (-1, -1, 0), 0, 1
    while True:
        g, r = _copied_span(generated, reference, hi)
        if g < 0:
            break
        best, lo, hi = (g, r, hi), hi, min(2 * hi, len(generated))
        if lo == hi:
            break
    while hi - lo > 1 and best[2] < len(generated):
        mid = (lo + hi) // 2
        g, r = _copied_span(generated, reference, mid)
        if g >= 0:
            best, lo = (g, r, mid), mid
        else:
            hi = mid
    g, r, length = best
    text = decode(generated[g : g + length]) if length else ""
    return Copying(n, len(found), found.double().mean().item(), length, g, r, text)


@dataclass(frozen=True)
class Extraction:
    """What `extraction` found over ``n`` windows of a token vector. Per window, in the order drawn: ``starts``, and
    ``matches``, the tokens of the true continuation the model reproduced greedily before its first mismatch
    (0 … ``continuation``). Their ``mean``, the share reproduced in full, and the longest (the first window of
    that length): ``longest`` tokens after the prompt of the window at ``longest_start`` (its prompt is
    tokens[longest_start : longest_start + prompt_len]), and ``longest_generated``, the model's own
    ``continuation`` tokens there, to show beside the book's."""

    n: int
    prompt_len: int
    continuation: int
    seed: int
    starts: tuple[int, ...]
    matches: tuple[int, ...]
    mean: float
    full_share: float
    longest: int
    longest_start: int
    longest_generated: tuple[int, ...]

    def to_dict(self) -> dict:
        """Plain numbers and lists, for metrics.json."""
        return {"n": self.n, "prompt_len": self.prompt_len, "continuation": self.continuation, "seed": self.seed,
                "mean": self.mean, "full_share": self.full_share, "longest": self.longest,
                "longest_start": self.longest_start, "matches": list(self.matches), "starts": list(self.starts)}

    def __str__(self) -> str:
        return (f"prompted with {self.prompt_len} tokens, the model reproduced on average {self.mean:.1f} of the next "
                f"{self.continuation} ({self.full_share:.0%} of {self.n} windows in full; longest {self.longest} "
                f"tokens, window at token {self.longest_start:,})")


def _check_extraction_sizes(model: Model5, tokens: torch.Tensor, n: int, prompt_len: int, continuation: int,
                            seed: int, batch_size: int) -> None:
    for name, v in (("n", n), ("prompt_len", prompt_len), ("continuation", continuation),
                    ("batch_size", batch_size)):
        if not (is_int(v) and v >= 1):
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if not is_int(seed):
        raise TypeError(f"seed must be an integer (it seeds the generator that draws the windows), got {seed!r}")
    check_tokens(tokens, "tokens", vocab_size=model.config.vocab_size)
    ctx, window = model.config.context_length, prompt_len + continuation
    if window > ctx:
        raise ValueError(f"prompt_len + continuation = {prompt_len} + {continuation} = {window} tokens do not fit "
                         f"the model's context of {ctx} tokens; choose them so that their sum is at most {ctx} "
                         f"(e.g. prompt_len={ctx // 3}, continuation={ctx - ctx // 3})")
    if window > len(tokens):
        raise ValueError(f"a window of prompt_len + continuation = {window} tokens does not fit in the token vector "
                         f"of {len(tokens)} tokens; pass a longer token vector or a shorter prompt_len/continuation")


def extraction_starts(n_tokens: int, n: int, window: int, seed: int) -> torch.Tensor:
    """(n,) int64: the starts of ``n`` windows of ``window`` tokens in a vector of ``n_tokens``, drawn uniformly (with
    replacement) by a ``torch.Generator`` seeded with ``seed``: the global RNG is not touched."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, n_tokens - window + 1, (n,), generator=g)


def match_lengths(generated: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """generated, truth (B, M) -> (B,) int64: how many leading tokens of each row agree, before the first mismatch."""
    return (generated == truth).long().cumprod(dim=1).sum(dim=1)


@torch.no_grad()
def extraction(model: Model5, tokens: torch.Tensor, *, n: int = 32, prompt_len: int = 32, continuation: int = 64,
               seed: int = 0, batch_size: int = 32) -> Extraction:
    """Prompt ``model`` with the first ``prompt_len`` tokens of ``n`` windows of ``tokens`` (1-D ids), decode
    ``continuation`` tokens greedily and count how many match the true continuation before the first mismatch.

    The windows depend only on (len(tokens), n, prompt_len + continuation, seed), so the control (the test text, same
    arguments) is drawn the same way; ``batch_size`` windows are decoded at once (one `generate_tokens` call per
    batch) and does not change the result. The model's mode is kept; the global RNG is not used.
    """
    _check_extraction_sizes(model, tokens, n, prompt_len, continuation, seed, batch_size)
    window = prompt_len + continuation
    starts = extraction_starts(len(tokens), n, window, seed)
    rows = (starts[:, None] + torch.arange(window)).to(tokens.device)  # (n, p + m)
    windows = tokens[rows].long()
    generated, lengths = [], []
    for i in range(0, n, batch_size):
        batch = windows[i : i + batch_size]
        out = generate_tokens(model, batch[:, :prompt_len], continuation, greedy=True)[:, prompt_len:]  # (b, m)
        generated.append(out)
        lengths.append(match_lengths(out, batch[:, prompt_len:].to(out.device)))
    matches = torch.cat(lengths).cpu()
    best = int(matches.argmax())
    return Extraction(
        n=n, prompt_len=prompt_len, continuation=continuation, seed=seed, starts=tuple(starts.tolist()),
        matches=tuple(matches.tolist()), mean=matches.double().mean().item(),
        full_share=(matches == continuation).double().mean().item(), longest=int(matches[best]),
        longest_start=int(starts[best]),
        longest_generated=tuple(generated[best // batch_size][best % batch_size].tolist()),
    )
