"""Notebook 07 runs alone, in a fresh runtime without notebook 06's checkpoint (what a Colab badge gives).

The first cells of 07, up to its model and the checked line after it, run in a new kernel with an empty checkpoint
folder: the notebook must say that it trains a stand-in, and the stand-in must have learned (the checked line).
nbval runs 07 after 06, so there it takes 06's checkpoint; this test covers the other branch.
"""

from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")
pytestmark = pytest.mark.slow  # starts a Jupyter kernel

NB = Path(__file__).resolve().parents[1] / "notebooks" / "07_generate.ipynb"


def _outputs(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def test_07_trains_a_stand_in_and_says_so_without_a_checkpoint(tmp_path, monkeypatch):
    nb = nbformat.read(NB, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    model_cell = next(i for i, c in enumerate(code) if "gl.load_checkpoint(found, model)" in c.source)
    nb.cells = code[: model_cell + 2]  # through the checked line after the model cell
    for key, value in {"GPT_LESSON_QUICK": "1", "GPT_LESSON_OFFLINE": "1",
                       "GPT_LESSON_CHECKPOINT_DIR": str(tmp_path / "none"),
                       "GPT_LESSON_CACHE": str(tmp_path / "cache")}.items():
        monkeypatch.setenv(key, value)
    resources = {"metadata": {"path": str(tmp_path)}}
    nbclient.NotebookClient(nb, timeout=900, kernel_name="python3", resources=resources).execute()
    said = _outputs(nb.cells[model_cell])
    assert "no checkpoint of notebook 06 here: training a stand-in" in said
    checked = _outputs(nb.cells[model_cell + 1])
    assert "test loss more than 1 nat below a uniform guess over the vocabulary (ln 50257 = 10.8): True" in checked
