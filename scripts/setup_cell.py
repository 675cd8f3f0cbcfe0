#!/usr/bin/env python3
"""The notebooks' setup cell and Colab runtime request, from one template and pyproject.toml.

Every notebook's first code cell is ``render()``: in Colab it installs this package from the git ref the Colab
badges open (``[tool.gpt-lesson] colab-ref`` of pyproject.toml: ``main`` between releases, ``vX.Y.Z`` in a release
commit) of ``[project.urls] Repository``, without the ``notebooks`` extra (Colab has Jupyter), and only if
``gpt_lesson`` is not importable yet, so a re-run in the same runtime takes seconds (and does not update it);
everywhere it prints the runtime in one line. Outside Colab it installs nothing. It is a Colab form cell (``# @title
... { display-mode: "form" }``): Colab shows it as one titled line, so the first cell a student reads is the lesson;
elsewhere it is plain code. Its output names the device, so it carries the ``nbval-ignore-output`` tag.

The notebooks' metadata asks Colab for a GPU runtime only in the notebooks that use one (``GPU_NOTEBOOKS``).

    python scripts/setup_cell.py --check   # report what is out of date; exit 1 if anything is (tests do this)
    python scripts/setup_cell.py --write   # rewrite the setup cells and the metadata that are out of date

``--write`` changes only the first code cell and the notebook-level metadata. A setup cell whose source
changed is executed once, alone, in a fresh "python3" kernel (cwd notebooks/), and its output is stored with it
(execution count 1); every other cell and output is kept as it is. Run it where no GPU is, as the tests do: the
stored line is then "CPU runtime: no CUDA GPU here." (nbval does not compare it). A cell that differs only in its
install line (a new ref or address) keeps its output without a kernel: outside Colab that line never runs.
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"

# Notebooks that use a GPU (05 times it, 06 trains on it, 07 generates with the model 06 trained):
# their metadata asks Colab for a GPU runtime; the others run on Colab's default CPU runtime
# (01-04 prepare data; 08 trains many runs of a small model, which a GPU would barely speed up).
GPU_NOTEBOOKS = ("05", "06", "07")
CPU_NOTEBOOKS = ("01", "02", "03", "04", "08")
COLAB_GPU = "T4"  # Colab's free GPU

IGNORE_TAG = "nbval-ignore-output"  # the setup cell prints the device: nbval must not compare it (a tag, not a
# comment line, because Colab wants the form's "# @title" line first)

TEMPLATE = '''\
# @title Setup: installs gpt_lesson in Colab, prints the runtime {{ display-mode: "form" }}
# In Colab, once per runtime: install gpt_lesson (it ships the book and the GPT-2 tokenizer) from {ref} of
# its GitHub repository, the ref this notebook's Colab badge opens. If gpt_lesson is importable already, the install
# is skipped: a re-run is fast but does not update it (Runtime > Disconnect and delete runtime for a fresh one).
# Elsewhere this cell installs nothing: install gpt_lesson yourself first (see the README). It prints the runtime.
import importlib.util
import sys

if "google.colab" in sys.modules:
    if importlib.util.find_spec("gpt_lesson") is None:
        {install_line}
import torch

if torch.cuda.is_available():
    print("GPU runtime:", torch.cuda.get_device_name(0))
elif "google.colab" in sys.modules:
    print("CPU runtime. Notebooks 05-07 want a GPU: Runtime > Change runtime type > {gpu} GPU, then run again.")
else:
    print("CPU runtime: no CUDA GPU here.")'''

# The install line as it stands in the cell (what scripts/release.py and the tests look for).
INSTALL_RE = re.compile(
    r'^(?P<indent>[ \t]*)%pip install -q "gpt-lesson @ git\+(?P<url>[^"@]+)@(?P<ref>[^"@]+)"$', re.MULTILINE
)


def _pyproject(path: Path) -> tuple[dict, str]:
    text = path.read_text(encoding="utf-8")
    return (tomllib.loads(text) if tomllib is not None else {}), text


def pyproject(path: Path = ROOT / "pyproject.toml") -> tuple[str, str]:
    """``([project.urls] Repository`` without a trailing slash or ``.git``, ``[project] version``)."""
    data, text = _pyproject(path)
    if data:
        url, version = data["project"]["urls"]["Repository"], data["project"]["version"]
    else:  # Python 3.10: plain 'Repository = "..."' and 'version = "..."' lines are all we need
        url = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
        version = re.search(r'^version\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
    return url.rstrip("/").removesuffix(".git"), version


def colab_ref(path: Path = ROOT / "pyproject.toml") -> str:
    """``[tool.gpt-lesson] colab-ref``: the git ref the badges open and the setup cell installs from."""
    data, text = _pyproject(path)
    if data:
        return data["tool"]["gpt-lesson"]["colab-ref"]
    return re.search(r'^colab-ref\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)


def install_line(url: str, ref: str) -> str:
    """The Colab install: the package only (Colab has Jupyter and torch), from ``ref`` of the repository."""
    return f'%pip install -q "gpt-lesson @ git+{url}@{ref}"'


def render(url: str | None = None, ref: str | None = None) -> str:
    """The setup cell for the repository at ``url`` and git ref ``ref`` (default: both from pyproject.toml)."""
    url = url if url is not None else pyproject()[0]
    ref = ref if ref is not None else colab_ref()
    return TEMPLATE.format(ref=ref, install_line=install_line(url, ref), gpu=COLAB_GPU)


def same_template(source: str) -> bool:
    """True when ``source`` is this template rendered for some address and ref (perhaps not today's): it then
    prints what today's cell prints where ``--write`` runs it, outside Colab, where the install line never runs."""
    found = list(INSTALL_RE.finditer(source))
    return len(found) == 1 and source == render(found[0]["url"], found[0]["ref"])


def notebooks() -> list[Path]:
    return sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def wants_gpu(path: Path | str) -> bool:
    number = Path(path).name[:2]
    if number not in GPU_NOTEBOOKS + CPU_NOTEBOOKS:
        raise SystemExit(
            f"{Path(path).name}: add {number!r} to GPU_NOTEBOOKS or CPU_NOTEBOOKS in scripts/setup_cell.py"
        )
    return number in GPU_NOTEBOOKS


def fix_metadata(nb, path: Path) -> list[str]:
    """Ask Colab for a GPU in GPU_NOTEBOOKS only; return what was wrong (empty: up to date)."""
    md = nb.metadata
    colab = md.get("colab", {})
    if wants_gpu(path):
        if md.get("accelerator") == "GPU" and colab.get("gpuType") == COLAB_GPU:
            return []
        md["accelerator"] = "GPU"
        md.setdefault("colab", {})["gpuType"] = COLAB_GPU
        return [f"{path.name}: metadata should ask Colab for a {COLAB_GPU} GPU"]
    if "accelerator" not in md and "gpuType" not in colab:
        return []
    md.pop("accelerator", None)
    colab.pop("gpuType", None)
    return [f"{path.name}: metadata should not ask Colab for a GPU (this notebook does not use one)"]


def setup_cell(nb):
    code = [c for c in nb.cells if c.cell_type == "code"]
    return code[0] if code else None


def needs_run(cell, cell_source: str) -> bool:
    """Whether writing ``cell_source`` into ``cell`` needs a kernel: its source differs, and not just in the install
    line of an executed cell (that line runs only in Colab, so the stored output would not change)."""
    if cell is None or (cell.source == cell_source and IGNORE_TAG in cell.metadata.get("tags", [])):
        return False
    if cell.source == cell_source:
        return False  # only the tag is missing: `fix_setup_cell` adds it
    return not (same_template(cell.source) and cell.execution_count == 1 and cell.outputs)


def run_cell(source: str) -> tuple[list, dict]:
    """Execute ``source`` alone in a fresh python3 kernel (cwd notebooks/); its outputs and timing metadata."""
    import nbclient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    resources = {"metadata": {"path": str(NB_DIR)}}
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources=resources).execute()
    cell = nb.cells[0]
    return cell.outputs, cell.metadata.get("execution", {})


def fix_setup_cell(cell, cell_source: str, ran: tuple[list, dict] | None) -> None:
    """Write ``cell_source`` into ``cell``, with its stored output if only the install line changed, else with
    ``ran`` (the outputs and timing of ``run_cell(cell_source)``)."""
    tags = cell.metadata.setdefault("tags", [])
    if IGNORE_TAG not in tags:
        tags.append(IGNORE_TAG)
    if not needs_run(cell, cell_source):
        cell.source = cell_source  # only the install line changed: the stored output holds
        return
    outputs, execution = ran
    cell.source = cell_source
    cell.outputs = copy.deepcopy(outputs)
    cell.execution_count = 1
    if execution:
        cell.metadata["execution"] = dict(execution)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    mode.add_argument("--write", action="store_true", help="rewrite the setup cells and metadata that are out of date")
    mode.add_argument("--print", action="store_true", help="print the rendered setup cell")
    args = ap.parse_args(argv)
    cell_source = render()
    if args.print:
        print(cell_source)
        return 0
    ran = None
    if args.write and any(needs_run(setup_cell(nbformat.read(p, as_version=4)), cell_source) for p in notebooks()):
        ran = run_cell(cell_source)  # before reading any notebook to change it: each is read and written at once
    problems = []
    for path in notebooks():
        nb = nbformat.read(path, as_version=4)
        before = copy.deepcopy(nb)
        found = fix_metadata(nb, path)
        cell = setup_cell(nb)
        if cell is None:
            found.append(f"{path.name}: no code cell")
        elif cell.source != cell_source or IGNORE_TAG not in cell.metadata.get("tags", []):
            found.append(f"{path.name}: setup cell out of date")
            if args.write:
                fix_setup_cell(cell, cell_source, ran)
        problems += found
        if args.write and nb != before:
            nbformat.write(nb, path)
    for p in problems:
        print(p)
    if args.check:
        return 1 if problems else 0
    print(f"{len(problems)} fix(es) written" if problems else "everything up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
