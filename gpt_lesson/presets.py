"""Named sizes of Model 5, each with the training settings it is meant to run with, and the ``auto`` choice.

- ``model5``: the lesson's GPT-2 small (124M parameters, context 256), batches of 16×256.
- ``cpu``: sized so the lesson's 500 batches train in minutes on a 2-core CPU (docs/performance.md).
- ``experiment``: notebook 08's short runs (`gpt_lesson.experiments`), with the corpus's own vocabulary.
- ``tiny``: for tests.

Both training presets use GPT-2's init: with PyTorch's default N(0, 1) embeddings, tied to the head, the
first loss is ~130 instead of ln(50257) = 10.8 and 500 batches end far higher (docs/performance.md).
``preset("model5", gpt2_init=False)`` is the course's init, which makes the untrained model repeat its
last token ("ionsionsions..."). Both train with the chunked fp32 loss where they train in fp32 (a CPU):
the same loss without the 823 MB of 16×256×50,257 logits, and the fastest path measured there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .model import GPTConfig
from .config import TrainConfig


@dataclass(frozen=True)
class Preset:
    """A model config and the `TrainConfig` it trains with by default."""

    model: GPTConfig
    train: TrainConfig


PRESETS: dict[str, Preset] = {
    "model5": Preset(GPTConfig(gpt2_init=True), TrainConfig(batch_size=16, seq_len=256, loss_chunk=1024)),
    "cpu": Preset(
        GPTConfig(context_length=128, n_layer=4, n_head=6, n_embd=192, gpt2_init=True),
        TrainConfig(batch_size=8, seq_len=128, loss_chunk=1024),
    ),
    # Notebook 08's many short runs: ~0.7M parameters once the vocabulary is the corpus's own tokens
    # (`gpt_lesson.experiments.Vocab`, ~10k for Gulliver); most of the time goes into the V×64 head.
    "experiment": Preset(
        GPTConfig(context_length=64, n_layer=2, n_head=4, n_embd=64, gpt2_init=True),
        TrainConfig(batch_size=16, seq_len=64, loss_chunk=256),
    ),
    "tiny": Preset(GPTConfig(context_length=32, n_layer=2, n_head=2, n_embd=32), TrainConfig(batch_size=4, seq_len=32)),
}


def _get(name: str) -> Preset:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; valid presets: {', '.join(PRESETS)} (or 'auto' via choose_preset)")
    return PRESETS[name]


def preset(name: str, **overrides) -> GPTConfig:
    """The model config of a named preset, with any fields overridden (``preset("model5", dropout=0.1)``)."""
    return replace(_get(name).model, **overrides)


def train_config(name: str, **overrides) -> TrainConfig:
    """The training settings of a named preset, with any fields overridden (``train_config("cpu", steps=50)``)."""
    return _get(name).train.with_overrides(**overrides)


def choose_preset(device: torch.device | str) -> tuple[str, str]:
    """The ``auto`` choice: (preset name, one-line reason). Model 5 on a GPU, the small preset on a CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        return "model5", "a GPU is present, so it trains the lesson's Model 5 (~124M parameters)"
    return "cpu", (
        "no GPU: Model 5 trains too slowly on a CPU (notebook 05 times its forward pass on this machine), so the "
        "small 'cpu' preset (4 blocks, 192 dims, context 128, batch 8) trains instead"
    )
