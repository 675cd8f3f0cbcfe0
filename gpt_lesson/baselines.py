"""Baselines: the test loss of counting models, the floor a trained model must beat, in nats per token.

- unigram: P(b) = (count(b) + alpha) / (N + alpha·V), add-alpha smoothing. Add-one (alpha = 1) is the textbook
  choice, but with V = 50,257 and ~130k training tokens most of the vocabulary is never seen, and add-one gives
  those ~40,000 unseen tokens 22.7% of the probability. A smaller alpha, chosen on held-out training text, scores
  better (`choose_alpha`).
- bigram: P(b | a) = (count(a, b) + beta·P_uni(b)) / (count(a) + beta), the pair counts interpolated with the
  unigram: a context seen often trusts its own counts, a rare one falls back on the unigram (`choose_beta`).

The pair counts are never a dense V×V table (50,257² floats would be 10 GB): each pair is one int64 key a·V + b,
counted with `torch.unique`, and looked up with `torch.searchsorted`. The whole book takes milliseconds.

Tokens are a 1-D integer tensor, or a list of them (a block split's pieces, ``[s.tokens[a:b] for a, b in
s.part(name)]``), so that no pair is counted across the seam between two pieces. The first token of each test piece
has no context and is scored with the unigram, so both baselines average over the same tokens.

Choosing a smoothing on the test text would tune the baseline to the test; `choose_alpha` and `choose_beta` fit
on the first part of the training text and pick the value with the lowest loss on its last ``held_out`` part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .tokens import check_tokens

ALPHAS = (1.0, 0.3, 0.1, 0.03, 0.01, 0.003, 0.001)  # add-alpha candidates for `choose_alpha`
BETAS = (0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0)  # interpolation weights for `choose_beta`

Tokens = torch.Tensor | Sequence[torch.Tensor]


@dataclass(frozen=True)
class Choice:
    """The chosen smoothing ``value``, its held-out ``loss`` (nats/token), and every candidate's held-out loss."""

    value: float
    loss: float
    losses: dict[float, float]

    def __str__(self) -> str:
        return f"{self.value:g} (held-out loss {self.loss:.3f} nats/token)"


def unigram_probs(train_tokens: Tokens, vocab_size: int, alpha: float) -> torch.Tensor:
    """(V,) float64 add-alpha probabilities of each token id in the training text."""
    pieces = _pieces(train_tokens, "train_tokens", vocab_size)
    _positive(alpha, "alpha", "add-alpha smoothing; 0 gives unseen test tokens probability 0, an infinite loss")
    counts = torch.zeros(vocab_size, dtype=torch.float64)
    for p in pieces:
        counts += torch.bincount(p.cpu(), minlength=vocab_size)
    return (counts + alpha) / (counts.sum() + alpha * vocab_size)


def unigram_loss(train_tokens: Tokens, test_tokens: Tokens, vocab_size: int, alpha: float) -> float:
    """Mean -ln P(token) over the test tokens, P the add-alpha unigram of the training tokens (nats/token)."""
    probs = unigram_probs(train_tokens, vocab_size, alpha)
    test = torch.cat(_pieces(test_tokens, "test_tokens", vocab_size, need=1)).cpu()
    return -probs[test].log().mean().item()


def bigram_loss(train_tokens: Tokens, test_tokens: Tokens, vocab_size: int, *, alpha: float,
                beta: float) -> float:
    """Mean -ln P(b | a) over the test tokens (nats/token): the interpolated bigram of the module docstring, with
    the add-``alpha`` unigram and weight ``beta``; each test piece's first token is scored by the unigram."""
    train = _pieces(train_tokens, "train_tokens", vocab_size)
    test = _pieces(test_tokens, "test_tokens", vocab_size, need=1)
    _positive(beta, "beta", "the weight of the unigram in P(b | a); larger trusts the pair counts less")
    uni = unigram_probs(train, vocab_size, alpha)
    keys, counts = _pair_counts(train, vocab_size)
    context = torch.zeros(vocab_size, dtype=torch.float64)  # count(a): how often a is followed by a token
    for p in train:
        context += torch.bincount(p[:-1], minlength=vocab_size)
    firsts = torch.stack([p[0] for p in test])
    a = torch.cat([p[:-1] for p in test])
    b = torch.cat([p[1:] for p in test])
    pair = _lookup(keys, counts, a * vocab_size + b)
    p_pair = (pair + beta * uni[b]) / (context[a] + beta)
    total = -p_pair.log().sum() - uni[firsts].log().sum()
    return (total / (len(a) + len(firsts))).item()


def choose_alpha(train_tokens: Tokens, vocab_size: int, candidates: Sequence[float] = ALPHAS, *,
                 held_out: float = 0.1) -> Choice:
    """The add-alpha smoothing with the lowest unigram loss on the last ``held_out`` of the training tokens,
    counting only the rest: the test text plays no part."""
    alphas = _candidates(candidates, "alpha")
    fit, check = held_out_split(train_tokens, vocab_size, held_out)
    losses = {float(a): unigram_loss(fit, check, vocab_size, a) for a in alphas}
    return _best(losses)


def choose_beta(train_tokens: Tokens, vocab_size: int, alpha: float, candidates: Sequence[float] = BETAS, *,
                held_out: float = 0.1) -> Choice:
    """The bigram's interpolation weight beta with the lowest held-out loss (as `choose_alpha`), for a given
    unigram ``alpha`` (choose that first)."""
    betas = _candidates(candidates, "beta")
    fit, check = held_out_split(train_tokens, vocab_size, held_out)
    losses = {float(b): bigram_loss(fit, check, vocab_size, alpha=alpha, beta=b) for b in betas}
    return _best(losses)


def held_out_split(tokens: Tokens, vocab_size: int, held_out: float = 0.1) -> tuple[list[torch.Tensor],
                                                                                   list[torch.Tensor]]:
    """(fit, check): the pieces of the first 1 - ``held_out`` of the tokens and of the rest, in order."""
    pieces = _pieces(tokens, "train_tokens", vocab_size)
    if not (isinstance(held_out, float) and 0 < held_out < 1):
        raise ValueError(f"held_out must be a fraction between 0 and 1 (0.1: the last tenth), got {held_out!r}")
    total = sum(len(p) for p in pieces)
    cut = round(total * (1 - held_out))
    if cut < 2 or total - cut < 2:
        raise ValueError(f"{total} training tokens are too few to hold out {held_out:g} of them")
    fit, check, seen = [], [], 0
    for p in pieces:
        k = min(max(cut - seen, 0), len(p))
        fit += [p[:k]] if k else []
        check += [p[k:]] if k < len(p) else []
        seen += len(p)
    return fit, check


def _pair_counts(pieces: list[torch.Tensor], vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique pair keys a·V + b (int64) and their counts (float64), over pairs inside each piece."""
    keys = torch.cat([p[:-1] * vocab_size + p[1:] for p in pieces])
    keys, counts = torch.unique(keys, sorted=True, return_counts=True)
    return keys, counts.double()


def _lookup(keys: torch.Tensor, counts: torch.Tensor, query: torch.Tensor) -> torch.Tensor:
    """The count of each query key (0 for a pair never seen), by binary search in the sorted keys."""
    if not len(keys):
        return torch.zeros(len(query), dtype=torch.float64)
    at = torch.searchsorted(keys, query).clamp(max=len(keys) - 1)
    return torch.where(keys[at] == query, counts[at], 0.0)


def _pieces(tokens: Tokens, name: str, vocab_size: int, need: int = 2) -> list[torch.Tensor]:
    """Checked 1-D int64 CPU pieces; empty pieces dropped; at least ``need`` tokens in all."""
    if not (isinstance(vocab_size, int) and not isinstance(vocab_size, bool) and vocab_size >= 1):
        raise ValueError(f"vocab_size must be a positive integer (GPT-2's: 50257), got {vocab_size!r}")
    pieces = [tokens] if isinstance(tokens, torch.Tensor) else list(tokens)
    for i, p in enumerate(pieces):
        check_tokens(p, name if len(pieces) == 1 else f"{name}[{i}]", vocab_size=vocab_size)
    pieces = [p.long().cpu() for p in pieces if len(p)]
    if sum(len(p) for p in pieces) < need:
        raise ValueError(f"{name} has {sum(len(p) for p in pieces)} tokens; a loss needs at least {need}")
    return pieces


def _positive(v: object, name: str, why: str) -> None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 < v < float("inf")):
        raise ValueError(f"{name} must be a positive number ({why}), got {v!r}")


def _candidates(candidates: Sequence[float], name: str) -> list[float]:
    values = list(candidates)
    if not values:
        raise ValueError(f"give at least one {name} to choose from, e.g. {ALPHAS if name == 'alpha' else BETAS}")
    for v in values:
        _positive(v, name, "each candidate")
    return values


def _best(losses: dict[float, float]) -> Choice:
    value = min(losses, key=losses.get)
    return Choice(value, losses[value], losses)
