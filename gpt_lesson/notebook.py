"""What the notebooks read from their environment, so that no cell of theirs has to: a side helper.

The test run (``pytest --nbval``, see notebooks/conftest.py) sets two variables before it starts each kernel:
``GPT_LESSON_QUICK=1`` shrinks only the heavy cells (fewer steps, a smaller model on a CPU, fewer repeats), and
``GPT_LESSON_CHECKPOINT_DIR`` points to a temporary folder, so that a test run never reads or overwrites your
checkpoint. A student sets neither: `quick` is then False and `checkpoint_path` is under ``checkpoints/``.
"""

from __future__ import annotations

import os

QUICK_ENV = "GPT_LESSON_QUICK"
CHECKPOINT_DIR_ENV = "GPT_LESSON_CHECKPOINT_DIR"


def quick() -> bool:
    """True under the test run (``GPT_LESSON_QUICK=1``): heavy cells then do less of the same work."""
    return os.environ.get(QUICK_ENV) == "1"


def checkpoint_path(name: str = "model5.pt") -> str:
    """Where the notebooks keep a checkpoint: ``checkpoints/<name>``, or under ``$GPT_LESSON_CHECKPOINT_DIR``."""
    return os.path.join(os.environ.get(CHECKPOINT_DIR_ENV) or "checkpoints", name)
