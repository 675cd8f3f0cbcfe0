"""Named sizes of Model 5, each with the training settings it is meant to run with, and the ``auto`` choice.

- ``model5``: the lesson's GPT-2 small (124M parameters, context 256), batches of 16×256, with GPT-2's init.
- ``course``: the course's own Model 5, the same sizes with the course's switches (`COURSE`): logits divided by
  sqrt(768), a log-softmax output (its loss was NLLLoss on those log-probabilities), PyTorch's default init.
- ``cpu``: sized so the lesson's 500 batches train in minutes on a 2-core CPU (docs/performance.md).
- ``experiment``: notebook 08's short runs (`gpt_lesson.experiments`), with the corpus's own vocabulary.
- ``tiny``: for tests.

``preset(name, course=True)`` gives any size the course's switches (``preset("cpu", course=True)``).

The training presets use GPT-2's init: with PyTorch's default N(0, 1) embeddings, tied to the head, and unscaled
logits, the first loss is ~130 (``cpu``) instead of ln(50257) = 10.8 and 500 batches end far higher
(docs/performance.md). ``preset("model5", gpt2_init=False)`` is *PyTorch's default init*, not the course's model:
the course also divided its logits by sqrt(768), which cuts Model 5's untrained loss on random tokens from ~465 to
~17 (measured; ln(50257) = 10.8 is the floor), while its untrained model still repeats its last token
("ionsionsions..."), as the course showed. The presets train with the chunked fp32 loss where they
train in fp32 (a CPU): the same loss without the 823 MB of 16×256×50,257 logits, and the fastest path measured
there.
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


# The course's switches: its forward returned log_softmax(logits / sqrt(n_embd)), with PyTorch's default init.
COURSE = {"gpt2_init": False, "scale_logits": True, "log_softmax_output": True}

PRESETS: dict[str, Preset] = {
    "model5": Preset(GPTConfig(gpt2_init=True), TrainConfig(batch_size=16, seq_len=256, loss_chunk=1024)),
    "course": Preset(GPTConfig(**COURSE), TrainConfig(batch_size=16, seq_len=256, loss_chunk=1024)),
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


def preset(name: str, *, course: bool = False, **overrides) -> GPTConfig:
    """The model config of a named preset, with any fields overridden (``preset("model5", dropout=0.1)``).

    ``course=True``: with the course's switches (`COURSE`: scaled logits, log-softmax output, PyTorch's default
    init) before the overrides, e.g. ``preset("cpu", course=True)`` for the course's model at the CPU's size.
    """
    if not isinstance(course, bool):
        raise TypeError(f"course must be True (the course's switches) or False, got {course!r}")
    return replace(_get(name).model, **({**COURSE, **overrides} if course else overrides))


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
