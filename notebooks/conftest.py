"""Loaded when pytest collects this folder (``pytest notebooks --nbval ...``).

The notebooks read two switches from the environment, and the kernels nbval starts inherit it:

- ``GPT_LESSON_QUICK=1`` shrinks only the heavy cells (training steps, model size on a CPU, timing repeats);
  their outputs are marked ``# NBVAL_IGNORE_OUTPUT``, every other cell is compared with the committed run.
- ``GPT_LESSON_OFFLINE=1`` makes ``gl.load_book()`` use the copy of the book shipped with the package,
  so the tests never touch the network.

``setdefault``: a value set on the command line wins (``GPT_LESSON_QUICK=0`` runs the full notebooks).
"""

import os

os.environ.setdefault("GPT_LESSON_QUICK", "1")
os.environ.setdefault("GPT_LESSON_OFFLINE", "1")
