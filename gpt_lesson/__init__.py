"""gpt_lesson: train Model 5 (GPT-2 small) on Gulliver's Travels with random batches.

One module per lesson step, in the order of the notebooks:
book (01) -> tokens (02) -> split (03) -> batches (04) -> model, presets, device, timing (05)
-> config, plan, training, step, loss, evaluation, checkpoints, language_shape, learning (06)
-> generation, memorization, pretrained, baselines (07) -> verdicts, experiments (08).
Plots (matplotlib) load only when first used.
"""

from .batches import (SAMPLERS, WindowDataset, batch_starts, coverage, epoch_loader, epoch_windows, gather_windows,
                      loop_batch, random_batch, random_starts)
from .book import Book, BookError, clean_text, load_book, shipped_book, validate_book
from .checkpoints import NonFiniteWeights, checkpoint_config, load_checkpoint, read_checkpoint, save_checkpoint
from .config import TrainConfig
from .device import autocast, autocast_dtype, describe_runtime, in_colab, pick_device, tf32_matmuls
from .distributed import DistContext, all_reduce_mean, all_reduce_sum, barrier, ddp_loss, process_group
from .generation import LESSON_PROMPT, GenerationTime, generate, generate_tokens, time_generation, window_keep
from .memorization import Copying, Extraction, copied, extraction
from .learning import Watch, learning_summary
from .language_shape import SampleShape, TextShape, likeness, sample_shapes, shape_of, vocabulary, words_of
from .notebook import checkpoint_path, quick
from .model import CausalSelfAttention, GPTConfig, KVCache, Model5, forward_flops
from .pretrained import from_hf, load_gpt2_state_dict, pretrained_gpt2
from .presets import PRESETS, Preset, choose_preset, preset, train_config
from .split import BlockSplit, block_split, tail_split
from .evaluation import EvalSet, evaluate, logits_loss, mean_loss, window_losses
from .loss import LossPolicy
from .plan import RunPlan
from .step import TrainStep, eval_mode, make_adamw
from .timing import Timing, load_note, matmul_ceiling, time_forward, time_interleaved, time_it, time_train_step
from .tokens import EOT_ID, VOCAB_SIZE, check_tokens, decode, encode, for_display, gpt2_encoding
from .training import History, Trainer, TrainingDiverged, TrainingInterrupted, train
from .verdicts import Verdict, check, not_measured, ratio_verdict, verdict
from .baselines import Choice, bigram_loss, choose_alpha, choose_beta, held_out_split, unigram_loss, unigram_probs

__version__ = "0.1.0"

_PLOTS = ("plot_coverage", "plot_learning", "plot_losses", "plot_timings")


def __getattr__(name: str):
    """``gpt_lesson.plot_losses`` and the other plots import matplotlib on first use, not at ``import gpt_lesson``;
    ``gpt_lesson.experiments`` (notebook 08) is imported on first use too."""
    if name in _PLOTS:
        from . import plots

        return getattr(plots, name)
    if name == "experiments":
        import importlib

        return importlib.import_module(".experiments", __name__)  # binds gpt_lesson.experiments: called once
    raise AttributeError(f"module 'gpt_lesson' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PLOTS, "experiments"})
