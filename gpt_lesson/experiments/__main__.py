"""``python -m gpt_lesson.experiments --out DIR``: every experiment of notebook 08, written into a run folder."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

import torch

from ..config import TrainConfig, add_flags, flags_given, setting
from ..device import pick_device
from . import GPU_EPOCHS, Practice, RunSpec, run_all, setup

# TrainConfig fields without a flag here: each run sets them itself (its steps from the budget, its seed, its
# sampler), the experiments vary them (the sampler, the training practice's switches), or they do not apply
# (evaluation batches and checkpoints: runs are evaluated on whole test parts and never saved; the window length is
# the experiment preset's, which sizes the corpus's windows and the model's context together).
SET_BY_THE_EXPERIMENTS = ("steps", "seed", "sampler", "eval_every", "eval_batches", "checkpoint_every", "seq_len",
                          *dict.fromkeys(k for changes in Practice.variants(1).values() for k in changes))


@dataclass(frozen=True)
class Options:
    """The command's own flags (``--out`` is required); the training settings' flags come from `TrainConfig`."""

    out: str | None = setting(None, "run folder for results.json, table.md and the plots", metavar="FOLDER")
    quick: bool = setting(False, "2 seeds, a tenth of an epoch (what the tests run)")
    book: str | None = setting(None, "also a Gutenberg id (or URL, or file) for the other-book shift", metavar="BOOK")
    device: str = setting("cpu", f"cpu, cuda or auto (cuda when there is a GPU); on a GPU every run trains "
                                 f"{GPU_EPOCHS:g} epochs instead of 1")
    threads: int | None = setting(None, "CPU threads for torch; none: torch's choice", metavar="N")


def build_parser() -> argparse.ArgumentParser:
    """`Options`' flags, and a flag per `TrainConfig` field that the experiments leave to every run alike."""
    p = argparse.ArgumentParser(prog="python -m gpt_lesson.experiments", description=__doc__.split("\n\n")[0])
    add_flags(p, Options)
    add_flags(p.add_argument_group("training settings of every run (TrainConfig; a flag not given keeps the "
                                   "experiment preset's value)"),
              TrainConfig, keep_unset=True, default_note="TrainConfig's ", exclude=SET_BY_THE_EXPERIMENTS)
    return p


def parse(argv: list[str] | None = None) -> tuple[Options, RunSpec]:
    """The command line's options and the spec of every run (``--quick``, ``--device`` and the training flags)."""
    p = build_parser()
    args = p.parse_args(argv)
    opts = Options(**{f.name: getattr(args, f.name) for f in fields(Options)})
    if opts.out is None:
        p.error("--out FOLDER is required")
    try:
        spec = setup(opts.quick, pick_device(opts.device)).with_train(**flags_given(args, TrainConfig))
    except (ValueError, RuntimeError) as e:
        p.error(str(e))
    return opts, spec


def main(argv: list[str] | None = None) -> None:
    opts, spec = parse(argv)
    if opts.threads:
        torch.set_num_threads(opts.threads)  # this command's own process
    book = int(opts.book) if opts.book is not None and opts.book.isdigit() else opts.book
    results = run_all(spec, book=book)
    folder = results.write(opts.out)
    facts = results.facts()
    for name, lines in results.report().items():
        print(f"[{name}]", *lines, *facts.get(name, []), sep="\n  ")
    print(f"{results.seconds:.0f} s; written to {folder}")


if __name__ == "__main__":
    main()
