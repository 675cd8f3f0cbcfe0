"""The chunked head + cross-entropy: the same loss as ``F.cross_entropy(h @ W.T, targets)``, without
ever holding all (rows, V) logits (823 MB of them for Model 5 at 16x256 in fp32).

Written for fp32 (training on the CPU, where it is the fastest path measured: docs/performance.md).
`Model5.loss` uses it only when asked (``chunk > 0``) and refuses it under autocast, where the plain
path with bf16/fp16 logits is the fast one. Targets equal to ``IGNORE_INDEX`` (-100, PyTorch's) take no part,
as in ``F.cross_entropy``.

`LossPolicy` is the one place that decides how a run computes its loss (plain or chunked, under which autocast):
the training step, the evaluation and the experiments all call the loss through it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .device import autocast

IGNORE_INDEX = -100


class _ChunkedCE(torch.autograd.Function):
    """Mean cross-entropy of ``(h @ W.T) * scale`` against targets, a chunk of rows at a time.

    The forward pass computes the loss and, while each chunk's probabilities are at hand, the
    gradients for h and W, so no (rows, V) tensor outlives one chunk. Backward only scales them.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, vocab_size: int, scale: float, chunk: int):  # type: ignore[override]
        w = weight[:vocab_size]  # (V, C); padded rows take no part
        grad_h = torch.empty_like(h) if h.requires_grad else None
        grad_w = torch.zeros_like(weight) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for a in range(0, h.shape[0], chunk):
            hc, tc = h[a : a + chunk], targets[a : a + chunk]
            keep = tc != IGNORE_INDEX  # (c,)
            tc = tc.masked_fill(~keep, 0)
            logits = (hc @ w.t()).float()  # (c, V)
            if scale != 1.0:
                logits.mul_(scale)
            lse = torch.logsumexp(logits, dim=1)  # (c,)
            total += ((lse - logits.gather(1, tc[:, None]).squeeze(1)) * keep).sum()
            if grad_h is None and grad_w is None:
                continue
            # d(loss_sum)/d(logits) = softmax - onehot, computed in place in the logits buffer; 0 for ignored rows
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(len(tc), device=h.device), tc] -= 1.0
            if scale != 1.0:
                probs.mul_(scale)
            if not keep.all():
                probs[~keep] = 0.0
            g = probs.to(h.dtype)
            if grad_h is not None:
                torch.mm(g, w, out=grad_h[a : a + chunk])
            if grad_w is not None:
                grad_w[:vocab_size].addmm_(g.t(), hc)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n = (targets != IGNORE_INDEX).sum().item()
        return total / ctx.n  # NaN when every target is ignored, as F.cross_entropy

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        s = grad_out / ctx.n
        return (
            grad_h * s if grad_h is not None else None,
            grad_w * s if grad_w is not None else None,
            None,
            None,
            None,
            None,
        )


@torch.no_grad()
def _row_losses(h, weight, targets, vocab_size: int, scale: float, chunk: int) -> torch.Tensor:
    """(N,) the loss of each row (0 where the target is ignored), a chunk at a time; no gradient."""
    w = weight[:vocab_size]
    out = torch.empty(h.shape[0], dtype=torch.float32, device=h.device)
    for a in range(0, h.shape[0], chunk):
        tc = targets[a : a + chunk]
        keep = tc != IGNORE_INDEX
        logits = (h[a : a + chunk] @ w.t()).float() * scale  # (c, V)
        picked = logits.gather(1, tc.masked_fill(~keep, 0)[:, None]).squeeze(1)
        out[a : a + chunk] = (torch.logsumexp(logits, dim=1) - picked) * keep
    return out


def chunked_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, vocab_size: int, scale: float = 1.0,
    chunk: int = 1024, reduction: str = "mean",
) -> torch.Tensor:
    """Cross-entropy of the logits ``(h @ weight[:vocab_size].T) * scale``; h (N, C), targets (N,).

    ``reduction="mean"``: the mean over the targets that are not ignored (a scalar, with gradients);
    ``"none"``: (N,) per row, for evaluation only (no gradient).
    """
    if reduction == "none":
        if torch.is_grad_enabled() and (h.requires_grad or weight.requires_grad):
            raise ValueError("reduction='none' of the chunked loss is for evaluation: call it under torch.no_grad()")
        return _row_losses(h, weight, targets, vocab_size, scale, chunk)
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    if not torch.is_grad_enabled():  # evaluation: the forward pass need not precompute any gradient
        h, weight = h.detach(), weight.detach()
    return _ChunkedCE.apply(h, weight, targets, vocab_size, scale, chunk)


@dataclass(frozen=True)
class LossPolicy:
    """How a run computes its loss, decided once (`for_run`): under autocast to ``dtype`` (None: fp32), with the
    chunked fp32 head + loss when ``chunk > 0``.

    ``policy(loss_fn, x, y)`` calls ``loss_fn(x, y)`` under that autocast, passing ``chunk=`` only when it is on, so
    a plain ``(x, y) -> loss`` (HuggingFace's, a DDP wrapper) works unchanged.
    """

    dtype: torch.dtype | None = None
    chunk: int = 0

    @classmethod
    def for_run(cls, loss_chunk: int, dtype: torch.dtype | None) -> LossPolicy:
        """The chunked fp32 head + loss when training in fp32 and ``loss_chunk > 0``; the plain path (all logits,
        in bf16/fp16) under autocast, where it is the fast one."""
        return cls(dtype, loss_chunk if dtype is None else 0)

    def __call__(self, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        with autocast(x.device.type, self.dtype):
            return loss_fn(x, y, chunk=self.chunk, **kw) if self.chunk else loss_fn(x, y, **kw)


FP32 = LossPolicy()  # no autocast, all logits at once
