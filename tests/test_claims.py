"""Conclusions that follow from the outputs: no check over nothing, no direction stated inside the noise.

Two scans of the executed notebooks, each tested on a planted notebook so that it can fail:

- **vacuous checks** (in the code): a printed ``all(...)``/``any(...)`` (``True`` over an empty set), or a comparison
  with, or a variable set to, a stand-in for a value never measured (``float("-inf")``, ``nan``, ``math.inf``; a
  causal mask's ``-inf`` as an argument is no stand-in). Checked lines go through
  `gpt_lesson.check`, which prints "not measured here" over nothing.
- **a direction inside the noise** (in the outputs): once a cell prints a verdict ``A - B: ... no finding``, no
  checked line (``...: True``/``...: False``) of that cell or the next one may speak of both A and B.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))
STAND_INS = {("float", "-inf"), ("float", "inf"), ("float", "nan"), ("math", "inf"), ("math", "nan")}
VERDICT_NO_FINDING = re.compile(r"^(?P<what>[^:]+?) (?:-|/) (?P<other>[^:]+?): .*no finding")
CHECKED = re.compile(r":\s*(True|False)\s*$")
DIRECTION = re.compile(r"\b(higher|lower|faster|slower|harder|easier|better|worse|below|above|beats?)\b")


def _code(cell: dict) -> str:
    src = "".join(cell["source"])
    return "\n".join(line for line in src.splitlines() if not line.lstrip().startswith(("!", "%")))


def _text(cell: dict) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append("".join(o["text"]))
        elif "text/plain" in o.get("data", {}):
            out.append("".join(o["data"]["text/plain"]))
    return "".join(out)


def _is_stand_in(node: ast.AST) -> bool:
    if isinstance(node, ast.UnaryOp):
        node = node.operand
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
        arg = node.args[0]
        return isinstance(arg, ast.Constant) and (node.func.id, str(arg.value).lstrip("-+").lower()) in {
            (a, b.lstrip("-")) for a, b in STAND_INS}
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and (node.value.id, node.attr) in \
        STAND_INS


def vacuous_checks(nb: dict) -> list[str]:
    """Places in the code cells where a check could print True over nothing, as 'cell N: what'."""
    found = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        try:
            tree = ast.parse(_code(cell))
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                for sub in ast.walk(node):
                    if isinstance(sub, ast.Call) and getattr(sub.func, "id", None) in ("all", "any"):
                        found.append(f"cell {i}: print of {sub.func.id}(...) (True over nothing): use gl.check")
            if isinstance(node, ast.Compare) and any(_is_stand_in(x) for x in [node.left, *node.comparators]):
                found.append(f"cell {i}: a comparison with a stand-in value (line {node.lineno})")
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None and _is_stand_in(node.value):
                found.append(f"cell {i}: a stand-in value for a measurement (line {node.lineno}): use gl.not_measured")
    return found


def directions_in_noise(nb: dict) -> list[str]:
    """Checked lines that speak of both sides of a verdict printed as 'no finding' in the same or the cell before."""
    found, open_verdicts = [], []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        lines = _text(cell).splitlines()
        current = [(m["what"].strip().lower(), m["other"].strip().lower())
                   for m in map(VERDICT_NO_FINDING.match, lines) if m]
        for line in lines:
            low = line.lower()
            if CHECKED.search(line) and DIRECTION.search(low) and not VERDICT_NO_FINDING.match(line):
                for a, b in open_verdicts + current:
                    if _mentions(low, a) and _mentions(low, b):
                        found.append(f"cell {i}: {line.strip()!r} states a direction of '{a} - {b}', no finding")
        open_verdicts = current
    return found


def _mentions(line: str, name: str) -> bool:
    words = [w for w in re.findall(r"[a-z0-9]+", name) if len(w) > 2 or w.isdigit() or w in ("iv", "ii")]
    return bool(words) and all(re.search(rf"\b{re.escape(w)}", line) for w in words)


def _nb(*cells: tuple[str, str]) -> dict:
    return {"cells": [{"cell_type": "code", "source": src, "outputs": [{"output_type": "stream", "text": out}]}
                      for src, out in cells]}


def test_a_printed_all_over_nothing_is_found():
    nb = _nb(("gpus = []\nprint('the GPU was faster than the CPU:', all(t < 1 for t in gpus))",
              "the GPU was faster than the CPU: True\n"))
    assert vacuous_checks(nb) == ["cell 0: print of all(...) (True over nothing): use gl.check"]


def test_a_comparison_with_a_stand_in_is_found():
    nb = _nb(("gpt2 = float('-inf')\nprint('GPT-2 is below ours:', gpt2 < ours)", "GPT-2 is below ours: True\n"),
             ("import math\nok = x > -math.inf", ""))
    assert [f.split(":")[0] for f in vacuous_checks(nb)] == ["cell 0", "cell 1"]


def test_gl_check_is_not_a_vacuous_check():
    nb = _nb(("gl.check('the GPU was faster', [t < 1 for t in gpus], reason='no GPU')",
              "the GPU was faster: not measured here (no GPU)\n"))
    assert vacuous_checks(nb) == []


def test_a_direction_next_to_its_no_finding_is_found():
    nb = _nb(("print(v)", "tail - block: +0.067 ± 0.046 nats (3 seeds): within the noise: no finding\n"),
             ("print(...)", "the tail split's test loss is higher than the block split's: True\n"
                            "every run's test loss fell: True\n"))
    found = directions_in_noise(nb)
    assert len(found) == 1 and "tail split's test loss is higher" in found[0]


def test_a_finding_beyond_the_noise_may_be_checked():
    nb = _nb(("print(v)", "tail - block: +0.416 ± 0.015 nats (3 seeds): beyond the noise: tail is higher\n"
                          "the tail split's test loss is higher than the block split's: True\n"))
    assert directions_in_noise(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_the_committed_notebooks_draw_no_conclusion_beyond_their_outputs(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert vacuous_checks(nb) == []
    assert directions_in_noise(nb) == []
