"""The chunked head + cross-entropy: the same loss as ``F.cross_entropy(h @ W.T, targets)``, without
ever holding all (rows, V) logits (823 MB of them for Model 5 at 16x256 in fp32).

Written for fp32 (training on the CPU, where it is the fastest path measured: docs/performance.md).
`Model5.loss` uses it only when asked (``chunk > 0``) and refuses it under autocast, where the plain
path with bf16/fp16 logits is the fast one. `gpt_lesson.step.TrainStep` makes that choice, in one place.
"""

from __future__ import annotations

import torch


class _ChunkedCE(torch.autograd.Function):
    """Cross-entropy of ``(h @ W.T) * scale`` against targets, a chunk of rows at a time.

    The forward pass computes the loss and, while each chunk's probabilities are at hand, the
    gradients for h and W, so no (rows, V) tensor outlives one chunk. Backward only scales them.
    """

    @staticmethod
    def forward(ctx, h, weight, targets, vocab_size: int, scale: float, chunk: int):  # type: ignore[override]
        n = h.shape[0]
        w = weight[:vocab_size]  # (V, C); padded rows take no part
        grad_h = torch.empty_like(h) if h.requires_grad else None
        grad_w = torch.zeros_like(weight) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for a in range(0, n, chunk):
            hc, tc = h[a : a + chunk], targets[a : a + chunk]
            logits = (hc @ w.t()).float()  # (c, V)
            if scale != 1.0:
                logits.mul_(scale)
            lse = torch.logsumexp(logits, dim=1)  # (c,)
            total += (lse - logits.gather(1, tc[:, None]).squeeze(1)).sum()
            if grad_h is None and grad_w is None:
                continue
            # d(loss_sum)/d(logits) = softmax - onehot, computed in place in the logits buffer
            probs = logits.sub_(lse[:, None]).exp_()
            probs[torch.arange(len(tc), device=h.device), tc] -= 1.0
            if scale != 1.0:
                probs.mul_(scale)
            g = probs.to(h.dtype)
            if grad_h is not None:
                torch.mm(g, w, out=grad_h[a : a + chunk])
            if grad_w is not None:
                grad_w[:vocab_size].addmm_(g.t(), hc)
        ctx.save_for_backward(grad_h, grad_w)
        ctx.n = n
        return total / n

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


def chunked_cross_entropy(
    h: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, *, vocab_size: int, scale: float = 1.0, chunk: int = 1024
) -> torch.Tensor:
    """Mean cross-entropy of the logits ``(h @ weight[:vocab_size].T) * scale``; h (N, C), targets (N,)."""
    if not torch.is_grad_enabled():  # evaluation: the forward pass need not precompute any gradient
        h, weight = h.detach(), weight.detach()
    return _ChunkedCE.apply(h, weight, targets, vocab_size, scale, chunk)
