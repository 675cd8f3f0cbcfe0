"""Step 02: GPT-2 tokenization with tiktoken, offline.

`gpt2_encoding()` builds the same encoding as ``tiktoken.get_encoding("gpt2")`` from the BPE file
shipped in this package (``data/gpt2.tiktoken``, byte-identical to OpenAI's ``r50k_base``), so it
needs no network. `encode` gives a 1-D int64 tensor, the form every later step works with.
"""

from __future__ import annotations

import base64
import functools
from importlib import resources

import tiktoken
import torch

BPE_FILE = "gpt2.tiktoken"
EOT_TOKEN = "<|endoftext|>"
EOT_ID = 50256
VOCAB_SIZE = 50257

try:  # the pattern tiktoken itself uses for gpt2 / r50k_base (a faster, equivalent spelling)
    from tiktoken_ext.openai_public import r50k_pat_str as GPT2_PATTERN
except ImportError:  # older tiktoken: the pattern from OpenAI's GPT-2 encoder.py
    GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def _load_ranks() -> dict[bytes, int]:
    """Read the ``<base64 token> <rank>`` lines of the shipped BPE file."""
    raw = (resources.files("gpt_lesson") / "data" / BPE_FILE).read_bytes()
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@functools.lru_cache(maxsize=1)
def gpt2_encoding() -> tiktoken.Encoding:
    """The GPT-2 BPE encoding (50,257 tokens; ``<|endoftext|>`` = 50256), built without network."""
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=_load_ranks(),
        special_tokens={EOT_TOKEN: EOT_ID},
        explicit_n_vocab=VOCAB_SIZE,
    )


def encode(text: str, encoding: tiktoken.Encoding | None = None) -> torch.Tensor:
    """Text -> token ids, shape (N,), int64. ``<|endoftext|>`` in the text is encoded as the special token."""
    enc = encoding or gpt2_encoding()
    ids = enc.encode(text, allowed_special={EOT_TOKEN})
    return torch.tensor(ids, dtype=torch.long)


def decode(ids: torch.Tensor | list[int], encoding: tiktoken.Encoding | None = None) -> str:
    """Token ids (any shape that flattens to a sequence) -> text."""
    enc = encoding or gpt2_encoding()
    if isinstance(ids, torch.Tensor):
        ids = ids.reshape(-1).tolist()
    return enc.decode(list(ids))


def for_display(text: str) -> str:
    """Text the way a reader expects it: Windows line endings shown as plain newlines."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def check_tokens(tokens: torch.Tensor, name: str = "tokens", *, vocab_size: int | None = None) -> None:
    """Raise a clear error unless ``tokens`` is a 1-D integer tensor (what `encode` returns); with ``vocab_size``,
    also unless every id is in 0 … vocab_size - 1 (one pass over the tensor: call it once, not per batch)."""
    check_id_tensor(tokens, name, dims=1, vocab_size=vocab_size)


_SHAPES = {  # dims -> (what the shape must be, how to fix it)
    1: ("1-D (N,)", "flatten it with .reshape(-1)"),
    2: ("of shape (B, T)", "for one sequence of ids use ids[None]"),
}


def check_id_tensor(ids: torch.Tensor, name: str, *, dims: int, vocab_size: int | None = None) -> None:
    """``ids`` must be an integer tensor of ``dims`` dimensions (1: a token vector, 2: a batch) and, with
    ``vocab_size``, hold ids in 0 … vocab_size - 1: otherwise a TypeError/ValueError naming ``name`` and the fix."""
    shape, fix = _SHAPES[dims]
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids (use gpt_lesson.encode), got {type(ids).__name__}")
    if ids.dim() != dims:
        raise ValueError(f"{name} must be {shape}, got shape {tuple(ids.shape)}; {fix}")
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer ids, got dtype {ids.dtype}; convert with .long()")
    if vocab_size is not None and ids.numel():
        lo, hi = (int(v) for v in torch.aminmax(ids))  # one pass, and one wait on a GPU
        if lo < 0 or hi >= vocab_size:
            raise ValueError(
                f"{name}: ids from {lo} to {hi} lie outside the model's vocabulary 0 … {vocab_size - 1} "
                f"(vocab_size={vocab_size}); make them with gpt_lesson.encode, or build the model with the "
                "vocabulary of its ids"
            )
