#!/usr/bin/env python3
"""Colab badges, the Colab install line and the README's table of notebooks, from one repository address.

The address is written once, in pyproject.toml (``[project.urls] Repository``). This script rewrites

- the "Open in Colab" badge line in the first cell of every notebook,
- the ``%pip install ... @ git+<repository>`` line of every notebook's setup cell,
- the table of notebooks in README.md, between ``<!-- notebooks:start -->`` and ``<!-- notebooks:end -->``.

    python scripts/badges.py          # rewrite what is out of date
    python scripts/badges.py --check  # only report; exit 1 if anything is out of date (tests do this too)

Outputs of the notebooks are kept: only those lines change.
"""

from __future__ import annotations

import argparse
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

# file, what it teaches, wall time of a full execution on the 2-core CPU the notebooks were run on (measured),
# expected wall time on a Colab T4 runtime (an estimate, not a measurement).
NOTEBOOKS = [
    ("01_download_and_clean.ipynb", "Download *Gulliver's Travels*, look at the raw file (BOM, CRLF, header, licence), clean it step by step", "23 s", "< 1 min"),
    ("02_tokenize.ipynb", "GPT-2 BPE with tiktoken: round trip, word pieces, `\\r` tokens, 158,153 raw vs 143,690 clean tokens, unused vocabulary", "26 s", "< 1 min"),
    ("03_train_test_split.ipynb", "The lesson's 90/10 tail split, why it is biased (the tail is Part IV), and a random block split", "17 s", "< 1 min"),
    ("04_random_batches.ipynb", "The random-batch sampler in four lines; how often each token is seen after 500 batches vs one DataLoader epoch", "26 s", "< 1 min"),
    ("05_cpu_vs_gpu.ipynb", "Model 5 (123,849,984 parameters), honest CPU/GPU timing of a 16×256 forward pass, FLOP/s", "62 s", "~4 min (mostly the CPU timing)"),
    ("06_train_model5.ipynb", "Train 500 random batches (Model 5 on a GPU, a small preset on a CPU), loss curves, samples, checkpoint", "7.5 min", "~5 min"),
    ("07_generate.ipynb", "Generate: temperature, top-k, greedy, the course's sampling quirk, the KV cache", "30 s", "< 1 min"),
]

BADGE_RE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)$", re.MULTILINE)
INSTALL_RE = re.compile(r'^(?P<indent>[ \t]*)%pip install -q "gpt-lesson\[notebooks\] @ git\+[^"]*"$', re.MULTILINE)


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str:
    """``[project.urls] Repository`` from pyproject.toml, without a trailing slash or ``.git``."""
    text = pyproject.read_text(encoding="utf-8")
    if tomllib is not None:
        url = tomllib.loads(text)["project"]["urls"]["Repository"]
    else:  # a plain 'Repository = "..."' line is all we need
        url = re.search(r'^Repository\s*=\s*"([^"]+)"', text, re.MULTILINE).group(1)
    url = url.rstrip("/").removesuffix(".git")
    parts = urlparse(url)
    if parts.netloc != "github.com" or len(parts.path.strip("/").split("/")) != 2:
        raise SystemExit(f"pyproject.toml: Repository must be https://github.com/<owner>/<repo> for Colab, got {url!r}")
    return url


def owner_repo(url: str) -> str:
    return urlparse(url).path.strip("/")


def colab_url(file: str, url: str) -> str:
    return f"https://colab.research.google.com/github/{owner_repo(url)}/blob/main/notebooks/{file}"


def badge(file: str, url: str) -> str:
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(file, url)})"


def install_line(url: str) -> str:
    return f'%pip install -q "gpt-lesson[notebooks] @ git+{url}"'


def fix_notebook(nb, file: str, url: str) -> list[str]:
    """Rewrite the badge and install lines of ``nb`` in place; return what was wrong (empty: up to date)."""
    problems = []
    first = nb.cells[0]
    if first.cell_type != "markdown" or not BADGE_RE.search(first.source):
        problems.append(f"{file}: no Colab badge line in the first cell")
    else:
        new = BADGE_RE.sub(badge(file, url), first.source, count=1)
        if new != first.source:
            problems.append(f"{file}: Colab badge out of date")
            first.source = new
    code = [c for c in nb.cells if c.cell_type == "code"]
    if not code or not INSTALL_RE.search(code[0].source):
        problems.append(f"{file}: the first code cell has no '%pip install ... @ git+' line")
    else:
        new = INSTALL_RE.sub(lambda m: m["indent"] + install_line(url), code[0].source, count=1)
        if new != code[0].source:
            problems.append(f"{file}: Colab install line out of date")
            code[0].source = new
    return problems


def readme_table(url: str) -> str:
    lines = [
        "| notebook | what it teaches | run time, 2-core CPU (measured) | Colab T4 (estimate) |",
        "| --- | --- | ---: | ---: |",
    ]
    for file, teaches, cpu, t4 in NOTEBOOKS:
        lines.append(f"| [{file}](notebooks/{file}) [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab_url(file, url)}) | {teaches} | {cpu} | {t4} |")
    note = (
        "CPU times are wall times of a full execution (`jupyter nbconvert --execute`) on a 2-core CPU without a GPU, "
        "where notebook 06 trains the small `cpu` preset. Other jobs shared those 2 cores during some runs of 01-05, "
        "so read those as upper bounds (06 and 07 were re-run on an idle machine); "
        "T4 times are estimates for Model 5 on a Colab T4 GPU, not measurements."
    )
    return "\n".join(lines) + "\n\n" + note


def fix_readme(text: str, url: str) -> str:
    if START not in text or END not in text:
        raise SystemExit(f"README.md: the markers {START} and {END} are missing")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{readme_table(url)}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    args = ap.parse_args(argv)
    url = repository_url()
    problems = []
    for file, *_ in NOTEBOOKS:
        path = NB_DIR / file
        nb = nbformat.read(path, as_version=4)
        found = fix_notebook(nb, file, url)
        problems += found
        if found and not args.check:
            nbformat.write(nb, path)
    listed = {file for file, *_ in NOTEBOOKS}
    problems += [f"{p.name}: not listed in scripts/badges.py" for p in sorted(NB_DIR.glob("*.ipynb")) if p.name not in listed]
    text = README.read_text(encoding="utf-8")
    new = fix_readme(text, url)
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
