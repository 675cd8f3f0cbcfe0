"""Step 07: GPT-2's own weights in `Model5`, the yardstick for what a model of this size can reach.

OpenAI's GPT-2 small has Model 5's shape (12 blocks, 768 channels, 12 heads) with a context of 1,024 tokens and
the tanh GELU, and was trained on WebText (about 40 GB of web pages). `from_hf` builds the matching `GPTConfig`
from a HuggingFace ``GPT2LMHeadModel`` and copies its weights with `load_gpt2_state_dict`, which checks everything
that changes the function. `pretrained_gpt2` downloads GPT-2 small (about 550 MB) where the network allows, and
otherwise says why not, so a notebook can skip the comparison in one line.
"""

from __future__ import annotations

import os

from .book import OFFLINE_ENV
from .model import GPTConfig, Model5, load_gpt2_state_dict

_TANH = ("gelu_new", "gelu_pytorch_tanh", "gelu_fast")  # HuggingFace's names for the tanh approximation


def config_of(hf_config) -> GPTConfig:
    """The `GPTConfig` of a HuggingFace ``GPT2Config``."""
    return GPTConfig(vocab_size=hf_config.vocab_size, context_length=hf_config.n_positions, n_layer=hf_config.n_layer,
                     n_head=hf_config.n_head, n_embd=hf_config.n_embd, ln_eps=hf_config.layer_norm_epsilon,
                     gelu_approximate="tanh" if hf_config.activation_function in _TANH else "none")


def from_hf(hf_model) -> Model5:
    """A `Model5` that computes what the HuggingFace ``GPT2LMHeadModel`` ``hf_model`` computes (the same weights)."""
    return load_gpt2_state_dict(Model5(config_of(hf_model.config)), hf_model)


def pretrained_gpt2(name: str = "gpt2", *, offline: bool | None = None) -> tuple[Model5 | None, str]:
    """(GPT-2's weights in `Model5`, a line saying where they came from), or (None, why they could not be had):
    offline (``offline=True`` or ``$GPT_LESSON_OFFLINE``), transformers missing, or no network."""
    if offline if offline is not None else os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false"):
        return None, f"skipped: offline ({OFFLINE_ENV}=1 or offline=True); GPT-2's weights need the network"
    try:
        from transformers import GPT2LMHeadModel
    except ImportError:
        return None, "skipped: transformers is not installed (pip install transformers)"
    try:
        hf = GPT2LMHeadModel.from_pretrained(name)
    except Exception as e:  # no network, a firewall, a hub error: the lesson goes on without the yardstick
        return None, f"skipped: could not download {name!r} ({type(e).__name__}: {str(e).splitlines()[0][:100]})"
    return from_hf(hf).eval(), f"{name} from HuggingFace: {sum(p.numel() for p in hf.parameters()):,} parameters"
