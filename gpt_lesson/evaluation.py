"""Step 06 (and 08): one evaluation, used by training, the experiments and the benchmark.

An `EvalSet` is a set of windows of a token vector, each ``seq_len + 1`` tokens (inputs and shifted targets):

- `EvalSet.random`: ``n_batches`` random batches of B windows, drawn from a seed. Training's test loss uses it,
  with the same batches at every evaluation, so the points of the curve differ only because the model changed.
- `EvalSet.windows`: every non-overlapping window, so the loss is the loss of the whole test text (notebook 08).

`window_losses` gives the loss of each window, from the model's per-token loss (``reduction="none"``), computed
the way the run computes its loss (its `gpt_lesson.loss.LossPolicy`); `mean_loss` their mean, over every process of
a torchrun job. A training run's test set is drawn from its plan (`EvalSet.for_plan`), whose sizes are checked.
(The module is ``evaluation``, not ``evaluate``, so that ``gpt_lesson.evaluate`` stays the function.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .batches import _check_sizes, epoch_windows, gather_windows, random_starts
from .config import is_int
from .distributed import DistContext, all_reduce_sum
from .loss import FP32, LossPolicy
from .step import eval_mode
from .tokens import check_tokens


@dataclass(frozen=True)
class EvalSet:
    """Windows of ``tokens`` to evaluate on: window i is ``tokens[starts[i] : starts[i] + seq_len + 1]``; the model
    sees ``batch_size`` of them per forward pass."""

    name: str
    tokens: torch.Tensor  # (N,) token ids
    starts: torch.Tensor  # (W,) int64
    seq_len: int
    batch_size: int

    @classmethod
    def random(cls, tokens: torch.Tensor, *, batch_size: int, seq_len: int, n_batches: int, seed: int,
               allowed: torch.Tensor | None = None, name: str = "test") -> EvalSet:
        """``n_batches`` batches of ``batch_size`` random windows: batch i is what `random_batch` draws at its i-th
        call from a generator seeded with ``seed`` (``allowed``: the starts it may use)."""
        if not (is_int(n_batches) and n_batches >= 1):
            raise ValueError(f"n_batches must be a positive integer, got {n_batches!r} (a mean over no batch is NaN)")
        check_tokens(tokens)
        _check_sizes(len(tokens), batch_size, seq_len, tokens="tokens")
        g = torch.Generator(device="cpu").manual_seed(seed)
        starts = random_starts(len(tokens), n_batches * batch_size, seq_len, generator=g, allowed=allowed)
        return cls(name, tokens, starts, seq_len, batch_size)

    @classmethod
    def for_plan(cls, tokens: torch.Tensor, plan) -> EvalSet:
        """A training run's test set: ``plan.train.eval_batches`` random batches of the plan's B×T, seeded with
        ``seed + 1`` (what `EvalSet.random` draws), from test tokens the plan (`gpt_lesson.RunPlan`) checked."""
        c = plan.train
        assert len(tokens) == plan.n_test_tokens, (len(tokens), plan.n_test_tokens)
        g = torch.Generator(device="cpu").manual_seed(c.seed + 1)
        starts = random_starts(len(tokens), c.eval_batches * c.batch_size, plan.seq_len, generator=g)
        return cls("test", tokens, starts, plan.seq_len, c.batch_size)

    @classmethod
    def windows(cls, tokens: torch.Tensor, seq_len: int, *, allowed: torch.Tensor | None = None, name: str = "test",
                batch_size: int = 64) -> EvalSet:
        """Every non-overlapping window of ``tokens`` (of each run of ``allowed`` starts): the whole text, once."""
        check_tokens(tokens)
        _check_sizes(len(tokens), batch_size, seq_len, tokens="tokens")
        return cls(name, tokens, epoch_windows(len(tokens), seq_len, allowed=allowed), seq_len, batch_size)

    def __len__(self) -> int:
        return len(self.starts)

    @property
    def n_tokens(self) -> int:
        """Targets scored: windows × seq_len."""
        return len(self.starts) * self.seq_len

    def starts_per_batch(self) -> Iterator[torch.Tensor]:
        """The window starts of each forward pass, (b,) with b <= batch_size."""
        return iter(self.starts.split(self.batch_size))


LossFn = Callable[..., torch.Tensor]  # (x, y, *, reduction="none") -> (b, T) per-token losses


def _own_losses(model: torch.nn.Module, evalset: EvalSet, loss_policy: LossPolicy, micro_batches: int, rank: int,
                world_size: int, loss_fn: LossFn | None) -> Iterator[torch.Tensor]:
    """(b,) the mean loss of each window of the batches this rank evaluates (batch i on rank i % world_size);
    ``micro_batches`` divides every batch (`_check_micro_batches`, before any work)."""
    device = next(model.parameters()).device
    tokens = evalset.tokens.to(device)
    fn = loss_fn if loss_fn is not None else model.loss
    for i, starts in enumerate(evalset.starts_per_batch()):
        if i % world_size != rank:
            continue
        x, y = gather_windows(tokens, starts, evalset.seq_len)
        x, y = x.long(), y.long()
        for xm, ym in zip(x.split(len(x) // micro_batches), y.split(len(x) // micro_batches)):
            yield loss_policy(fn, xm, ym, reduction="none").float().mean(1)  # (b / micro_batches,)


@torch.no_grad()
def window_losses(model: torch.nn.Module, evalset: EvalSet, *, loss_policy: LossPolicy = FP32,
                  micro_batches: int = 1, loss_fn: LossFn | None = None) -> torch.Tensor:
    """(W,) float32 on the CPU: the mean next-token loss of each window of ``evalset``, in dropout-free mode.

    ``micro_batches``: compute each batch in this many equal pieces (the memory of a training micro-batch).
    ``loss_fn``: ``(x, y, reduction="none") -> (b, T)`` instead of ``model.loss`` (e.g. `logits_loss`).
    """
    _check_micro_batches(micro_batches, evalset)
    with eval_mode(model):
        return torch.cat([w.cpu() for w in _own_losses(model, evalset, loss_policy, micro_batches, 0, 1, loss_fn)])


@torch.no_grad()
def mean_loss(model: torch.nn.Module, evalset: EvalSet, *, loss_policy: LossPolicy = FP32, micro_batches: int = 1,
              dist: DistContext | None = None, loss_fn: LossFn | None = None) -> float:
    """The mean loss over every window of ``evalset`` (every token weighs the same).

    With a distributed ``dist``, rank r evaluates batches r, r + N, … and the sums are all-reduced: every rank
    returns the mean over all windows.
    """
    _check_micro_batches(micro_batches, evalset)
    return _mean_loss(model, evalset, loss_policy, micro_batches, dist, loss_fn)


@torch.no_grad()
def _mean_loss(model: torch.nn.Module, evalset: EvalSet, loss_policy: LossPolicy, micro_batches: int,
               dist: DistContext | None, loss_fn: LossFn | None = None) -> float:
    """`mean_loss` of sizes already checked (a training run's test set and its plan's micro-batches)."""
    rank, world = (dist.rank, dist.world_size) if dist is not None and dist.distributed else (0, 1)
    device = next(model.parameters()).device
    total = torch.zeros((), device=device)
    with eval_mode(model):
        for w in _own_losses(model, evalset, loss_policy, micro_batches, rank, world, loss_fn):
            total += w.sum()
    return (all_reduce_sum(total, dist) / len(evalset)).item()


def _check_micro_batches(micro_batches: int, evalset: EvalSet) -> None:
    if not (is_int(micro_batches) and micro_batches >= 1):
        raise ValueError(f"micro_batches must be a positive integer (pieces per batch), got {micro_batches!r}")
    sizes = {len(b) for b in evalset.starts_per_batch()}
    if any(b % micro_batches for b in sizes):
        raise ValueError(f"micro_batches={micro_batches} does not split the batches of {sorted(sizes)} windows into "
                         "equal pieces; use a divisor of the batch size")


def logits_loss(forward: Callable[[torch.Tensor], torch.Tensor]) -> LossFn:
    """A loss function for a model that returns logits (B, T, V), e.g. HuggingFace's ``GPT2LMHeadModel``
    (``lambda x: hf(input_ids=x).logits``): the same cross-entropy as `Model5.loss`."""
    def loss(x: torch.Tensor, y: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
        logits = forward(x)  # (B, T, V)
        out = F.cross_entropy(logits.flatten(0, 1), y.reshape(-1), reduction=reduction)
        return out if reduction == "mean" else out.view(y.shape)
    return loss


def evaluate(
    model: torch.nn.Module,
    tokens: torch.Tensor,
    *,
    batch_size: int = 16,
    seq_len: int = 256,
    n_batches: int = 8,
    seed: int = 0,
    dtype: torch.dtype | None = None,
    allowed: torch.Tensor | None = None,
    loss_chunk: int = 0,
    micro_batches: int = 1,
    dist: DistContext | None = None,
) -> float:
    """Mean loss over ``n_batches`` random batches of ``tokens``; the same batches for the same seed
    (`EvalSet.random` and `mean_loss` in one call). The token ids are checked against the model's vocabulary once."""
    config = getattr(model, "config", None)
    check_tokens(tokens, vocab_size=getattr(config, "vocab_size", None))
    context = getattr(config, "context_length", None)
    if is_int(seq_len) and context is not None and seq_len > context:
        raise ValueError(f"seq_len={seq_len} exceeds the model's context_length={context}; use seq_len <= {context}")
    if not (is_int(loss_chunk) and loss_chunk >= 0):
        raise ValueError(f"loss_chunk must be 0 (off) or a positive row count, got {loss_chunk!r}")
    evalset = EvalSet.random(tokens, batch_size=batch_size, seq_len=seq_len, n_batches=n_batches, seed=seed,
                             allowed=allowed)
    return mean_loss(model, evalset, loss_policy=LossPolicy.for_run(loss_chunk, dtype), micro_batches=micro_batches,
                     dist=dist)
