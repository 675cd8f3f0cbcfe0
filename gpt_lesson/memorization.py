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
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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
