"""gpt_lesson: train Model 5 (GPT-2 small) on Gulliver's Travels with random batches.

One module per lesson step, in the order of the notebooks:
book (01) -> tokens (02) -> split (03) -> batches (04) -> model, presets, device, timing (05)
-> config, training, step, evaluation, checkpoints (06) -> generation (07) -> experiments (08).
Plots (matplotlib) load only when first used.
"""

from .batches import (SAMPLERS, WindowDataset, batch_starts, coverage, epoch_loader, epoch_windows, gather_windows,
                      loop_batch, random_batch, random_starts)
from .book import Book, BookError, clean_text, load_book, validate_book
from .checkpoints import NonFiniteWeights, checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import autocast_dtype, describe_runtime, in_colab, pick_device, tf32_matmuls
from .distributed import DistContext, all_reduce_mean, all_reduce_sum, barrier, ddp_loss, process_group
from .generation import LESSON_PROMPT, generate, generate_tokens
from .memorization import Copying, copied
from .notebook import checkpoint_path, quick
from .model import CausalSelfAttention, GPTConfig, KVCache, Model5, forward_flops, load_gpt2_state_dict
from .pretrained import from_hf, pretrained_gpt2
from .presets import PRESETS, Preset, choose_preset, preset, train_config
from .split import BlockSplit, block_split, tail_split
from .evaluation import EvalSet, evaluate, logits_loss, mean_loss, window_losses
from .step import LossPath, TrainStep, autocast, eval_mode, make_adamw
from .timing import Timing, load_note, matmul_ceiling, time_forward, time_interleaved, time_it, time_train_step
from .tokens import EOT_ID, VOCAB_SIZE, check_tokens, decode, encode, for_display, gpt2_encoding
from .training import History, Trainer, TrainingDiverged, TrainingInterrupted, train
from . import experiments  # notebook 08: gl.experiments.compare_samplers(...), ...

__version__ = "0.1.0"

_PLOTS = ("plot_coverage", "plot_losses", "plot_timings")


def __getattr__(name: str):
    """``gpt_lesson.plot_losses`` and the other plots import matplotlib on first use, not at ``import gpt_lesson``."""
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    raise AttributeError(f"module 'gpt_lesson' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PLOTS])
