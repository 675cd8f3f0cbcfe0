"""``python -m gpt_lesson.experiments --out DIR``: every experiment of notebook 08, written into a run folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

from ..config import add_flags, setting
from . import run_all, setup


@dataclass(frozen=True)
class Options:
    """The command's flags (``--out`` is required)."""

    out: str | None = setting(None, "run folder for results.json, table.md and the plots", metavar="FOLDER")
    quick: bool = setting(False, "2 seeds, a tenth of an epoch (what the tests run)")
    book: str | None = setting(None, "also a Gutenberg id (or URL, or file) for the other-book shift", metavar="BOOK")
    device: str = setting("cpu", "cpu or cuda")
    threads: int | None = setting(None, "CPU threads for torch; none: torch's choice", metavar="N")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gpt_lesson.experiments", description=__doc__.split("\n\n")[0])
    add_flags(p, Options)
    args = p.parse_args(argv)
    if args.out is None:
        p.error("--out FOLDER is required")
    if args.threads:
        torch.set_num_threads(args.threads)  # this command's own process
    book = int(args.book) if args.book is not None and args.book.isdigit() else args.book
    results = run_all(setup(args.quick, args.device), book=book)
    folder = results.write(args.out)
    facts = results.facts()
    for name, lines in results.report().items():
        print(f"[{name}]", *lines, *facts.get(name, []), sep="\n  ")
    print(f"{results.seconds:.0f} s; written to {folder}")


if __name__ == "__main__":
    main()
