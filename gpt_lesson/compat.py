"""Where versions are handled: the differences between the torch versions the package supports (torch>=2.2).

Each function asks the newer API first and falls back to the older one, so the rest of the package reads as if
there were one torch.
"""

from __future__ import annotations

import torch


def compiling() -> bool:
    """True while torch.compile traces (a check that reads a value back would break its graph)."""
    compiler = getattr(torch, "compiler", None)
    if compiler is not None and hasattr(compiler, "is_compiling"):
        return compiler.is_compiling()
    return torch._dynamo.is_compiling()  # torch < 2.3


def autocast_enabled(device: torch.device) -> bool:
    """True inside an enabled ``torch.autocast`` for ``device``'s type (cpu, cuda, ...)."""
    try:
        return torch.is_autocast_enabled(device.type)
    except TypeError:  # torch < 2.4 takes no device type
        return torch.is_autocast_cpu_enabled() if device.type == "cpu" else torch.is_autocast_enabled()


def adamw(groups: list[dict], *, lr: float, weight_decay: float, fused: bool) -> torch.optim.AdamW:
    """AdamW over parameter ``groups``, with the fused kernel when asked and this torch has it for the parameters'
    device (before 2.4, CUDA only); otherwise the multi-tensor version, which computes the same update."""
    if fused:
        try:
            return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # "fused=True requires ... devices: ['cuda']" on older PyTorch
            pass
    return torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
