"""One training step, written once: `train`, the timer and the benchmark all call `TrainStep`.

forward + loss under the run's `gpt_lesson.loss.LossPolicy` -> backward (scaled for fp16) -> optional gradient
clipping -> optimizer step (through the gradient scaler). Also `eval_mode` (dropout off, training mode restored
afterwards), and the optimizer: `make_adamw`, `set_lr` (once per step), `set_weight_decay` (on a resume).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from typing import Callable, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel

from . import compat
from .loss import LossPolicy

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Evaluation mode for the duration of a ``with`` block; the model's previous mode comes back after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def make_adamw(model: torch.nn.Module, *, lr: float, weight_decay: float, fused: bool = True,
               decay_matrices_only: bool = False) -> torch.optim.AdamW:
    """AdamW with weight decay on every parameter (as the course), or, with ``decay_matrices_only``, in two groups:
    2-D weights (linear layers, embeddings) with decay, 1-D tensors (biases, LayerNorm gains) without; each group
    is marked ``decay`` True/False. The fused kernel updates 124M weights about 5x faster than the multi-tensor
    one on this project's CPU (docs/performance.md); where this torch lacks it, `compat.adamw` takes the
    multi-tensor version."""
    params = list(model.parameters())
    if decay_matrices_only:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, "decay": True},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "decay": False}]
    else:
        groups = [{"params": params, "weight_decay": weight_decay}]
    return compat.adamw(groups, lr=lr, weight_decay=weight_decay, fused=fused)


def set_weight_decay(optimizer: torch.optim.Optimizer, weight_decay: float) -> None:
    """The weight decay of every group that has decay (all, unless the groups were made with
    ``decay_matrices_only``): a resumed run may change it, and its optimizer state brought back the old value."""
    for group in optimizer.param_groups:
        group["weight_decay"] = weight_decay if group.get("decay", True) else 0.0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    """Give every group the learning rate ``lr`` (the one place a run writes it, once per step); returns it."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


class TrainStep:
    """``step(x, y)`` does one training step on the batch (x, y), each (B, T), and returns the loss (detached).

    - ``dtype``: autocast dtype (None: fp32). fp16 gets a gradient scaler, which is a no-op otherwise.
    - ``grad_clip``: clip the global gradient norm to this value (None: no clipping).
    - ``loss_chunk``: rows per chunk of the fp32 loss (see `LossPolicy.for_run`); ``compile``: torch.compile the
      loss.
    - ``loss_fn``: use this ``(x, y) -> loss`` instead of ``model.loss`` (the benchmark's HuggingFace model).
    - ``grad_accum``: split the batch into this many micro-batches of B / grad_accum rows, backward each,
      then make one update: the gradients (and the returned loss) of the whole batch, in less memory. The
      sizes are the caller's to check (`gpt_lesson.RunPlan` does): B must be a multiple of grad_accum.
    - ``ddp``: `gpt_lesson.distributed.ddp_loss` around ``model``: the loss is computed through it, and its
      gradient all-reduce runs once per step, after the last micro-batch.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        dtype: torch.dtype | None = None,
        grad_clip: float | None = None,
        loss_chunk: int = 0,
        compile: bool = False,
        loss_fn: LossFn | None = None,
        grad_accum: int = 1,
        ddp: DistributedDataParallel | None = None,
    ) -> None:
        assert isinstance(grad_accum, int) and grad_accum >= 1, grad_accum
        if ddp is not None and loss_fn is not None:
            raise ValueError("give loss_fn or ddp, not both: with ddp the loss is ddp(x, y)")
        self.model, self.optimizer, self.dtype, self.grad_clip = model, optimizer, dtype, grad_clip
        self.grad_accum, self.ddp = grad_accum, ddp
        self.device_type = next(model.parameters()).device.type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=dtype == torch.float16)
        self.loss_policy = LossPolicy.for_run(loss_chunk, dtype)
        fn = ddp if ddp is not None else loss_fn if loss_fn is not None else model.loss
        self.loss_fn = torch.compile(fn) if compile else fn

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of (x, y) under this step's autocast (with gradients, without an update)."""
        return self.loss_policy(self.loss_fn, x, y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = self.grad_accum
        assert x.size(0) % k == 0, f"{x.size(0)} rows do not split into {k} micro-batches"
        self.optimizer.zero_grad(set_to_none=True)
        loss = torch.zeros((), device=x.device)
        for i, (xm, ym) in enumerate(zip(x.split(x.size(0) // k), y.split(y.size(0) // k))):
            # Each micro-loss is scaled by 1/k: the summed gradients are those of the mean loss over the batch.
            with self._sync_gradients(i == k - 1):
                micro = self.loss(xm, ym) / k
                self.scaler.scale(micro).backward()
            loss += micro.detach()
        if self.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss

    def _sync_gradients(self, last: bool):
        """DDP all-reduces the gradients in the backward of the last micro-batch only (``no_sync`` before it)."""
        return self.ddp.no_sync() if self.ddp is not None and not last else nullcontext()
