"""Step 07: GPT-2's own weights in `Model5`, the yardstick for what a model of this size can reach.

OpenAI's GPT-2 small has Model 5's shape (12 blocks, 768 channels, 12 heads) with a context of 1,024 tokens and
the tanh GELU, and was trained on WebText (about 40 GB of web pages). `from_hf` builds the matching `GPTConfig`
from a HuggingFace ``GPT2LMHeadModel`` and copies its weights with `load_gpt2_state_dict` (the loader, below),
which checks everything that changes the function. `pretrained_gpt2` downloads GPT-2 small (about 550 MB) where
the network allows, and otherwise says why not, so a notebook can skip the comparison in one line.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping

import torch
import torch.nn as nn

from .book import OFFLINE_ENV
from .model import GPTConfig, Model5

# HF GPT2Config.activation_function -> GPTConfig.gelu_approximate (the other activations have no counterpart here)
_HF_GELU = {"gelu": "none", "gelu_python": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "gelu_fast": "tanh"}

# HF's Conv1D layers, whose (in, out) weights are the transpose of nn.Linear's
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")


def config_of(hf_config) -> GPTConfig:
    """The `GPTConfig` of a HuggingFace ``GPT2Config`` (an activation with no counterpart in `_HF_GELU` gets
    ``"none"`` here; `load_gpt2_state_dict` then refuses it by name)."""
    return GPTConfig(vocab_size=hf_config.vocab_size, context_length=hf_config.n_positions, n_layer=hf_config.n_layer,
                     n_head=hf_config.n_head, n_embd=hf_config.n_embd, ln_eps=hf_config.layer_norm_epsilon,
                     gelu_approximate=_HF_GELU.get(hf_config.activation_function, "none"))


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


# ---- the loader: HF's tensors into Model5, after checking they fit -----------------------------------------------


def load_gpt2_state_dict(model: Model5, state_dict: Mapping[str, torch.Tensor] | nn.Module, *,
                         config: object | None = None) -> Model5:
    """Copy HuggingFace ``GPT2LMHeadModel`` weights into ``model``, in place, after checking they give its function.

    ``state_dict``: the HF model's state dict, or the HF model itself (anything with ``.state_dict()`` and
    ``.config``). ``config``: the HF ``GPT2Config`` (default: the model's, when the model is given). A bare state
    dict carries the sizes, which are checked; the GELU kind and the LayerNorm eps are checked only with a config.
    Every mismatch is refused with the field's name, both values and the fix: the sizes (vocab_size,
    context_length, n_layer, n_embd, and with a config n_head), an untied head (Model5's head is its token
    embedding), the activation (``gelu_approximate``), ``ln_eps``, HF attention options Model5 does not have, and
    the course's switches that change the output (``scale_logits``, ``log_softmax_output``).

    HF's ``Conv1D`` stores (in, out) weights, the transpose of ``nn.Linear``'s; the causal-mask buffers
    (``attn.bias``, ``attn.masked_bias``) are not parameters here and are skipped. A padded vocabulary
    (``vocab_multiple``) keeps its extra rows.
    """
    if not isinstance(state_dict, Mapping):  # the HF model itself: its weights, and its config unless one is given
        if not callable(getattr(state_dict, "state_dict", None)):
            raise TypeError(f"give a GPT2LMHeadModel or its state dict, got {type(state_dict).__name__}")
        config = getattr(state_dict, "config", None) if config is None else config
        state_dict = state_dict.state_dict()
    for switch in ("scale_logits", "log_softmax_output"):
        if getattr(model.config, switch):
            raise ValueError(f"{switch}: the model has the course's {switch}=True, which changes its output from "
                             f"GPT-2's; build it with gl.GPTConfig(..., {switch}=False)")
    theirs = {k: v for k, v in state_dict.items() if not k.endswith((".attn.bias", ".attn.masked_bias"))}
    if config is not None:
        _check_hf_config(model.config, config)
    _check_gpt2_sizes(model.config, theirs)
    _check_tied(theirs)
    theirs.setdefault("lm_head.weight", theirs["transformer.wte.weight"])  # a state dict saved without the tied head
    _copy_gpt2(model.state_dict(), theirs)
    return model


def _copy_gpt2(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor]) -> None:
    """Copy GPT-2's tensors into ours (Conv1D weights transposed), after checking the names match."""
    missing, extra = set(ours) - set(theirs), set(theirs) - set(ours)
    if missing or extra:
        raise ValueError(
            f"state dict does not fit Model5: missing {sorted(missing)[:5]}, unexpected {sorted(extra)[:5]}; "
            "is it a GPT2LMHeadModel state dict?"
        )
    with torch.no_grad():
        for k, v in theirs.items():
            if k.endswith(_CONV1D):
                v = v.t()
            if k in ("transformer.wte.weight", "lm_head.weight") and v.shape[0] < ours[k].shape[0]:
                ours[k][: v.shape[0]].copy_(v)  # padded vocabulary: the extra rows keep their values
                continue
            if v.shape != ours[k].shape:
                raise ValueError(f"{k}: shape {tuple(v.shape)} does not fit {tuple(ours[k].shape)}; "
                                 "compare the configs")
            ours[k].copy_(v)


def _refuse(field: str, hf_name: str, theirs: object, ours: object) -> None:
    raise ValueError(f"{field}: the GPT-2 weights have {hf_name}={theirs!r}, the model {field}={ours!r}; build it "
                     f"with gl.GPTConfig(..., {field}={theirs!r})")


def _check_hf_config(cfg: GPTConfig, hf: object) -> None:
    """Compare an HF ``GPT2Config`` with ``cfg``: every field that changes the function, by our field's name."""
    sizes = {"vocab_size": "vocab_size", "context_length": "n_positions", "n_layer": "n_layer",
             "n_head": "n_head", "n_embd": "n_embd"}
    for ours, name in sizes.items():
        v = getattr(hf, name, None)
        if v is not None and v != getattr(cfg, ours):
            _refuse(ours, name, v, getattr(cfg, ours))
    act = getattr(hf, "activation_function", None)
    if act is not None:
        if act not in _HF_GELU:
            raise ValueError(f"activation_function={act!r}: Model5 has the exact GELU ('gelu') or its tanh "
                             f"approximation ('gelu_new'), not {act!r}; these weights do not fit it")
        if _HF_GELU[act] != cfg.gelu_approximate:
            raise ValueError(f"gelu_approximate: GPT-2 uses {_HF_GELU[act]!r} (activation_function={act!r}), the "
                             f"model {cfg.gelu_approximate!r}; build it with "
                             f"gl.GPTConfig(..., gelu_approximate={_HF_GELU[act]!r})")
    eps = getattr(hf, "layer_norm_epsilon", None)
    if eps is not None and not math.isclose(eps, cfg.ln_eps, rel_tol=1e-6):
        raise ValueError(f"ln_eps: GPT-2 uses layer_norm_epsilon={eps!r}, the model ln_eps={cfg.ln_eps!r}; build it "
                         f"with gl.GPTConfig(..., ln_eps={eps!r})")
    n_inner = getattr(hf, "n_inner", None)
    if n_inner is not None and n_inner != 4 * cfg.n_embd:
        raise ValueError(f"n_inner={n_inner}: Model5's MLP is 4 * n_embd = {4 * cfg.n_embd} wide; these weights do "
                         "not fit it")
    for option, value in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False)):
        if getattr(hf, option, value) != value:
            raise ValueError(f"{option}={getattr(hf, option)!r}: Model5's attention has GPT-2's {option}={value}; "
                             "these weights do not fit it")


def _check_gpt2_sizes(cfg: GPTConfig, sd: Mapping[str, torch.Tensor]) -> None:
    """The sizes a state dict shows (vocabulary, context, depth, width) against ``cfg``, by field name."""
    for key in ("transformer.wte.weight", "transformer.wpe.weight"):
        if key not in sd:
            raise ValueError(f"the state dict has no {key}; give a GPT2LMHeadModel or its state_dict()")
    (V, C), T = sd["transformer.wte.weight"].shape, sd["transformer.wpe.weight"].shape[0]
    L = len({k.split(".")[2] for k in sd if k.startswith("transformer.h.")})
    found = {"vocab_size": (V, " rows of transformer.wte.weight"),
             "context_length": (T, " rows of transformer.wpe.weight"),
             "n_layer": (L, " blocks transformer.h.*"), "n_embd": (C, " columns of transformer.wte.weight")}
    for field, (theirs, where) in found.items():
        if theirs != getattr(cfg, field):
            raise ValueError(f"{field}: the GPT-2 weights have {theirs}{where}, the model {field}="
                             f"{getattr(cfg, field)}; build it with gl.GPTConfig(..., {field}={theirs})")


def _check_tied(sd: Mapping[str, torch.Tensor]) -> None:
    """Model5's head is its token embedding: weights whose ``lm_head.weight`` differs from it cannot be held."""
    head, wte = sd.get("lm_head.weight"), sd["transformer.wte.weight"]
    if head is None or head is wte:
        return
    if head.shape == wte.shape and (_same_memory(head, wte) or torch.equal(head, wte)):
        return
    diff = (head.float() - wte.float()).abs().max().item() if head.shape == wte.shape else None
    by = f" (by up to {diff:.3g})" if diff is not None else f" (shape {tuple(head.shape)} vs {tuple(wte.shape)})"
    raise ValueError(f"lm_head.weight differs from transformer.wte.weight{by}: these weights have an untied head, "
                     "and Model5's head is its token embedding, one tensor that cannot hold both. Load a model with "
                     "tied embeddings (GPT2Config(tie_word_embeddings=True), as GPT-2's own weights are)")


def _same_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Two views of one tensor (a tied model's state dict), so equal without comparing every value."""
    return a.data_ptr() == b.data_ptr() and a.stride() == b.stride() and a.dtype == b.dtype
