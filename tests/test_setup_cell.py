"""The notebooks' setup cell and Colab runtime request (scripts/setup_cell.py is their one source).

- every notebook's first code cell is the rendered template: it installs from pyproject's colab-ref, the ref the
  Colab badges open (tests/test_release.py checks that the ref exists and matches each badge);
- the cell installs in Colab only, only when gpt_lesson is not importable yet, and prints one line everywhere;
- only the notebooks that use a GPU ask Colab for one;
- (slow) its requirement, pointed at this clone, installs a package that carries its data files.
Nothing here starts a kernel: the cell is run through IPython's input transformer with a stand-in shell.
"""

import importlib.util
import os
import subprocess
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
REF = setup_cell.colab_ref()
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
    assert setup_cell.IGNORE_TAG in cell.metadata.get("tags", []), "it prints the device: nbval must not compare it"
    assert cell.execution_count == 1
    assert [o.output_type for o in cell.outputs] == ["stream"] and cell.outputs[0].text.count("\n") == 1, "one line"


def test_installs_from_the_ref_of_pyproject():
    (match,) = setup_cell.INSTALL_RE.finditer(CELL)
    assert match["url"] == URL and match["ref"] == REF
    assert f"from {REF} of" in CELL, "the comment names the ref it installs from"
    assert 'find_spec("gpt_lesson") is None' in CELL, "a re-run in the same runtime skips the install"
    assert "[notebooks]" not in CELL, "Colab has Jupyter: install the package only"
    import gpt_lesson

    assert gpt_lesson.__version__ == VERSION, "gpt_lesson.__version__ and pyproject's version must agree"


def test_check_passes():
    assert setup_cell.main(["--check"]) == 0


def test_a_new_ref_alone_keeps_the_stored_output():
    """--write runs a kernel only when the cell's code changed, not for another ref in its install line."""
    output = nbformat.v4.new_output("stream", text="CPU runtime: no CUDA GPU here.\n")
    executed = nbformat.v4.new_code_cell(setup_cell.render(URL, "v9.9.9"), execution_count=1, outputs=[output])
    assert setup_cell.same_template(executed.source) and not setup_cell.needs_run(executed, CELL)
    assert setup_cell.needs_run(nbformat.v4.new_code_cell(setup_cell.render(URL, "v9.9.9")), CELL), "never executed"
    changed = executed.copy()
    changed.source = executed.source.replace("import torch", "import torch  # changed")
    assert not setup_cell.same_template(changed.source) and setup_cell.needs_run(changed, CELL)
    setup_cell.fix_setup_cell(executed, CELL, None)  # no kernel run is needed, so none is given
    assert executed.source == CELL and executed.outputs == [output] and executed.execution_count == 1


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
    """Run the cell with ``gpt_lesson`` importable (``installed``) or not, in Colab or not, with or without a GPU."""
    pytest.importorskip("IPython")
    from IPython.core.inputtransformer2 import TransformerManager

    import torch

    code = TransformerManager().transform_cell(CELL)
    if colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)

    find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "gpt_lesson":
            return find_spec(name) if installed else None
        return find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu is not None)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: gpu)
    shell = _Shell()
    exec(compile(code, "<setup cell>", "exec"), {"get_ipython": lambda: shell, "__name__": "__main__"})
    out = capsys.readouterr().out
    assert out.count("\n") == 1, f"the setup cell prints one line, got {out!r}"
    return shell.magics, out


def test_outside_colab_installs_nothing(monkeypatch, capsys):
    magics, out = _run(monkeypatch, capsys, colab=False, installed=False)
    assert magics == [] and out == "CPU runtime: no CUDA GPU here.\n"
    magics, out = _run(monkeypatch, capsys, colab=False, installed=False, gpu="NVIDIA H200")
    assert magics == [] and out == "GPU runtime: NVIDIA H200\n"


def test_colab_installs_from_the_ref(monkeypatch, capsys):
    magics, out = _run(monkeypatch, capsys, colab=True, installed=False, gpu="Tesla T4")
    assert magics == [("pip", f'install -q "gpt-lesson @ git+{URL}@{REF}"')]
    assert out == "GPU runtime: Tesla T4\n"


def test_colab_rerun_skips_the_install(monkeypatch, capsys):
    magics, out = _run(monkeypatch, capsys, colab=True, installed=True)
    assert magics == []
    assert "Runtime > Change runtime type > T4 GPU" in out


_INSTALLED_CHECK = """
import sys
from pathlib import Path

import gpt_lesson

target = Path(sys.argv[1]).resolve()
assert Path(gpt_lesson.__file__).resolve().is_relative_to(target), gpt_lesson.__file__
book = gpt_lesson.load_book(offline=True)
assert book.source == "shipped", book
assert gpt_lesson.decode(gpt_lesson.encode("Gulliver's Travels")) == "Gulliver's Travels"
print("ok")
"""


@pytest.mark.slow
def test_requirement_installs_from_a_clone_with_its_data(tmp_path):
    """The setup cell's requirement, its URL pointed at this clone, installs (pip builds it from git at the ref), and
    that copy alone loads the shipped book and the tokenizer with no network: a git install carries gpt_lesson/data."""
    ref = next(setup_cell.INSTALL_RE.finditer(CELL))["ref"]
    if subprocess.run(["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd=ROOT,
                      capture_output=True).returncode:
        pytest.skip(f"{ROOT} has no git ref {ref} (tests/test_release.py fails on that)")
    target = tmp_path / "target"
    # file://localhost/...: the PEP 508 parser of older pips (23.x) wants a host in the URL; git accepts it
    requirement = f"gpt-lesson @ git+file://localhost{ROOT.as_posix()}@{ref}"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--no-build-isolation",
           "--target", str(target), requirement]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for name in ("829-0.txt", "gpt2.tiktoken", "NOTICE.md"):
        assert (target / "gpt_lesson" / "data" / name).is_file(), f"the git install lacks gpt_lesson/data/{name}"
    dead = "http://127.0.0.1:9"  # any download would fail: offline means the shipped files or nothing
    env = {**os.environ, "PYTHONPATH": str(target), "GPT_LESSON_OFFLINE": "1", "GPT_LESSON_CACHE": str(tmp_path / "c"),
           "TIKTOKEN_CACHE_DIR": str(tmp_path / "t"), "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "NO_PROXY": ""}
    done = subprocess.run([sys.executable, "-c", _INSTALLED_CHECK, str(target)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.splitlines()[-1:] == ["ok"], done.stdout[-2000:] + done.stderr[-2000:]
