"""Which device to run on, which autocast dtype fits it, and what runtime we are in (Colab, GPU type)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def pick_device(requested: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` / None -> CUDA if available, else CPU. Asking for CUDA without a GPU is an error."""
    if requested in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(requested)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {str(requested)!r} was asked for, but PyTorch sees no CUDA GPU. Use device='cpu' or 'auto'; "
            "in Colab choose Runtime > Change runtime type > T4 GPU."
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RuntimeError(f"{dev} does not exist: {torch.cuda.device_count()} GPU(s) visible")
    return dev


def autocast_dtype(device: torch.device | str) -> torch.dtype | None:
    """The mixed-precision dtype for training on ``device``: None on CPU (fp32 only; CPUs without bf16
    hardware run bf16 several times slower), bf16 on GPUs that support it natively (compute capability
    >= 8.0: A100, H100, L4...), fp16 (with a gradient scaler) on older ones such as Colab's T4."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def in_colab() -> bool:
    return "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in os.environ


def describe_runtime(device: torch.device | str | None = None) -> str:
    """One line: the device, its GPU name and the training dtype that will be used."""
    device = pick_device("auto" if device is None else device)
    where = "Colab" if in_colab() else "local"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        dt = autocast_dtype(device)
        return f"{where} runtime, GPU {name}, training in {str(dt).replace('torch.', '')} autocast"
    hint = " (in Colab: Runtime > Change runtime type > T4 GPU)" if in_colab() else ""
    return f"{where} runtime, CPU only, {torch.get_num_threads()} threads, training in float32{hint}"


@contextmanager
def tf32_matmuls(device: torch.device | str) -> Iterator[None]:
    """On CUDA, fp32 matmuls on tensor cores (TF32, Ampere and newer) inside the block; the previous settings come
    back after it, so library code leaves PyTorch's global switches as it found them. Nothing on a CPU."""
    if torch.device(device).type != "cuda":
        yield
        return
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = (matmul.allow_tf32, cudnn.allow_tf32)
    matmul.allow_tf32 = cudnn.allow_tf32 = True
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def autocast(device_type: str, dtype: torch.dtype | None):
    """``torch.autocast`` to ``dtype``, or a no-op context when ``dtype`` is None (fp32)."""
    return torch.autocast(device_type, dtype=dtype, enabled=dtype is not None)
