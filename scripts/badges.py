#!/usr/bin/env python3
"""Colab badges and the README's table of notebooks, from one repository address and one git ref.

Both are written once, in pyproject.toml: the address in ``[project.urls] Repository``, the ref the badges open in
``[tool.gpt-lesson] colab-ref`` (``main`` between releases; the notebooks' setup cell installs the package from the
same ref, see scripts/setup_cell.py and scripts/release.py). This script rewrites

- the "Open in Colab" badge line in the first cell of every notebook,
- the table of notebooks in README.md, between ``<!-- notebooks:start -->`` and ``<!-- notebooks:end -->``,
  from notebooks/notebooks.json (what each notebook teaches and how long it runs).

    python scripts/badges.py          # rewrite what is out of date
    python scripts/badges.py --check  # only report; exit 1 if anything is out of date (tests do this too)

Outputs of the notebooks are kept: only those lines change.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from urllib.parse import urlparse

import nbformat

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
README = ROOT / "README.md"
START, END = "<!-- notebooks:start -->", "<!-- notebooks:end -->"

NOTEBOOKS_JSON = NB_DIR / "notebooks.json"
# One object per notebook, in order: "file", what it "teaches", "cpu_time_measured" (wall time of a full
# execution on the 2-core CPU the notebooks were run on) and "t4_time_estimate" (expected on a Colab T4).
FIELDS = ("file", "teaches", "cpu_time_measured", "t4_time_estimate")

BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)$", re.MULTILINE)


def load_notebooks(path: Path = NOTEBOOKS_JSON) -> list[dict[str, str]]:
    """The table of notebooks from notebooks/notebooks.json, each entry checked to have exactly `FIELDS`."""
    rows = json.loads(path.read_text(encoding="utf-8"))
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or sorted(row) != sorted(FIELDS):
            raise SystemExit(f"{path.name}: entry {i} must have exactly the fields {', '.join(FIELDS)}")
    return rows


NOTEBOOKS = load_notebooks()


# A repository Colab can open notebooks from: https://github.com/OWNER/NAME (GitHub's rules for the two names).
GITHUB_REPOSITORY_RE = re.compile(r"https://github\.com/[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?/(?!\.\.?$)[A-Za-z0-9_.-]+")


def github_repository(address: str) -> str | None:
    """``address`` without a trailing slash or ``.git`` if it is https://github.com/OWNER/NAME, else None."""
    url = address.strip().rstrip("/").removesuffix(".git")
    return url if GITHUB_REPOSITORY_RE.fullmatch(url) else None


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project.urls] Repository`` from pyproject.toml, without a trailing slash or ``.git``."""
    text = pyproject.read_text(encoding="utf-8")
    if tomllib is not None:
        url = tomllib.loads(text)["project"]["urls"]["Repository"]
    else:  # a plain 'Repository = "..."' line is all we need
        url = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
    if github_repository(url) is None:
        raise SystemExit(f"pyproject.toml: Repository must be https://github.com/<owner>/<repo> for Colab, got {url!r}")
    return github_repository(url)


def colab_ref(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[tool.gpt-lesson] colab-ref``: the git ref the badges open (and the setup cell installs from)."""
    text = pyproject.read_text(encoding="utf-8")
    if tomllib is not None:
        return tomllib.loads(text)["tool"]["gpt-lesson"]["colab-ref"]
    return re.search(r'^colab-ref\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)


def owner_repo(url: str) -> str:
    return urlparse(url).path.strip("/")


def colab_url(file: str, url: str, ref: str | None = None) -> str:
    """Colab's address of notebook ``file`` at git ref ``ref`` (default: pyproject's colab-ref)."""
    ref = ref if ref is not None else colab_ref()
    return f"https://colab.research.google.com/github/{owner_repo(url)}/blob/{ref}/notebooks/{file}"


# The ref a badge line opens (what scripts/release.py and the tests compare with the setup cell's).
BADGE_REF_RE = re.compile(r"\]\(https://colab\.research\.google\.com/github/[^/]+/[^/]+/blob/(?P<ref>[^/)]+)/notebooks/")


def badge(file: str, url: str, ref: str | None = None) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(file, url, ref)})"


def fix_notebook(nb, file: str, url: str, ref: str | None = None) -> list[str]:
    """Rewrite the badge line of ``nb`` in place; return what was wrong (empty: up to date)."""
    ref = ref if ref is not None else colab_ref()
    problems = []
    first = nb.cells[0]
    if first.cell_type != "markdown" or not BADGE_RE.search(first.source):
        problems.append(f"{file}: no Colab badge line in the first cell")
    else:
        new = BADGE_RE.sub(badge(file, url, ref), first.source, count=1)
        if new != first.source:
            problems.append(f"{file}: Colab badge out of date")
            first.source = new
    return problems


def readme_table(url: str, ref: str | None = None) -> str:
    ref = ref if ref is not None else colab_ref()
    lines = [
        "| notebook | what it teaches | run time, 2-core CPU (measured) | Colab T4 (estimate) |",
        "| --- | --- | ---: | ---: |",
    ]
    for row in NOTEBOOKS:
        file = row["file"]
        lines.append(
            f"| [{file}](notebooks/{file}) {badge(file, url, ref)} | {row['teaches']} "
            f"| {row['cpu_time_measured']} | {row['t4_time_estimate']} |"
        )
    note = (
        "CPU times are wall times of a full execution of each notebook (`python scripts/run_notebooks.py`) on an idle "
        "2-core CPU without a GPU (an Intel Xeon, 2026-12-06; docs/performance.md's figures come from an AMD EPYC), "
        "where notebook 06 trains the small `cpu` preset. T4 times are estimates, not "
        "measurements: Model 5 on a Colab T4 GPU for 05-07, and for 08 the notebook's own estimate from the FLOPs of "
        "its runs."
    )
    return "\n".join(lines) + "\n\n" + note


def fix_readme(text: str, url: str, ref: str | None = None) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"README.md: the markers {START} and {END} are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{readme_table(url, ref)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    args = ap.parse_args(argv)
    url, ref = repository_url(), colab_ref()
    problems = []
    for row in NOTEBOOKS:
        file = row["file"]
        path = NB_DIR / file
        nb = nbformat.read(path, as_version=4)
        found = fix_notebook(nb, file, url, ref)
        problems += found
        if found and not args.check:
            nbformat.write(nb, path)
    listed = {row["file"] for row in NOTEBOOKS}
    problems += [f"{p.name}: not listed in notebooks/notebooks.json"
                 for p in sorted(NB_DIR.glob("*.ipynb")) if p.name not in listed]
    text = README.read_text(encoding="utf-8")
    new = fix_readme(text, url, ref)
    if new != text:
        problems.append("README.md: table of notebooks out of date")
        if not args.check:
            README.write_text(new, encoding="utf-8")
    for p in problems:
        print(p)
    if args.check:
        return 1 if problems else 0
    print(f"{len(problems)} fix(es) written" if problems else "everything up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
