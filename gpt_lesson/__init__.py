"""gpt_lesson: train Model 5 (GPT-2 small) on Gulliver's Travels with random batches.

One module per lesson step, in the order of the notebooks:
book (01) -> tokens (02) -> split (03) -> batches (04) -> model, device, timing (05) -> train (06) -> generate (07).
"""

from .batches import WindowDataset, coverage, epoch_loader, gather_windows, loop_batch, random_batch, random_starts
from .book import Book, BookError, clean_text, load_book, validate_book
from .device import autocast_dtype, describe_runtime, in_colab, pick_device
from .generate import LESSON_PROMPT, generate, generate_tokens
from .model import PRESETS, TRAIN_SHAPES, GPTConfig, KVCache, Model5, choose_preset, load_gpt2_state_dict, preset
from .plots import plot_coverage, plot_losses, plot_timings
from .split import BlockSplit, block_split, tail_split
from .timing import Timing, forward_flops, matmul_ceiling, time_forward, time_interleaved, time_it, time_train_step
from .tokens import EOT_ID, VOCAB_SIZE, check_tokens, decode, encode, for_display, gpt2_encoding
from .train import (
    History,
    TrainingDiverged,
    checkpoint_config,
    evaluate,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    train,
)

__version__ = "0.1.0"
