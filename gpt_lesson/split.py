"""Step 03: train/test splits of one token vector.

- `tail_split`: the lesson's split. The first 90% trains, the last 10% tests, so the test text is
  always the end of the book (Part IV in *Gulliver's Travels*), which biases the test loss.
- `block_split`: the test text is contiguous blocks spread over the whole book (one drawn at random in
  each of ``n_test`` consecutive strata), with a gap of one sequence length on each side of a test block,
  so no training window can overlap test text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tokens import check_tokens


def _check_fraction(name: str, value: float, example: float) -> None:
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (number and 0.0 < value < 1.0):  # NaN fails the comparison too
        raise ValueError(f"{name} must be a number strictly between 0 and 1 (e.g. {example}), got {value!r}")


def _check_positive(name: str, value: int) -> None:
    if not (isinstance(value, int) and not isinstance(value, bool) and value > 0):
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def tail_split(tokens: torch.Tensor, train_frac: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) -> train (n,), test (N - n,) with n = int(train_frac * N): the head trains, the tail tests."""
    check_tokens(tokens)
    _check_fraction("train_frac", train_frac, 0.9)
    n = int(train_frac * len(tokens))
    if n == 0 or n == len(tokens):
        raise ValueError(f"tokens holds {len(tokens)} token(s): train_frac={train_frac} of them leaves the "
                         f"{'train' if n == 0 else 'test'} part empty; give more text")
    return tokens[:n], tokens[n:]


@dataclass(frozen=True)
class BlockSplit:
    """Half-open token ranges ``[a, b)`` into ``tokens`` for each part; the gaps belong to neither."""

    tokens: torch.Tensor
    train_ranges: list[tuple[int, int]]
    test_ranges: list[tuple[int, int]]
    gap: int

    def part(self, name: str) -> list[tuple[int, int]]:
        if name not in ("train", "test"):
            raise ValueError(f"part must be 'train' or 'test', got {name!r}")
        return self.train_ranges if name == "train" else self.test_ranges

    def n_tokens(self, name: str) -> int:
        return sum(b - a for a, b in self.part(name))

    def concat(self, name: str) -> torch.Tensor:
        """The part's tokens joined into one (n,) tensor (windows may then cross a seam)."""
        return torch.cat([self.tokens[a:b] for a, b in self.part(name)])

    def starts(self, name: str, seq_len: int) -> torch.Tensor:
        """Every start s whose window ``tokens[s : s + seq_len + 1]`` lies inside one range of the part."""
        pieces = [torch.arange(a, b - seq_len) for a, b in self.part(name) if b - a > seq_len]
        if not pieces:
            raise ValueError(f"no {name} block is longer than seq_len={seq_len}; use larger blocks")
        return torch.cat(pieces)


def block_split(
    tokens: torch.Tensor,
    test_frac: float = 0.1,
    *,
    block_len: int = 2048,
    seq_len: int = 256,
    generator: torch.Generator | None = None,
) -> BlockSplit:
    """Cut ``tokens`` into blocks of ``block_len``; a seeded random choice of them, spread over the whole
    text, becomes the test part.

    ``n_test = round(test_frac * len(tokens) / block_len)`` blocks are tested (at least one). The
    ``n_blocks = len(tokens) // block_len`` whole blocks are cut into ``n_test`` consecutive strata of
    ``n_blocks // n_test`` or one more blocks, and one block is drawn uniformly at random within each
    stratum (``generator`` seeds the draw). Each stratum, a stretch of about ``len(tokens) / n_test``
    tokens, holds exactly one test block, so the test part samples the whole text, where a plain random
    choice of blocks can cluster in one region; any stretch of two strata's length holds a whole test
    block. Two neighbouring strata can still give two adjacent test blocks.

    Training ranges stop ``seq_len`` tokens short of every test block (on both sides), so a training
    window of ``seq_len + 1`` tokens never touches test text.
    """
    check_tokens(tokens)
    _check_fraction("test_frac", test_frac, 0.1)
    _check_positive("block_len", block_len)
    _check_positive("seq_len", seq_len)
    n = len(tokens)
    if block_len <= 2 * seq_len:
        raise ValueError(f"block_len={block_len} must exceed 2 * seq_len={2 * seq_len} so blocks survive the gaps")
    n_blocks = n // block_len
    n_test = max(1, round(test_frac * n / block_len))
    if n_test >= n_blocks:
        fits = [b for b in range(min(block_len - 1, n // 2), 2 * seq_len, -1)  # the largest block_len that works
                if n // b > max(1, round(test_frac * n / b))][:1]
        fix = (f"use a smaller block_len (e.g. {fits[0]})" if fits else
               f"give more text (a split needs at least 2 blocks of more than 2 * seq_len = {2 * seq_len} tokens)")
        raise ValueError(f"{n} tokens make only {n_blocks} blocks of block_len={block_len}; too few for "
                         f"test_frac={test_frac} (a test block and training text); {fix}")
    # Stratum k holds blocks edges[k] .. edges[k + 1] - 1; draw one of them.
    edges = torch.tensor([k * n_blocks // n_test for k in range(n_test + 1)])
    sizes = edges[1:] - edges[:-1]  # (n_test,), each n_blocks // n_test or one more
    offsets = (torch.rand(n_test, generator=generator, dtype=torch.float64) * sizes).long()  # in [0, size)
    chosen = (edges[:-1] + offsets).tolist()  # ascending: one block per stratum
    test = [(i * block_len, (i + 1) * block_len) for i in chosen]
    # Training text: the complement, trimmed by `gap` next to each test block. The tail after the
    # last whole block is training text too.
    gap = seq_len
    train, cursor = [], 0
    for a, b in test:
        lo, hi = cursor, a - gap if a > 0 else 0
        if hi > lo:
            train.append((lo, hi))
        cursor = b + gap
    if cursor < n:
        train.append((cursor, n))
    return BlockSplit(tokens, train, test, gap)
