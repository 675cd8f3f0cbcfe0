#!/usr/bin/env python3
"""One summary table of a GPU check (scripts/gpu_check.sh) from the files it left in its output folder.

    python scripts/gpu_summary.py gpu-check-out

Reads what is there and says what is missing: steps.tsv (step, exit status, seconds, limit), versions.txt,
bench-gpu-eager.json and bench-gpu-compile.json (python -m gpt_lesson.bench --json), notebooks-report.json
(scripts/run_notebooks.py --report), nbval.xml and nbval-cpu.xml (pytest --junitxml), or else their logs.
Only the standard library: it runs wherever the check ran.
"""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def _load(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _num(x, fmt: str, scale: float = 1.0) -> str:
    return format(x * scale, fmt) if isinstance(x, (int, float)) else "-"


def steps(out: Path) -> list[str]:
    path = out / "steps.tsv"
    if not path.is_file():
        return ["steps: no steps.tsv"]
    lines = ["where the time went", f"  {'step':<14} {'exit':>5} {'seconds':>8} {'limit':>6}"]
    total = 0.0
    for row in path.read_text(encoding="utf-8").splitlines():
        name, rc, secs, limit = (row.split("\t") + ["", "", "", ""])[:4]
        note = {"124": "  TIMED OUT", "137": "  KILLED", "143": "  STOPPED (the whole check was killed)", "0": "",
                "skip": "  skipped (budget)"}.get(rc, "  FAILED")
        lines.append(f"  {name:<14} {rc:>5} {secs:>8} {limit:>6}{note}")
        try:
            total += float(secs)
        except ValueError:
            pass
    lines.append(f"  {'total':<14} {'':>5} {total:>8.0f}")
    return lines


BENCH_RUNS = ("eager", "compile")  # bench-gpu-{run}.json / .txt


def _bench_missing(out: Path, runs: dict) -> list[str]:
    """A line for each run without a JSON: not run at all, or the last line of its log."""
    missing = []
    for name, res in runs.items():
        txt = out / f"bench-gpu-{name}.txt"
        if res is None and not txt.is_file():
            missing.append(f"  {name}: not run")
        elif res is None:
            tail = txt.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-1:]
            missing.append(f"  {name}: no JSON (the run failed or timed out); "
                           f"last line: {tail[0][:150] if tail else '-'}")
    return missing


def _bench_models(name: str, res: dict) -> list[str]:
    """One table row per contender (every entry with a step time) of one run."""
    lines = []
    for key in [k for k in res if isinstance(res[k], dict) and "step_s" in res[k]]:
        row = res[key]
        ratio = res.get(f"{key}_over_hf_step")
        lines.append(f"  {name:<8} {key:<18} {_num(row.get('step_s'), '8.1f', 1e3)} "
                     f"{_num(row.get('step_tokens_per_s'), '9,.0f')} {_num(row.get('step_mfu'), '5.1f', 100)}% "
                     f"{_num(row.get('forward_s'), '7.1f', 1e3)} {_num(row.get('forward_mfu'), '6.1f', 100)}% "
                     + (f"{ratio:5.2f}x" if isinstance(ratio, (int, float)) else "     -"))
    return lines


def _bench_extras(name: str, res: dict) -> str:
    """The lesson run, generation speed, matmul ceilings and profile of one run, on one line."""
    lesson = res.get("lesson_run") or {}
    gen = res.get("generation_tokens_per_s") or {}
    mm = res.get("matmul_tflops") or {}
    extras = [f"lesson {lesson.get('steps')} batches: {_num(lesson.get('wall_s'), '.1f')} s, "
              f"{_num(lesson.get('tokens_per_s'), ',.0f')} tok/s" if lesson else "no lesson run",
              f"generation {_num(gen.get('cache'), '.0f')} tok/s cached vs {_num(gen.get('no_cache'), '.0f')}"
              if gen else "",
              "matmul ceiling " + ", ".join(f"{k} {_num(v, '.3g')} TFLOP/s" for k, v in mm.items()) if mm else ""]
    prof = res.get("profile")
    if prof:
        extras.append(f"profile: matmuls {_num(prof.get('matmul_share'), '.0f', 100)}% "
                      f"of {_num(prof.get('total_s'), '.3f')} s")
    return f"  {name:<8} " + "; ".join(e for e in extras if e)


def _bench_sweep(name: str, res: dict) -> list[str]:
    """One line per batch size of the run's sweep."""
    return [f"  {name:<8} sweep B={row.get('batch_size'):<4} "
            f"step {_num(row.get('step_s'), '.1f', 1e3)} ms, "
            f"{_num(row.get('step_tokens_per_s'), ',.0f')} tok/s, "
            f"MFU {_num(row.get('step_mfu'), '.1f', 100)}%"
            for row in res.get("sweep") or []]


def bench(out: Path) -> list[str]:
    runs = {name: _load(out / f"bench-gpu-{name}.json") for name in BENCH_RUNS}
    lines = ["benchmark (python -m gpt_lesson.bench): one training step (forward+backward+AdamW) and one forward pass;",
             "  vs HF = HuggingFace GPT2LMHeadModel's step time / this one (above 1: faster than HF)"]
    missing = _bench_missing(out, runs)
    first = next((r for r in runs.values() if r), None)
    if first is None:
        return lines + missing
    lines.insert(2, f"  {first.get('device')}  torch {first.get('torch')}  {first.get('dtype')}  "
                    f"B={first.get('batch_size')} T={first.get('seq_len')}")
    lines.append(f"  {'run':<8} {'model':<18} {'step ms':>8} {'tok/s':>9} {'MFU':>6} {'fwd ms':>7} "
                 f"{'fwd MFU':>7} {'vs HF':>6}")
    ran = {name: res for name, res in runs.items() if res is not None}
    for name, res in ran.items():
        lines += _bench_models(name, res)
    for name, res in ran.items():
        lines.append(_bench_extras(name, res))
        lines += _bench_sweep(name, res)
    return lines + missing


def notebooks(out: Path) -> list[str]:
    rep = _load(out / "notebooks-report.json")
    if rep is None:
        return ["notebooks: no notebooks-report.json"]
    lines = [f"notebooks, {rep.get('mode')} mode (scripts/run_notebooks.py), python {rep.get('python')}"
             + ("  [KILLED]" if rep.get("killed") else "")]
    for r in rep.get("notebooks", []):
        status = "SKIPPED" if r.get("skipped") else "ok" if r.get("ok") else "FAILED"
        changed = [c["cell"] for c in r.get("changed", [])]
        slow = ", ".join(f"cell {i} {t:.0f} s" for i, t in r.get("slowest", [])[:2] if t is not None)
        lines.append(f"  {r['notebook']:<30} {status:<7} {_num(r.get('wall_s'), '6.1f')} s  "
                     f"slowest: {slow or '-'}  changed outputs: {changed or 'none'}")
        if r.get("error") and not r.get("ok"):
            lines.append(f"  {'':<30} {r['error'][:160]}")
    return lines


def nbval(out: Path, name: str, what: str) -> list[str]:
    xml, log = out / f"{name}.xml", out / f"{name}.log"
    if xml.is_file():
        try:
            root = ET.parse(xml).getroot()
            suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
            n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
            failed = sorted({tc.get("classname", "") + "::" + tc.get("name", "")
                             for s in suites for tc in s.iter("testcase")
                             if tc.find("failure") is not None or tc.find("error") is not None})
            passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
            lines = [f"nbval of {what} here (quick mode): {passed} passed, {n['failures']} failed, "
                     f"{n['errors']} errors, {n['skipped']} skipped"]
            return lines + [f"  failed: {f}" for f in failed[:20]]
        except (ET.ParseError, ValueError) as e:
            return [f"nbval of {what}: unreadable {xml.name} ({e})"]
    if log.is_file():
        text = log.read_text(encoding="utf-8", errors="replace")
        counts = re.findall(r"^=+ (.*\d+ (?:passed|failed|error).*?) =+$", text, re.MULTILINE)
        done = len(re.findall(r" PASSED", text)), len(re.findall(r" FAILED", text))
        return [f"nbval of {what}: no {xml.name}; log says: {counts[-1] if counts else 'no final line (killed?)'}; "
                f"cells seen passed {done[0]}, failed {done[1]}"]
    return [f"nbval of {what}: not run"]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0] if argv else "gpu-check-out")
    parts = []
    versions = out / "versions.txt"
    if versions.is_file():
        parts.append([versions.read_text(encoding="utf-8", errors="replace").strip()])
    parts += [bench(out), notebooks(out),
              nbval(out, "nbval", "the GPU notebooks") + nbval(out, "nbval-cpu", "the others"), steps(out)]
    print("\n\n".join("\n".join(p) for p in parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
