"""Fast checks of the committed notebooks (nothing is executed; `pytest notebooks --nbval` runs them).

- notebooks/notebooks.json lists every notebook; the Colab badge matches what scripts/badges.py
  builds from pyproject.toml, and so does the README's table of notebooks;
- every notebook is committed executed: each code cell ran, in order, in one kernel, without errors;
- no output shows a path of the machine that ran it;
- each has the setup cell and the QUICK switch near the top;
- each uses only the gpt_lesson names taught by then.
"""

import importlib.util
import json
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"

_spec = importlib.util.spec_from_file_location("badges", ROOT / "scripts" / "badges.py")
badges = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(badges)  # for the badge and README table it builds

TABLE = json.loads((NB_DIR / "notebooks.json").read_text(encoding="utf-8"))
FILES = [row["file"] for row in TABLE]
URL = badges.repository_url()

# What each notebook teaches from the package; a notebook may use its own names and all earlier ones.
TAUGHT = {
    "01": {"load_book", "shipped_book", "clean_text", "Book", "quick"},  # gl.quick(): the test run's switch
    "02": {"gpt2_encoding", "encode", "decode", "for_display", "VOCAB_SIZE", "EOT_ID"},
    "03": {"tail_split", "block_split", "verdict", "check",
           "unigram_loss", "choose_alpha", "bigram_loss", "choose_beta"},  # the yardsticks 06 and 08 draw
    "04": {"random_batch", "random_starts", "gather_windows", "loop_batch", "coverage", "plot_coverage",
           "epoch_loader", "WindowDataset", "batch_starts",
           "ratio_verdict", "Model5", "preset"},  # 04 times one step of the cpu preset; 05 builds the model
    "05": {"Model5", "preset", "PRESETS", "GPTConfig", "pick_device", "describe_runtime", "autocast_dtype", "load_note",
           "Timing",
           "CausalSelfAttention",
           "in_colab", "time_forward", "time_it", "forward_flops", "matmul_ceiling", "plot_timings",
           "not_measured"},
    "06": {"choose_preset", "train_config", "TrainConfig", "TrainStep", "train", "evaluate", "plot_losses", "History",
           "checkpoint_path", "Trainer", "EvalSet", "mean_loss",
           "save_checkpoint",
           "generate", "LESSON_PROMPT",  # 06 samples before/after training; 07 takes generation apart
           "shape_of", "likeness", "vocabulary", "Watch", "plot_learning"},  # the book's shape; watching a run
    "07": {"checkpoint_config", "load_checkpoint", "read_checkpoint", "generate_tokens", "KVCache",
           "load_gpt2_state_dict", "copied", "Copying", "pretrained_gpt2", "from_hf", "window_losses",
           "extraction", "Extraction", "window_keep", "time_generation", "GenerationTime"},  # probe; cache window
    "08": {"experiments", "SAMPLERS", "batch_starts", "window_losses",  # gl.experiments holds the runs
           "extraction"},  # the probe of section 8, built by hand on one window first
}
LOCAL_PATH = re.compile(r"(/root/|/work/|/tmp/|/home/)")
TEST_PLUMBING = re.compile(r"GPT_LESSON_\w+|os\.environ")  # what the package reads for a notebook (gl.quick())


def _read(file):
    return nbformat.read(NB_DIR / file, as_version=4)


def _code(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _texts(output):
    """Every text an output holds (stream text, text/* data, tracebacks); images are skipped."""
    if output.output_type == "stream":
        yield output.text
    elif output.output_type == "error":
        yield output.ename + ": " + output.evalue
        yield from output.traceback
    else:
        for key, value in output.get("data", {}).items():
            if key.startswith("text/") or key.endswith("json"):
                yield value if isinstance(value, str) else str(value)


def test_every_notebook_is_listed():
    on_disk = sorted(p.name for p in NB_DIR.glob("*.ipynb"))
    assert on_disk == sorted(FILES), "notebooks/notebooks.json must list exactly the notebooks in notebooks/"


def test_table_entries_have_every_field_and_are_in_order():
    assert all(sorted(row) == sorted(badges.FIELDS) and all(row.values()) for row in TABLE)
    assert FILES == sorted(FILES), "list the notebooks in the order they are taught"


@pytest.mark.parametrize("file", FILES)
def test_badge_matches_pyproject(file):
    """(The setup cell and its install line are checked by tests/test_setup_cell.py.)"""
    nb = _read(file)
    assert badges.fix_notebook(nb, file, URL) == [], "run: python scripts/badges.py"
    assert badges.badge(file, URL) in nb.cells[0].source


def test_readme_table_is_up_to_date():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert badges.fix_readme(text, URL) == text, "run: python scripts/badges.py"


@pytest.mark.parametrize("file", FILES)
def test_committed_executed_without_errors(file):
    cells = [c for c in _code(_read(file)) if c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"cells never executed: {[i for i, n in enumerate(counts) if n is None]}"
    assert counts == list(range(1, len(cells) + 1)), "execute the whole notebook once, top to bottom, in one kernel"
    for i, cell in enumerate(cells):
        assert not [o for o in cell.outputs if o.output_type == "error"], f"code cell {i} has an error output"
        if i > 0 and "print(" in cell.source:  # the setup cell prints only in Colab
            assert cell.outputs, f"code cell {i} prints but has no stored output"


@pytest.mark.parametrize("file", FILES)
def test_no_local_paths_or_warnings_in_outputs(file):
    for i, cell in enumerate(_code(_read(file))):
        for out in cell.outputs:
            for text in _texts(out):
                assert not LOCAL_PATH.search(text), f"code cell {i} shows a local path: {LOCAL_PATH.search(text)[0]}"
            if out.output_type == "stream" and out.name == "stderr":
                assert "Warning" not in out.text, f"code cell {i} has a warning in stderr: {out.text[:200]}"


@pytest.mark.parametrize("file", FILES)
def test_the_setup_is_a_form_and_the_first_visible_cell_teaches(file):
    """Colab shows a "# @title ... form" cell as one titled line; the test switches are read by the package
    (gl.quick(), gl.checkpoint_path()), so no cell of the lesson is test plumbing."""
    code = _code(_read(file))
    setup = code[0].source
    assert setup.splitlines()[0].startswith("# @title ") and '{ display-mode: "form" }' in setup.splitlines()[0]
    assert "nbval-ignore-output" in code[0].metadata.get("tags", []), "it prints the device: nbval must not compare it"
    assert 'if "google.colab" in sys.modules:' in setup
    assert "Change runtime type" in setup and "get_device_name" in setup
    assert setup == _code(_read(FILES[0]))[0].source, "the setup cell is the same in every notebook"
    for i, cell in enumerate(code[1:], start=1):
        assert not TEST_PLUMBING.search(cell.source), f"code cell {i} reads the test run's switches itself"


@pytest.mark.parametrize("file", FILES)
def test_uses_only_names_taught_so_far(file):
    number = file[:2]
    allowed = set().union(*(names for n, names in TAUGHT.items() if n <= number))
    source = "\n".join(c.source for c in _code(_read(file)))
    assert "from gpt_lesson" not in source, "import the package as `import gpt_lesson as gl`"
    used = set(re.findall(r"\bgl\.(\w+)", source))
    assert used <= allowed, f"{file} uses {sorted(used - allowed)} before the notebook that teaches it"


FACT_LINE = re.compile(r": (True|False)$")
DEVICE_WORDS = re.compile(r"\b(cuda|GPU|float16|bfloat16|T4|H100|H200|A100|preset: )", re.IGNORECASE)


@pytest.mark.parametrize("file", [f for f in FILES if f[:2] in ("05", "06", "07")])
def test_checked_outputs_do_not_depend_on_the_device(file):
    """nbval compares every cell without the ignore marker; on a GPU those outputs must read the same as on a CPU.
    So no checked output of the GPU notebooks may name a device, a GPU, a half-precision dtype or the chosen preset,
    except in a line of facts, which ends in ': True' or ': False' whatever the device."""
    for i, cell in enumerate(_code(_read(file))):
        if _ignored(cell):
            continue
        for output in cell.outputs:
            for text in _texts(output):
                text = "\n".join(line for line in text.splitlines() if not FACT_LINE.search(line))
                assert not DEVICE_WORDS.search(text), f"code cell {i}: {text[:120]!r} would differ on a GPU"


def _ignored(cell) -> bool:
    tags = set(cell.metadata.get("tags", []))
    return ("NBVAL_IGNORE_OUTPUT" in cell.source or "NBVAL_SKIP" in cell.source
            or bool(tags & {"nbval-ignore-output", "nbval-skip"}))


@pytest.mark.parametrize("file", FILES)
def test_every_ignored_output_is_followed_by_checked_facts(file):
    """nbval skips an ignored cell's output, so the checked cell after it (after a run of ignored cells) must print
    facts that would change if the result broke: lines ending in ': True' or ': False'. The setup cell is exempt."""
    code = [c for c in _code(_read(file)) if c.source.strip()][1:]
    for i, cell in enumerate(code):
        if not _ignored(cell) or (i + 1 < len(code) and _ignored(code[i + 1])):
            continue
        after = code[i + 1] if i + 1 < len(code) else None
        lines = [line for out in (after.outputs if after else []) for text in _texts(out) for line in text.splitlines()]
        assert any(FACT_LINE.search(line) for line in lines), \
            f"ignored code cell {i + 1} is not followed by a fact line"


@pytest.mark.parametrize("file", FILES)
def test_exercises_have_solutions_and_a_self_check(file):
    cells = _read(file).cells
    turn = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Your turn" in c.source]
    assert turn, "the notebook ends with a 'Your turn' section"
    rest = cells[turn[0]:]
    solution = "<details><summary>Solution"
    assert any(c.cell_type == "markdown" and solution in c.source for c in rest), "solutions, folded"
    assert any(c.cell_type == "code" and c.source.startswith("# Self-check") for c in rest), "a self-check cell"
