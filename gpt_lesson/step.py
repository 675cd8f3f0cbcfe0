"""One training step, written once: `train`, the timer and the benchmark all call `TrainStep`.

forward + loss under the right autocast -> backward (scaled for fp16) -> optional gradient clipping ->
optimizer step (through the gradient scaler). Also the two small context helpers every loop needs:
`autocast` (on or off by dtype) and `eval_mode` (dropout off, training mode restored afterwards).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch.nn.parallel import DistributedDataParallel

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or a no-op context when ``dtype`` is None (fp32)."""
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)


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
    one on this project's CPU (docs/performance.md); PyTorch before 2.4 has it for CUDA only, so elsewhere the
    multi-tensor version is used."""
    params = list(model.parameters())
    if decay_matrices_only:
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, "decay": True},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "decay": False}]
    else:
        groups = [{"params": params, "weight_decay": weight_decay}]
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # "fused=True requires ... devices: ['cuda']" on older PyTorch
            pass
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)


def set_hyperparameters(optimizer: torch.optim.Optimizer, *, lr: float, weight_decay: float) -> None:
    """The learning rate of every group, and the weight decay of every group that has decay (all, unless the
    groups were made with ``decay_matrices_only``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr
        group["weight_decay"] = weight_decay if group.get("decay", True) else 0.0


@dataclass(frozen=True)
class LossPath:
    """How a run computes its loss, decided once (`for_run`) and used by the training step and the evaluation:
    under autocast to ``dtype`` (None: fp32), with the chunked fp32 head + loss when ``chunk > 0``.

    ``path(loss_fn, x, y)`` calls ``loss_fn(x, y)``, passing ``chunk=`` only when it is on, so a plain
    ``(x, y) -> loss`` (HuggingFace's, a DDP wrapper) works unchanged.
    """

    dtype: torch.dtype | None = None
    chunk: int = 0

    @classmethod
    def for_run(cls, loss_chunk: int, dtype: torch.dtype | None) -> "LossPath":
        """The chunked fp32 head + loss when training in fp32 and ``loss_chunk > 0``; the plain path (all logits,
        in bf16/fp16) under autocast, where it is the fast one."""
        return cls(dtype, loss_chunk if dtype is None else 0)

    def __call__(self, loss_fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor, **kw) -> torch.Tensor:
        with autocast(x.device.type, self.dtype):
            return loss_fn(x, y, chunk=self.chunk, **kw) if self.chunk else loss_fn(x, y, **kw)


class TrainStep:
    """``step(x, y)`` does one training step on the batch (x, y), each (B, T), and returns the loss (detached).

    - ``dtype``: autocast dtype (None: fp32). fp16 gets a gradient scaler, which is a no-op otherwise.
    - ``grad_clip``: clip the global gradient norm to this value (None: no clipping).
    - ``loss_chunk``: rows per chunk of the fp32 loss (see `LossPath.for_run`); ``compile``: torch.compile the loss.
    - ``loss_fn``: use this ``(x, y) -> loss`` instead of ``model.loss`` (the benchmark's HuggingFace model).
    - ``grad_accum``: split the batch into this many micro-batches of B / grad_accum rows, backward each,
      then make one update: the gradients (and the returned loss) of the whole batch, in less memory.
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
        if not (isinstance(grad_accum, int) and not isinstance(grad_accum, bool) and grad_accum >= 1):
            raise ValueError(f"grad_accum must be a positive integer (micro-batches per step), got {grad_accum!r}")
        if ddp is not None and loss_fn is not None:
            raise ValueError("give loss_fn or ddp, not both: with ddp the loss is ddp(x, y)")
        self.model, self.optimizer, self.dtype, self.grad_clip = model, optimizer, dtype, grad_clip
        self.grad_accum, self.ddp = grad_accum, ddp
        self.device_type = next(model.parameters()).device.type
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=dtype == torch.float16)
        self.path = LossPath.for_run(loss_chunk, dtype)
        fn = ddp if ddp is not None else loss_fn if loss_fn is not None else model.loss
        self.loss_fn = torch.compile(fn) if compile else fn

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss of (x, y) under this step's autocast (with gradients, without an update)."""
        return self.path(self.loss_fn, x, y)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        k = self.grad_accum
        if x.size(0) % k:
            raise ValueError(f"a batch of {x.size(0)} rows does not split into grad_accum={k} equal micro-batches; "
                             f"use a batch size that is a multiple of {k}")
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
