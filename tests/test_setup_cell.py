"""The notebooks' setup cell and Colab runtime request (scripts/setup_cell.py is their one source).

- every notebook's first code cell is the rendered template, pinned to the tag of pyproject's version;
- the cell installs in Colab only, only when that version is missing, and prints one line everywhere;
- only the notebooks that use a GPU ask Colab for one.
Nothing here starts a kernel: the cell is run through IPython's input transformer with a stand-in shell.
"""

import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

_spec = importlib.util.spec_from_file_location("setup_cell", ROOT / "scripts" / "setup_cell.py")
setup_cell = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(setup_cell)

URL, VERSION = setup_cell.pyproject()
PATHS = setup_cell.notebooks()
CELL = setup_cell.render()


def test_eight_notebooks_each_on_the_runtime_it_needs():
    assert [p.name[:2] for p in PATHS] == ["01", "02", "03", "04", "05", "06", "07", "08"]
    assert not set(setup_cell.GPU_NOTEBOOKS) & set(setup_cell.CPU_NOTEBOOKS)
    assert not setup_cell.wants_gpu("08_experiments.ipynb")  # many small runs: Colab's CPU runtime
    with pytest.raises(SystemExit, match="add '09' to GPU_NOTEBOOKS or CPU_NOTEBOOKS"):
        setup_cell.wants_gpu("09_new.ipynb")


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_setup_cell_is_the_template(path):
    cell = setup_cell.setup_cell(nbformat.read(path, as_version=4))
    assert cell.source == CELL, "run: python scripts/setup_cell.py --write"
    assert cell.source.splitlines()[0] == "# NBVAL_IGNORE_OUTPUT", "it prints the device: nbval must not compare it"
    assert cell.execution_count == 1
    assert [o.output_type for o in cell.outputs] == ["stream"] and cell.outputs[0].text.count("\n") == 1, "one line"


def test_pinned_to_the_tag_of_the_version():
    (match,) = setup_cell.INSTALL_RE.finditer(CELL)
    assert match["url"] == URL and match["version"] == VERSION
    assert f"@v{VERSION}\"" in CELL and f'installed != "{VERSION}"' in CELL
    assert "[notebooks]" not in CELL, "Colab has Jupyter: install the package only"
    import gpt_lesson

    assert gpt_lesson.__version__ == VERSION, "gpt_lesson.__version__ and pyproject's version must agree"


def test_check_passes():
    assert setup_cell.main(["--check"]) == 0


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_only_gpu_notebooks_ask_colab_for_a_gpu(path):
    nb = nbformat.read(path, as_version=4)
    md = nb.metadata
    if path.name[:2] in ("05", "06", "07"):
        assert md.get("accelerator") == "GPU" and md.get("colab", {}).get("gpuType") == "T4"
    else:
        assert "accelerator" not in md and "gpuType" not in md.get("colab", {})
    assert setup_cell.fix_metadata(nb, path) == []


def test_fix_metadata_rewrites_both_ways(tmp_path):
    nb = nbformat.v4.new_notebook(metadata={"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}})
    assert setup_cell.fix_metadata(nb, Path("02_x.ipynb"))
    assert nb.metadata == {"colab": {"provenance": []}}
    assert setup_cell.fix_metadata(nb, Path("06_x.ipynb"))
    assert nb.metadata == {"accelerator": "GPU", "colab": {"gpuType": "T4", "provenance": []}}


class _Shell:
    """Stands in for get_ipython(): records the line magics the cell runs."""

    def __init__(self):
        self.magics = []

    def run_line_magic(self, name, line, *args, **kwargs):
        self.magics.append((name, line))


def _run(monkeypatch, capsys, *, colab, installed, gpu=None):
    IPython = pytest.importorskip("IPython")
    from IPython.core.inputtransformer2 import TransformerManager

    import torch

    code = TransformerManager().transform_cell(CELL)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    def version(name):
        assert name == "gpt-lesson"
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: gpu)
    shell = _Shell()
    exec(compile(code, "<setup cell>", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"the setup cell prints one line, got {out!r}"
    return shell.magics, out


def test_outside_colab_installs_nothing(monkeypatch, capsys):
    magics, out = _run(monkeypatch, capsys, colab=False, installed=None)
    assert magics == [] and out == "CPU runtime: no CUDA GPU here.\n"
    magics, out = _run(monkeypatch, capsys, colab=False, installed=None, gpu="NVIDIA H200")
    assert magics == [] and out == "GPU runtime: NVIDIA H200\n"


@pytest.mark.parametrize("installed", [None, "0.0.1"])
def test_colab_installs_the_pinned_version(monkeypatch, capsys, installed):
    magics, out = _run(monkeypatch, capsys, colab=True, installed=installed, gpu="Tesla T4")
    assert magics == [("pip", f'install -q "gpt-lesson @ git+{URL}@v{VERSION}"')]
    assert out == "GPU runtime: Tesla T4\n"


def test_colab_rerun_skips_the_install(monkeypatch, capsys):
    magics, out = _run(monkeypatch, capsys, colab=True, installed=VERSION)
    assert magics == []
    assert "Runtime > Change runtime type > T4 GPU" in out
