#!/usr/bin/env python3
"""Execute the notebooks top to bottom (full mode by default) and report what changed against the stored outputs.

    python scripts/run_notebooks.py notebooks/0*.ipynb                # executed copies go to --out (runs/notebooks)
    python scripts/run_notebooks.py --inplace notebooks/0*.ipynb      # refresh the stored outputs: stale outputs
                                                                      # show up as changed cells in the report
    python scripts/run_notebooks.py --quick --budget 300 notebooks/06_train_model5.ipynb

Each notebook runs in a fresh kernel of this very Python (its environment, PYTHONPATH included), with the
notebook's folder as working directory, GPT_LESSON_QUICK=0 (1 with --quick) and GPT_LESSON_OFFLINE=1 (unset with
--online), in the order given. Per notebook it prints the wall time, whether every cell ran, the slowest cells,
and which code cells' outputs differ from the stored ones: stream text, text/plain and errors are compared after
the nbval sanitizers (notebooks/sanitize.cfg); images only as changed/same; cells marked ``# NBVAL_IGNORE_OUTPUT``
or ``# NBVAL_SKIP`` (or the matching tags) and execution counts are not compared.

--inplace writes a notebook back only when all its cells ran; --out always writes the executed copy (a failed one
up to the failing cell). Notebooks are written as nbformat writes them (indent 1); no output is stripped.
--report writes a JSON report after every notebook, so a run that is killed keeps what it finished.
Exit status: 0 if every notebook ran (and, with --strict, no compared output changed), else 1.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import copy
import difflib
import hashlib
import json
import os
import re
import signal
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
IGNORE_MARKERS = {"NBVAL_IGNORE_OUTPUT", "PYTEST_VALIDATE_IGNORE_OUTPUT", "NBVAL_SKIP"}
IGNORE_TAGS = {"nbval-ignore-output", "pytest-validate-ignore-output", "nbval-skip"}


# --- comparing outputs -------------------------------------------------------------------------------------------

def ignored(cell) -> bool:
    """nbval does not compare this cell's output (comment marker on its own line, or tag)."""
    comments = {line.strip().lstrip("#").strip() for line in cell.source.splitlines() if line.strip().startswith("#")}
    return bool(comments & IGNORE_MARKERS) or bool(set(cell.metadata.get("tags", [])) & IGNORE_TAGS)


def load_sanitizers(path: Path | None) -> list[tuple[re.Pattern, str]]:
    if path is None or not path.is_file():
        return []
    cfg = configparser.ConfigParser()
    cfg.read(path, encoding="utf-8")
    return [(re.compile(cfg[s]["regex"]), cfg[s]["replace"]) for s in cfg.sections()]


def comparable(outputs, sanitizers) -> tuple[str, list[str]]:
    """(the text nbval would compare, the images' hashes) of a cell's outputs."""
    texts, images = [], []
    for out in outputs:
        if out.output_type == "stream":
            text = out.text if isinstance(out.text, str) else "".join(out.text)
            if texts and texts[-1][0] == out.name:  # consecutive pieces of one stream are one text
                texts[-1] = (out.name, texts[-1][1] + text)
            else:
                texts.append((out.name, text))
        elif out.output_type == "error":
            texts.append(("error", f"{out.ename}: {out.evalue}"))
        else:  # execute_result, display_data
            data = out.get("data", {})
            for mime, value in sorted(data.items()):
                value = (value if isinstance(value, str) else "".join(value) if isinstance(value, list)
                         else json.dumps(value))
                if mime == "text/plain" and "application/vnd.jupyter.widget-view+json" not in data:
                    texts.append((mime, value))
                elif mime.startswith("image/"):
                    images.append(mime + ":" + hashlib.sha1(value.encode()).hexdigest()[:12])
    joined = "".join(f"[{kind}]\n{text}" + ("" if text.endswith("\n") else "\n") for kind, text in texts)
    for regex, replace in sanitizers:
        joined = regex.sub(replace, joined)
    return joined, images


def compare(before, after, sanitizers, diff_lines: int = 12) -> list[dict]:
    """Code cells of ``after`` whose compared output differs from ``before`` (same notebook, before and after)."""
    old = [c for c in before.cells if c.cell_type == "code"]
    new = [c for c in after.cells if c.cell_type == "code"]
    changed = []
    for i, (a, b) in enumerate(zip(old, new)):
        if ignored(b) or b.execution_count is None:
            continue
        (text_a, img_a), (text_b, img_b) = comparable(a.outputs, sanitizers), comparable(b.outputs, sanitizers)
        what = (["text"] if text_a != text_b else []) + (["image"] if img_a != img_b else [])
        if what:
            diff = list(difflib.unified_diff(text_a.splitlines(), text_b.splitlines(), "stored", "now", n=0,
                                             lineterm=""))
            changed.append({"cell": i, "execution_count": b.execution_count, "what": what,
                            "diff": diff[2:2 + diff_lines] + (["..."] if len(diff) > 2 + diff_lines else [])})
    return changed


# --- executing --------------------------------------------------------------------------------------------------

def kernelspec_dir() -> str:
    """A JUPYTER_PATH whose 'python3' kernel is this Python: the notebooks run in this environment, whatever
    kernelspecs the machine has (a JUPYTER_PATH entry wins over user and system kernelspecs)."""
    root = Path(tempfile.mkdtemp(prefix="run-notebooks-kernel-"))
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (ipykernel)", "language": "python", "metadata": {"debugger": False},
    }), encoding="utf-8")
    return str(root)


class Deadline(Exception):
    pass


def make_client(nb, path: Path, cell_timeout: float, deadline: float | None, timings: list):
    from nbclient import NotebookClient

    class Client(NotebookClient):
        @contextlib.asynccontextmanager
        async def async_setup_kernel(self, **kwargs):
            # nbclient's own, less its SIGINT/SIGTERM handlers: those shut the kernel down and let the run go on
            # (and reset the signals to their defaults afterwards); main()'s handler kills the kernel and stops.
            cleanup_kc = kwargs.pop("cleanup_kc", self.owns_km)
            if self.km is None:
                self.km = self.create_kernel_manager()
            if not self.km.has_kernel:
                await self.async_start_new_kernel(**kwargs)
            if self.kc is None:
                await self.async_start_new_kernel_client()
            try:
                yield
            finally:
                if cleanup_kc:
                    await self._async_cleanup_kernel()

        async def async_execute_cell(self, cell, cell_index, execution_count=None, store_history=True):
            if cell.cell_type != "code" or not cell.source.strip():
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            code_index = sum(1 for c in self.nb.cells[:cell_index] if c.cell_type == "code")
            limit = cell_timeout
            if deadline is not None:
                left = deadline - time.monotonic()
                if left < 1:
                    raise Deadline(f"out of time before code cell {code_index}")
                limit = min(limit, left)
            self.timeout = max(1, int(limit))
            start = time.monotonic()
            timings.append((code_index, None))  # None while it runs
            try:
                return await super().async_execute_cell(cell, cell_index, execution_count, store_history)
            finally:
                timings[-1] = (code_index, round(time.monotonic() - start, 2))

    return Client(nb, timeout=int(cell_timeout), kernel_name="python3", shutdown_kernel="immediate",
                  resources={"metadata": {"path": str(path.parent.resolve())}})


def run_one(path: Path, args, sanitizers, deadline, state) -> dict:
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    stored = nbformat.read(path, as_version=4)
    nb = copy.deepcopy(stored)
    timings: list[tuple[int, float]] = []  # (code cell index, seconds) of each code cell started
    rec = {"notebook": path.name, "ok": False, "wall_s": None, "error": None, "cells_run": 0,
           "code_cells": sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())}
    state["current"] = rec
    client = make_client(nb, path, args.cell_timeout, deadline, timings)
    state["client"] = client
    start = state["start"] = time.monotonic()
    state["timings"] = timings
    last = lambda: timings[-1][0] if timings else "?"  # noqa: E731  (the code cell that was running)
    try:
        client.execute()
        rec["ok"] = True
    except CellTimeoutError as e:
        rec["error"] = f"cell timeout ({client.timeout} s) in code cell {last()}: " + str(e).splitlines()[0]
    except CellExecutionError as e:
        lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", str(e)).splitlines() if ln.strip()]
        rec["error"] = f"error in code cell {last()}: " + (lines[-1] if lines else "?")
    except Deadline as e:
        rec["error"] = f"budget used up: {e}"
    except DeadKernelError as e:
        rec["error"] = f"kernel died in code cell {last()}: {e}"
    except Exception as e:  # noqa: BLE001  (report it and go on with the next notebook)
        rec["error"] = f"{type(e).__name__}: {e}"
    finally:
        state["client"] = None
    rec["wall_s"] = round(time.monotonic() - start, 1)
    rec["cells_run"] = len(timings)
    rec["cell_s"] = {str(i): t for i, t in timings}
    rec["slowest"] = sorted(([i, t] for i, t in timings), key=lambda it: -it[1])[:3]
    rec["changed"] = compare(stored, nb, sanitizers)
    if args.inplace:
        if rec["ok"]:
            nbformat.write(nb, path)
            rec["written"] = str(path)
    else:
        out = Path(args.out) / path.name
        out.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out)
        rec["written"] = str(out)
    return rec


def line(rec) -> str:
    status = "ok    " if rec["ok"] else "FAILED"
    if rec.get("skipped"):
        return f"{rec['notebook']:<30} SKIPPED  {rec['error']}"
    slow = ", ".join(f"cell {i} {t:.1f} s" for i, t in rec.get("slowest", []))
    changed = [c["cell"] for c in rec.get("changed", [])]
    s = (f"{rec['notebook']:<30} {status} {rec['wall_s']:7.1f} s  {rec['cells_run']}/{rec['code_cells']} cells"
         f"  slowest: {slow or '-'}  outputs changed: {changed or 'none'}")
    return s + (f"\n{'':<30} {rec['error']}" if rec["error"] else "")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebooks", nargs="*", type=Path, help="in the order to run (default: notebooks/0*.ipynb)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", default="runs/notebooks", help="folder for the executed copies (default: %(default)s)")
    where.add_argument("--inplace", action="store_true", help="write each notebook that ran back to its file")
    ap.add_argument("--quick", action="store_true", help="GPT_LESSON_QUICK=1 (the tests' mode) instead of the full run")
    ap.add_argument("--online", action="store_true",
                    help="leave GPT_LESSON_OFFLINE unset (notebook 01 downloads the book)")
    ap.add_argument("--cell-timeout", type=float, default=900, help="seconds per cell (default: %(default)s)")
    ap.add_argument("--budget", type=float, default=None, help="seconds for all notebooks; later ones are skipped")
    ap.add_argument("--report", type=Path, default=None, help="JSON report, rewritten after each notebook")
    ap.add_argument("--sanitize-with", type=Path, default=ROOT / "notebooks" / "sanitize.cfg")
    ap.add_argument("--strict", action="store_true", help="exit 1 also when a compared output changed")
    ap.add_argument("--diff-lines", type=int, default=6,
                    help="diff lines printed per changed cell (default: %(default)s)")
    return ap.parse_args(argv)


def set_environment(args: argparse.Namespace) -> None:
    """What the kernels inherit: the mode, the offline switch, and a 'python3' kernel that is this Python."""
    os.environ["GPT_LESSON_QUICK"] = "1" if args.quick else "0"
    if args.online:
        os.environ.pop("GPT_LESSON_OFFLINE", None)
    else:
        os.environ["GPT_LESSON_OFFLINE"] = "1"
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [kernelspec_dir(), os.environ.get("JUPYTER_PATH")]))
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def save_report(report: dict, path: Path | None) -> None:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")


def kill_handler(report: dict, state: dict, report_path: Path | None):
    """The SIGTERM/SIGINT handler: kill the running kernel, record the notebook cut short, save and exit 124."""

    def on_signal(signum, frame):  # `timeout` killed us: the kernel runs in its own session, take it along
        client = state["client"]
        pgid = getattr(getattr(getattr(client, "km", None), "provisioner", None), "pgid", None)
        if pgid:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        rec = state["current"]
        if rec is not None and rec not in report["notebooks"]:
            timings = state.get("timings") or []
            rec["error"] = f"killed by signal {signum} while running code cell {timings[-1][0] if timings else '?'}"
            rec["wall_s"] = round(time.monotonic() - state["start"], 1)
            rec["cells_run"] = len(timings)
            rec["cell_s"] = {str(i): t for i, t in timings}
            report["notebooks"].append(rec)
        report["killed"] = signum
        save_report(report, report_path)
        print(f"killed by signal {signum}" + (f" while running {rec['notebook']}" if rec else ""), flush=True)
        os._exit(124)

    return on_signal


def print_record(rec: dict, diff_lines: int) -> None:
    """A notebook's line, then the start of the diff of each changed cell."""
    print(line(rec), flush=True)
    for c in rec.get("changed", []):
        print(f"    cell {c['cell']} ({'+'.join(c['what'])})", *c["diff"][:diff_lines], sep="\n      ", flush=True)


def run_all(paths: list[Path], args: argparse.Namespace, sanitizers, deadline: float | None, report: dict,
            state: dict) -> None:
    """Each notebook in turn (skipped once less than 5 s of the budget is left); the report saved after each."""
    for path in paths:
        if deadline is not None and deadline - time.monotonic() < 5:
            rec = {"notebook": path.name, "ok": False, "skipped": True, "error": "budget used up", "wall_s": 0}
        else:
            rec = run_one(path, args, sanitizers, deadline, state)
        report["notebooks"].append(rec)
        state["current"] = None
        save_report(report, args.report)
        print_record(rec, args.diff_lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    paths = args.notebooks or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    set_environment(args)
    sanitizers = load_sanitizers(args.sanitize_with)
    deadline = None if args.budget is None else time.monotonic() + args.budget
    report = {"python": sys.version.split()[0], "executable": sys.executable,
              "mode": "quick" if args.quick else "full", "offline": not args.online, "notebooks": []}
    state: dict = {"client": None, "current": None}
    on_signal = kill_handler(report, state, args.report)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"# run_notebooks: {report['mode']} mode, python {report['python']}, "
          f"{'in place' if args.inplace else 'copies to ' + args.out}", flush=True)
    save_report(report, args.report)
    run_all(paths, args, sanitizers, deadline, report, state)
    ran = [r for r in report["notebooks"] if r["ok"]]
    changed = sum(len(r.get("changed", [])) for r in report["notebooks"])
    total = sum(r["wall_s"] or 0 for r in report["notebooks"])
    print(f"# {len(ran)}/{len(paths)} notebooks ran, {changed} compared cell output(s) changed, {total:.0f} s in all")
    return 0 if len(ran) == len(paths) and not (args.strict and changed) else 1


if __name__ == "__main__":
    sys.exit(main())
