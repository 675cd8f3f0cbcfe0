"""Step 05: Model 5, the lesson's GPT-2-small decoder, in one readable file.

Shapes in comments: B batch, T time (tokens), C channels (n_embd), H heads, D = C // H, V vocabulary.

Parameter names and shapes follow GPT-2's (``transformer.h.0.attn.c_attn.weight`` ...), so GPT-2's own weights
load into it (`gpt_lesson.pretrained`). The switches the course's sibling lessons need are config fields, all
off by default, so one class serves every lesson instead of a pasted copy per notebook.

The named sizes (presets) are in `gpt_lesson.presets`, the chunked loss in `gpt_lesson.loss`, the differences
between torch versions in `gpt_lesson.compat`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

from .compat import autocast_enabled, compiling
from .config import is_number
from .loss import chunked_cross_entropy
from .tokens import check_id_tensor


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50257
    context_length: int = 256
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    ln_eps: float = 1e-5
    # Switches, all off by default (the course's Model 5 as it is):
    dropout: float = 0.0  # after embeddings, in attention, on both residual branches
    gpt2_init: bool = False  # Linear and Embedding ~ N(0, 0.02), zero biases; else PyTorch's defaults
    scale_logits: bool = False  # the course's logits / sqrt(n_embd)
    log_softmax_output: bool = False  # forward returns log-probabilities instead of logits
    # GPT-2's own choices, off by default (the course's Model 5 does not make them):
    gelu_approximate: str = "none"  # "tanh": GPT-2's GELU ("gelu_new"); "none": the exact erf GELU
    scaled_residual_init: bool = False  # with gpt2_init: residual projections ~ N(0, 0.02 / sqrt(2 * n_layer))
    # A speed option (measured in docs/performance.md); it does not change what the model computes.
    vocab_multiple: int = 1  # pad the embedding / head rows up to a multiple of this (e.g. 64)

    def __post_init__(self) -> None:
        for f in ("vocab_size", "context_length", "n_layer", "n_head", "n_embd", "vocab_multiple"):
            v = getattr(self, f)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"GPTConfig.{f} must be a positive integer, got {v!r}")
        if not (is_number(self.ln_eps) and self.ln_eps > 0):
            raise ValueError(f"GPTConfig.ln_eps must be a small positive number (GPT-2's is 1e-5), got {self.ln_eps!r}")
        if not (is_number(self.dropout) and 0.0 <= self.dropout < 1.0):
            raise ValueError(f"GPTConfig.dropout must be a number in [0, 1), got {self.dropout!r}")
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}; each head gets n_embd / n_head "
                f"channels. Use e.g. n_embd={self.n_head * max(1, round(self.n_embd / self.n_head))}."
            )
        if self.gelu_approximate not in ("none", "tanh"):
            raise ValueError(f"gelu_approximate must be 'none' (exact GELU) or 'tanh' (GPT-2's), "
                             f"got {self.gelu_approximate!r}")
        if self.scaled_residual_init and not self.gpt2_init:
            raise ValueError("scaled_residual_init scales GPT-2's init; it needs gpt2_init=True")

    @property
    def padded_vocab(self) -> int:
        m = self.vocab_multiple
        return (self.vocab_size + m - 1) // m * m

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown GPTConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


class KVCache:
    """Keys and values of the tokens seen so far, per layer: each (B, H, context_length, D), filled to ``pos``."""

    def __init__(self, config: GPTConfig, batch_size: int, device, dtype) -> None:
        shape = (batch_size, config.n_head, config.context_length, config.n_embd // config.n_head)
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.pos = 0
        self.capacity = config.context_length


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)  # fused Q, K, V projection (with bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout
        self.resid_drop = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # each (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, H, T, D)
        causal = True
        if cache is not None:
            p = cache.pos
            cache.k[layer][:, :, p : p + T] = k
            cache.v[layer][:, :, p : p + T] = v
            k, v = cache.k[layer][:, :, : p + T], cache.v[layer][:, :, : p + T]
            if p > 0:
                if T != 1:
                    raise ValueError("with a filled KV cache, feed one new token at a time")
                causal = False  # one query at the end may look at every cached key
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=causal, dropout_p=self.dropout if self.training else 0.0
        )  # (B, H, T, D)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_drop(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.approximate = cfg.gelu_approximate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # exact (erf) GELU as the course by default; "tanh" is GPT-2's approximation
        return self.drop(self.c_proj(F.gelu(self.c_fc(x), approximate=self.approximate)))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=cfg.ln_eps)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=cfg.ln_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), cache, layer)
        return x + self.mlp(self.ln_2(x))


class Model5(nn.Module):
    """GPT-2-style decoder: token + position embeddings, ``n_layer`` blocks, final LayerNorm, tied head."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        V, C = config.padded_vocab, config.n_embd
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(V, C),
                wpe=nn.Embedding(config.context_length, C),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
                ln_f=nn.LayerNorm(C, eps=config.ln_eps),
            )
        )
        self.lm_head = nn.Linear(C, V, bias=False)
        self.lm_head.weight = self.transformer.wte.weight  # tied: one Parameter, counted once
        if config.gpt2_init:
            self.apply(_gpt2_init)
        if config.scaled_residual_init:  # GPT-2: each block adds two branches to the residual stream
            std = 0.02 / math.sqrt(2 * config.n_layer)
            for block in self.transformer.h:
                nn.init.normal_(block.attn.c_proj.weight, mean=0.0, std=std)
                nn.init.normal_(block.mlp.c_proj.weight, mean=0.0, std=std)

    def num_params(self, include_position: bool = True) -> int:
        """Parameters counted once each (the tied head is the token embedding)."""
        n = sum(p.numel() for p in self.parameters())
        return n if include_position else n - self.transformer.wpe.weight.numel()

    def hidden(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T) -> final hidden states (B, T, C), after the last LayerNorm.

        The ids are checked first (`check_ids`): an id outside the vocabulary is a ValueError that names it,
        not an ``IndexError`` deep in the embedding. That is a min and a max over the B×T ids; on CUDA it waits
        for the GPU, so it is skipped on the CUDA training hot path (gradients on) and inside ``torch.compile``,
        where `train` has already checked the whole token vector once.
        """
        if not (isinstance(idx, torch.Tensor) and idx.is_cuda and torch.is_grad_enabled() or compiling()):
            check_ids(idx, self.config.vocab_size)
        B, T = idx.shape
        start = cache.pos if cache is not None else 0
        if start + T > self.config.context_length:
            raise ValueError(
                f"{start + T} positions exceed context_length={self.config.context_length}; crop the input "
                f"to its last {self.config.context_length} tokens (generate() does this for you)"
            )
        pos = torch.arange(start, start + T, device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))  # (B, T, C)
        for i, block in enumerate(self.transformer.h):
            x = block(x, cache, i)
        if cache is not None:
            cache.pos += T
        return self.transformer.ln_f(x)

    def _head(self, h: torch.Tensor) -> torch.Tensor:
        """Hidden states (..., C) -> logits (..., V) with the course's scaling if switched on."""
        logits = self.lm_head(h)
        if self.config.padded_vocab != self.config.vocab_size:
            logits = logits[..., : self.config.vocab_size]
        if self.config.scale_logits:
            logits = logits / math.sqrt(self.config.n_embd)
        return logits

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T) -> logits (B, T, V), or log-probabilities when ``log_softmax_output`` is on."""
        out = self._head(self.hidden(idx, cache))
        return F.log_softmax(out, dim=-1) if self.config.log_softmax_output else out

    def loss(self, idx: torch.Tensor, targets: torch.Tensor, *, chunk: int = 0,
             reduction: str = "mean") -> torch.Tensor:
        """Next-token cross-entropy of idx (B, T) against targets (B, T); log-softmax output + NLL gives the same.

        ``reduction="mean"``: the mean over every target (a scalar); ``"none"``: (B, T), the loss of each token.
        Targets of -100 (PyTorch's ``ignore_index``) take no part (their "none" loss is 0).
        ``chunk=0``: the plain path, all (B, T, V) logits at once. ``chunk > 0``: the head and the loss this
        many rows at a time (`gpt_lesson.loss`), in fp32 only: under autocast it is refused.
        """
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")
        if not (targets.is_cuda and torch.is_grad_enabled() or compiling()):  # as for the ids (`hidden`)
            check_targets(targets, idx, self.config.vocab_size)
        h = self.hidden(idx)  # (B, T, C)
        if chunk:
            if autocast_enabled(h.device):
                raise ValueError("the chunked loss is written for fp32; under autocast use chunk=0")
            loss = chunked_cross_entropy(
                h.view(-1, h.size(-1)),
                self.lm_head.weight,
                targets.reshape(-1),
                vocab_size=self.config.vocab_size,
                scale=1 / math.sqrt(self.config.n_embd) if self.config.scale_logits else 1.0,
                chunk=chunk,
                reduction=reduction,
            )
        else:
            logits = self._head(h)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), reduction=reduction)
        return loss if reduction == "mean" else loss.view(targets.shape)


def check_ids(idx: torch.Tensor, vocab_size: int) -> None:
    """Raise a clear error unless ``idx`` is a (B, T) integer tensor of ids in 0 … vocab_size - 1."""
    check_id_tensor(idx, "token ids", dims=2, vocab_size=vocab_size)


def check_targets(targets: torch.Tensor, idx: torch.Tensor, vocab_size: int) -> None:
    """Raise a clear error unless ``targets`` has the shape of ``idx`` and holds ids in 0 … vocab_size - 1, or -100
    (PyTorch's ignore_index: that position takes no part in the loss)."""
    if not isinstance(targets, torch.Tensor) or targets.shape != getattr(idx, "shape", None):
        raise ValueError(f"targets must be a tensor of the inputs' shape {tuple(getattr(idx, 'shape', ()))}, got "
                         f"{tuple(targets.shape) if isinstance(targets, torch.Tensor) else type(targets).__name__}")
    if targets.dtype.is_floating_point or targets.dtype.is_complex or targets.dtype == torch.bool:
        raise TypeError(f"targets must be integer token ids, got dtype {targets.dtype}; convert with targets.long()")
    bad = targets[(targets != -100) & ((targets < 0) | (targets >= vocab_size))]
    if bad.numel():
        raise ValueError(f"target {int(bad[0])} is outside the model's vocabulary 0 … {vocab_size - 1} "
                         f"(vocab_size={vocab_size}); targets are token ids, or -100 for a position to ignore")


def forward_flops(config: GPTConfig, batch_size: int, seq_len: int) -> int:
    """Matmul FLOPs of one forward pass of (B, T) tokens (PaLM's count, appendix B).

    Per token: 2 FLOPs per weight of every matrix (the blocks' linears and the V×C head) plus
    4·n_layer·T·C for attention scores and their weighted sum (counted as if not causal).
    Training costs 3× this (forward + twice as much backward). Biases and LayerNorms are ignored.
    """
    C, L, V = config.n_embd, config.n_layer, config.vocab_size
    matmul_weights = L * 12 * C * C + V * C
    per_token = 2 * matmul_weights + 4 * L * seq_len * C
    return per_token * batch_size * seq_len


def _gpt2_init(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, mean=0.0, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Embedding):
        nn.init.normal_(m.weight, mean=0.0, std=0.02)
