"""Step 04: batches of (input, target) windows.

The lesson's way, `random_batch`: draw B random start positions, build a (B, T+1) index tensor,
gather the tokens in one indexing operation, and split into inputs X = window[:, :-1] and targets
Y = window[:, 1:] (so Y[b, t] = X[b, t+1]). No Dataset, no Python loop.

The classic way, for comparison: `WindowDataset` + `epoch_loader`, one pass over non-overlapping
windows. `coverage` counts how often each token position was seen, given the windows drawn.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from .config import SAMPLERS, is_int
from .tokens import check_tokens


def _check_sizes(n_tokens: int, batch_size: int, seq_len: int, *, tokens: str = "n_tokens") -> None:
    """Sizes of a batch of windows: positive integers, and a window of seq_len + 1 tokens that fits.

    ``tokens``: how the caller gave the token count, for the message (``"n_tokens"``, or a tensor's name).
    """
    if tokens == "n_tokens" and not (is_int(n_tokens) and n_tokens >= 0):
        raise ValueError(f"n_tokens must be an integer >= 0 (the length of the token vector), got {n_tokens!r}")
    if not (is_int(batch_size) and batch_size > 0):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (is_int(seq_len) and seq_len > 0):
        raise ValueError(f"seq_len must be a positive integer, got {seq_len!r}")
    if seq_len >= n_tokens:
        have = f"n_tokens={n_tokens:,}" if tokens == "n_tokens" else f"{tokens} holds {n_tokens:,}"
        fix = f"use seq_len <= {n_tokens - 1:,} or more text" if n_tokens >= 2 else "give more text"
        raise ValueError(f"a window of seq_len={seq_len:,} needs seq_len + 1 = {seq_len + 1:,} tokens, but {have}; "
                         f"{fix}")


def random_starts(
    n_tokens: int,
    batch_size: int,
    seq_len: int,
    *,
    generator: torch.Generator | None = None,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """(B,) int64 random start positions, uniform over every valid start 0 … n_tokens - seq_len - 1.

    ``allowed`` (1-D) restricts the choice to those starts (e.g. `BlockSplit.starts`); each must be a valid start
    (`check_allowed`, a min and a max over them). Drawn on the generator's device (CPU when no generator is given).
    """
    _check_sizes(n_tokens, batch_size, seq_len)
    device = generator.device if generator is not None else "cpu"
    if allowed is None:
        # randint's upper bound is exclusive: the last start, n - T - 1, is reachable.
        return torch.randint(0, n_tokens - seq_len, (batch_size,), generator=generator, device=device)
    check_allowed(allowed, n_tokens, seq_len)
    pick = torch.randint(0, len(allowed), (batch_size,), generator=generator, device=device)
    return allowed.to(device)[pick]


def gather_windows(tokens: torch.Tensor, starts: torch.Tensor, seq_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """tokens (N,), starts (B,) -> X, Y of shape (B, T) with Y[:, t] = X[:, t + 1], in the dtype of ``tokens``.

    The same values as notebook 04's ``tokens[starts[:, None] + torch.arange(T + 1)]``, gathered as whole rows:
    ``unfold`` views every window of T + 1 tokens without copying, ``index_select`` copies the B chosen ones.
    That avoids building and walking a (B, T+1) index tensor: faster on a CPU (measured in notebook 04 and in
    docs/performance.md, 1.4× to 2× at B = 16).

    The shapes and dtypes are checked; the start values too (a min and a max over B starts), except on CUDA, where
    reading them back would wait for the GPU at every training step: there the callers' starts (`random_starts`,
    `batch_starts`, `EvalSet`) are valid by construction.
    """
    check_tokens(tokens)
    _check_sizes(len(tokens), 1, seq_len, tokens="tokens")
    on_gpu = isinstance(starts, torch.Tensor) and starts.is_cuda
    _check_starts(starts, "starts", len(tokens), seq_len, empty_ok=True, values=not on_gpu)
    windows = tokens.unfold(0, seq_len + 1, 1)  # (N - T, T+1), a view: row s is tokens[s : s + T + 1]
    window = windows.index_select(0, starts.to(tokens.device))  # (B, T+1), one gather
    return window[:, :-1], window[:, 1:]


def random_batch(
    tokens: torch.Tensor,
    batch_size: int = 16,
    seq_len: int = 256,
    *,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The lesson's sampler: X, Y of shape (B, T), int64, on ``device`` (default: where ``tokens`` is).

    For speed on a GPU, move ``tokens`` there once and pass a generator on that device: the whole
    batch is then drawn and gathered on the GPU with no host-device copy.
    """
    check_tokens(tokens)
    _check_sizes(len(tokens), batch_size, seq_len, tokens="tokens")
    starts = random_starts(len(tokens), batch_size, seq_len, generator=generator, allowed=allowed)
    x, y = gather_windows(tokens, starts, seq_len)
    if x.dtype != torch.long:  # int64 for nn.Embedding and cross_entropy; convert B*T tokens, not all N
        x, y = x.long(), y.long()
    if device is not None and torch.device(device) != x.device:
        x, y = x.to(device), y.to(device)
    return x, y


def loop_batch(
    tokens: torch.Tensor, batch_size: int, seq_len: int, *, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same draw as `random_batch`, written as a Python loop over the batch (for comparison only)."""
    check_tokens(tokens)
    tokens = tokens.long()  # int64 like random_batch, whatever integer dtype came in
    starts = random_starts(len(tokens), batch_size, seq_len, generator=generator)
    xs = [tokens[s : s + seq_len] for s in starts.tolist()]
    ys = [tokens[s + 1 : s + seq_len + 1] for s in starts.tolist()]
    return torch.stack(xs), torch.stack(ys)


class WindowDataset(Dataset):
    """Windows of a token vector: item i is (X, Y), each (T,), starting at i * stride."""

    def __init__(self, tokens: torch.Tensor, seq_len: int, stride: int | None = None) -> None:
        check_tokens(tokens)
        _check_sizes(len(tokens), 1, seq_len, tokens="tokens")
        if stride is not None and not (is_int(stride) and stride > 0):
            raise ValueError(f"stride must be a positive integer (tokens from one window's start to the next; "
                             f"None: seq_len), got {stride!r}")
        self.tokens, self.seq_len = tokens.long(), seq_len
        self.stride = seq_len if stride is None else stride

    def __len__(self) -> int:
        return (len(self.tokens) - self.seq_len - 1) // self.stride + 1

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= i < len(self):
            raise IndexError(f"window {i} out of range for {len(self)} windows")
        s = (i % len(self)) * self.stride
        w = self.tokens[s : s + self.seq_len + 1]
        return w[:-1], w[1:]

    def start(self, i: int) -> int:
        return i * self.stride


def epoch_loader(
    tokens: torch.Tensor,
    batch_size: int = 16,
    seq_len: int = 256,
    *,
    stride: int | None = None,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader that visits every window of `WindowDataset` once per epoch (shuffled, seeded)."""
    check_tokens(tokens)  # first: a (1, N) tensor would otherwise be reported as "1 token"
    _check_sizes(len(tokens), batch_size, seq_len, tokens="tokens")
    ds = WindowDataset(tokens, seq_len, stride)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator, drop_last=drop_last)


def coverage(starts: torch.Tensor, seq_len: int, n_tokens: int) -> torch.Tensor:
    """(N,) int64: how many drawn windows had each position among their inputs X = tokens[s : s + T].

    Built with a difference array: +1 at each start, -1 just past its window, then a running sum.
    ``starts`` may have any shape (e.g. a run's (steps, B) table).
    """
    _check_sizes(n_tokens, 1, seq_len)
    if isinstance(starts, torch.Tensor):
        starts = starts.reshape(-1)
    _check_starts(starts, "starts", n_tokens, seq_len, empty_ok=True)
    starts = starts.long().cpu()
    delta = torch.zeros(n_tokens + 1, dtype=torch.long)
    delta.index_add_(0, starts, torch.ones_like(starts))
    delta.index_add_(0, starts + seq_len, -torch.ones_like(starts))
    return delta.cumsum(0)[:n_tokens]


# ---- The start table of a whole run, for each sampler --------------------------------------------------------

def check_allowed(allowed: torch.Tensor, n_tokens: int, seq_len: int) -> None:
    """``allowed`` must be a non-empty 1-D integer tensor of valid starts 0 … n_tokens - seq_len - 1."""
    _check_starts(allowed, "allowed", n_tokens, seq_len)


def _check_starts(starts: torch.Tensor, name: str, n_tokens: int, seq_len: int, *, empty_ok: bool = False,
                  values: bool = True) -> None:
    """``starts``: a 1-D integer tensor of window starts (non-empty unless ``empty_ok``), each in
    0 … n_tokens - seq_len - 1 (read only with ``values``: a min and a max, a wait on a GPU)."""
    if not isinstance(starts, torch.Tensor):
        raise TypeError(f"{name} must be a 1-D integer tensor of start positions, got {type(starts).__name__}")
    if starts.dim() != 1 or (len(starts) == 0 and not empty_ok):
        raise ValueError(f"{name} must be a {'' if empty_ok else 'non-empty '}1-D integer tensor of start positions, "
                         f"got shape {tuple(starts.shape)}")
    if starts.dtype.is_floating_point or starts.dtype.is_complex or starts.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer start positions, got dtype {starts.dtype}")
    if not values or len(starts) == 0:
        return
    lo, hi = (int(v) for v in torch.aminmax(starts))
    last = n_tokens - seq_len - 1
    if lo < 0 or hi > last:
        what = "starts" if name == "starts" else f"{name} starts"
        raise ValueError(f"{what} must lie in 0 … {last} ({n_tokens:,} tokens, seq_len={seq_len}: a window needs "
                         f"seq_len + 1 tokens); got the start {lo if lo < 0 else hi}. Pass starts into the same "
                         "token vector.")


def epoch_windows(n_tokens: int, seq_len: int, *, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """(W,) int64 starts of non-overlapping windows: the classic dataset's items.

    Without ``allowed``: 0, T, 2T, … (`WindowDataset`'s windows). With ``allowed``: every T-th start of each
    run of consecutive allowed starts (for a `BlockSplit`, the windows of each training range).
    """
    _check_sizes(n_tokens, 1, seq_len)
    if allowed is not None:
        check_allowed(allowed, n_tokens, seq_len)
    return _windows(n_tokens, seq_len, allowed)


def _windows(n_tokens: int, seq_len: int, allowed: torch.Tensor | None) -> torch.Tensor:
    """`epoch_windows` of sizes already checked."""
    if allowed is None:
        return torch.arange(0, n_tokens - seq_len, seq_len)
    s = allowed.long().cpu().unique()  # sorted
    new_run = torch.ones(len(s), dtype=torch.bool)
    new_run[1:] = s[1:] != s[:-1] + 1
    run_first = s[new_run][new_run.long().cumsum(0) - 1]  # (len(s),) the first start of each start's run
    return s[(s - run_first) % seq_len == 0]


def _permutation_stream(items: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """(n,) items in epochs: a fresh random permutation of all of them, one after another."""
    if n == 0:
        return items[:0]
    k = -(-n // len(items))  # epochs needed
    return torch.cat([items[torch.randperm(len(items), generator=generator)] for _ in range(k)])[:n]


def batch_starts(
    n_tokens: int,
    steps: int,
    batch_size: int,
    seq_len: int,
    *,
    seed: int,
    sampler: str = "random",
    allowed: torch.Tensor | None = None,
) -> torch.Tensor:
    """(steps, B) int64: the start positions of every step's batch, drawn up front on the CPU from ``seed``.

    - ``"random"`` (the lesson's): each start uniform over the valid (or ``allowed``) starts, with replacement;
      row s is what `random_starts` draws at its s-th call from a generator seeded with ``seed``.
    - ``"epoch"`` (a shuffled DataLoader): the non-overlapping windows of `epoch_windows`, each exactly once
      per epoch, in a new order every epoch.
    - ``"without_replacement"``: random starts, none repeated within an epoch, an epoch being every valid
      (or ``allowed``) start once.

    For the last two, the batches cut one stream of epochs into rows of B, so a batch may hold the end of one
    epoch and the start of the next. Draws are sequential, so a longer run begins with the batches of a shorter
    one, and a resumed run redraws exactly the batches of an unbroken one.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(map(repr, SAMPLERS))}, got {sampler!r}")
    if not (is_int(steps) and steps >= 0):
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    _check_sizes(n_tokens, batch_size, seq_len)
    if allowed is not None:
        check_allowed(allowed, n_tokens, seq_len)
    return draw_starts(n_tokens, steps, batch_size, seq_len, seed=seed, sampler=sampler, allowed=allowed)


def draw_starts(n_tokens: int, steps: int, batch_size: int, seq_len: int, *, seed: int, sampler: str,
                allowed: torch.Tensor | None) -> torch.Tensor:
    """`batch_starts` for sizes already checked (by `batch_starts`, or by `gpt_lesson.RunPlan`): (steps, B) int64."""
    assert sampler in SAMPLERS and steps >= 0 and 0 < seq_len < n_tokens, (sampler, steps, seq_len, n_tokens)
    if allowed is not None:
        allowed = allowed.long().cpu()
    g = torch.Generator(device="cpu").manual_seed(seed)
    n = steps * batch_size
    if sampler == "random":  # what `random_starts` draws, without checking the sizes again
        if allowed is None:
            return torch.randint(0, n_tokens - seq_len, (n,), generator=g).view(steps, batch_size)
        return allowed[torch.randint(0, len(allowed), (n,), generator=g)].view(steps, batch_size)
    if sampler == "epoch":
        items = _windows(n_tokens, seq_len, allowed)
    else:
        items = torch.arange(n_tokens - seq_len) if allowed is None else allowed.unique()
    return _permutation_stream(items, n, g).view(steps, batch_size)
