"""scripts/run_notebooks.py: the report, --out / --inplace, --strict and the exit status, on tiny notebooks.

The notebooks are made here: two code cells that print 1, the second stored with a stale output ("0"), so the
run reports it as changed. The tests that execute them start a Jupyter kernel (marked slow); the budget test
starts none.
"""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_notebooks", ROOT / "scripts" / "run_notebooks.py")
run_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_notebooks)


def _cell(source: str, text: str, count: int):
    out = nbformat.v4.new_output("stream", name="stdout", text=text)
    return nbformat.v4.new_code_cell(source, execution_count=count, outputs=[out])


def make_notebook(path: Path, second: str = "print(1)", stale: bool = True) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [_cell("print(1)", "1\n", 1), _cell(second, "0\n" if stale else "1\n", 2)]
    nbformat.write(nb, path)
    return path


def stdout_of(nb_path: Path, cell: int) -> str:
    nb = nbformat.read(nb_path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    return "".join(o.get("text", "") for o in code[cell].outputs if o.output_type == "stream")


@pytest.fixture(autouse=True)
def _restore_process():
    """main() sets environment variables and SIGTERM/SIGINT handlers for the whole process: put them back."""
    env = dict(os.environ)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    os.environ.clear()
    os.environ.update(env)
    for s, h in handlers.items():
        signal.signal(s, h)


def run(tmp_path, *args) -> int:
    return run_notebooks.main([*map(str, args), "--sanitize-with", str(tmp_path / "no-sanitizers.cfg")])


def test_out_of_budget_skips_the_notebook_and_reports_it(tmp_path, capsys):
    nb = make_notebook(tmp_path / "a.ipynb")
    report = tmp_path / "rep" / "report.json"
    assert run(tmp_path, nb, "--budget", 0, "--report", report, "--quick", "--out", tmp_path / "out") == 1
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["mode"] == "quick" and rep["offline"] is True and "killed" not in rep
    assert rep["notebooks"] == [{"notebook": "a.ipynb", "ok": False, "skipped": True, "error": "budget used up",
                                 "wall_s": 0}]
    assert not (tmp_path / "out").exists()
    assert os.environ["GPT_LESSON_QUICK"] == "1" and os.environ["GPT_LESSON_OFFLINE"] == "1"
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("# run_notebooks: quick mode, python ")
    assert out[1] == f"{'a.ipynb':<30} SKIPPED  budget used up"
    assert out[-1] == "# 0/1 notebooks ran, 0 compared cell output(s) changed, 0 s in all"


@pytest.mark.slow  # starts Jupyter kernels
def test_copies_report_and_exit_status(tmp_path, capsys):
    good = make_notebook(tmp_path / "good.ipynb")
    bad = make_notebook(tmp_path / "bad.ipynb", second="raise ValueError('boom')", stale=False)
    stored = good.read_bytes(), bad.read_bytes()
    report = tmp_path / "report.json"
    assert run(tmp_path, good, bad, "--out", tmp_path / "out", "--report", report) == 1  # bad.ipynb failed
    assert (good.read_bytes(), bad.read_bytes()) == stored  # --out leaves the notebooks alone
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["mode"] == "full" and [r["notebook"] for r in rep["notebooks"]] == ["good.ipynb", "bad.ipynb"]
    ok, failed = rep["notebooks"]
    assert ok["ok"] and ok["error"] is None and (ok["cells_run"], ok["code_cells"]) == (2, 2)
    assert [c["cell"] for c in ok["changed"]] == [1] and ok["changed"][0]["what"] == ["text"]
    assert ok["written"] == str(tmp_path / "out" / "good.ipynb") and stdout_of(Path(ok["written"]), 1) == "1\n"
    assert not failed["ok"] and failed["error"] == "error in code cell 1: ValueError: boom"
    assert failed["written"] == str(tmp_path / "out" / "bad.ipynb")  # a failed copy is written too
    assert [c["cell"] for c in failed["changed"]] == [1]  # the error in place of the stored "1"
    out = capsys.readouterr().out
    assert "outputs changed: [1]" in out and "    cell 1 (text)" in out and "\n      +1" in out
    assert out.rstrip().splitlines()[-1].startswith("# 1/2 notebooks ran, 2 compared cell output(s) changed, ")


@pytest.mark.slow  # starts Jupyter kernels
def test_inplace_and_strict(tmp_path, capsys):
    nb = make_notebook(tmp_path / "a.ipynb")
    assert run(tmp_path, nb, "--inplace") == 0  # every notebook ran: a changed output alone is no failure
    assert stdout_of(nb, 1) == "1\n"  # the stale output is refreshed
    make_notebook(nb)
    assert run(tmp_path, nb, "--inplace", "--strict") == 1  # ... but it is with --strict
    assert stdout_of(nb, 1) == "1\n"
    assert run(tmp_path, nb, "--inplace", "--strict") == 0  # nothing changed any more
    out = capsys.readouterr().out
    assert "# run_notebooks: full mode" in out and "in place" in out
    assert "# 1/1 notebooks ran, 0 compared cell output(s) changed" in out

    bad = make_notebook(tmp_path / "bad.ipynb", second="raise ValueError('boom')")
    stored = bad.read_bytes()
    assert run(tmp_path, bad, "--inplace") == 1
    assert bad.read_bytes() == stored  # a notebook that failed is not written back


@pytest.mark.slow  # starts a Jupyter kernel
def test_killed_run_keeps_its_report_and_takes_the_kernel_along(tmp_path):
    """SIGTERM (what `timeout` sends) in the middle of a cell: the kernel is killed too, the report says where
    it stopped, and the exit status is 124."""
    nb = make_notebook(tmp_path / "a.ipynb", second="import os, time\nopen('pid', 'w').write(str(os.getpid()))\n"
                                                    "time.sleep(120)")
    report = tmp_path / "report.json"
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_notebooks.py"), str(nb), "--report",
                             str(report), "--out", str(tmp_path / "out")], stdout=subprocess.PIPE, text=True)
    try:
        give_up = time.monotonic() + 60
        while not (tmp_path / "pid").is_file() or not (tmp_path / "pid").read_text():
            assert proc.poll() is None and time.monotonic() < give_up, "the cell never started"
            time.sleep(0.1)
        kernel = int((tmp_path / "pid").read_text())
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 124
    assert out.splitlines()[-1] == "killed by signal 15 while running a.ipynb"
    rep = json.loads(report.read_text(encoding="utf-8"))
    assert rep["killed"] == signal.SIGTERM
    (rec,) = rep["notebooks"]
    assert rec["error"] == "killed by signal 15 while running code cell 1" and rec["cells_run"] == 2
    assert not rec["ok"] and rec["cell_s"]["1"] is None  # still running when killed
    for _ in range(100):  # the kernel's process goes away (reaped once it is orphaned)
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the kernel (pid {kernel}) outlived the run")
