"""Loaded when pytest collects this folder (``pytest notebooks --nbval ...``).

The notebooks read these switches from the environment, and the kernels nbval starts inherit it:

- ``GPT_LESSON_QUICK=1`` shrinks only the heavy cells (training steps, model size on a CPU, timing repeats);
  their outputs are marked ``# NBVAL_IGNORE_OUTPUT`` and followed by a checked cell of facts that would change
  if the result broke; every other cell is compared with the committed run.
- ``GPT_LESSON_OFFLINE=1`` makes ``gl.load_book()`` use the copy of the book shipped with the package,
  so the tests never touch the network.
- ``GPT_LESSON_CACHE`` and ``GPT_LESSON_CHECKPOINT_DIR`` point to a temporary folder, so that a test run never
  reads a newer edition of the book from the user's cache and never overwrites the checkpoint notebook 07 loads.

``setdefault``: a value set on the command line wins (``GPT_LESSON_QUICK=0`` runs the full notebooks).
"""

import atexit
import os
import shutil
import tempfile

import pytest

_scratch = tempfile.mkdtemp(prefix="gpt_lesson_nbval_")
atexit.register(shutil.rmtree, _scratch, ignore_errors=True)

os.environ.setdefault("GPT_LESSON_QUICK", "1")
os.environ.setdefault("GPT_LESSON_OFFLINE", "1")
os.environ.setdefault("GPT_LESSON_CACHE", os.path.join(_scratch, "cache"))
os.environ.setdefault("GPT_LESSON_CHECKPOINT_DIR", os.path.join(_scratch, "checkpoints"))


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker (-m "not slow")
def pytest_collection_modifyitems(items):
    """Every nbval cell is slow: its notebook runs in a kernel. Pytest calls this hook of every conftest loaded,
    with all the items collected, so it is here, where nbval's notebooks are, and marks only theirs."""
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)
