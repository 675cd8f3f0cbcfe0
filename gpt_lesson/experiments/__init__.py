"""Step 08: the lesson's open questions, answered by training runs instead of argument.

- `corpus`: *Gulliver's Travels* in its own compact vocabulary (`Vocab`), its splits and test parts;
- `runs`: what every run is (`RunSpec`), how it is trained (`train_run`) and compared (`compare`: a
  `gpt_lesson.verdict` of per-seed values, paired by seed);
- `registry`: what the experiments measure on (`Workbench`), their base class (`Experiment`), the registry
  (`EXPERIMENTS`, in run order; docs/experiments.md lists it) and `measure`;
- `questions`: one class per question (`Shift` also answers for any book: `other_book`).

`run_all` measures every registered experiment in order and returns `Results`; ``python -m gpt_lesson.experiments
--out DIR`` writes ``results.json``, ``table.md`` and the plots (matplotlib is imported by the plots only).
Notebook 08 measures them one by one: ``gl.experiments.measure("samplers", ctx, done)``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ..book import BookError, clean_text, load_book
from ..model import forward_flops
from ..tokens import encode
from .corpus import BLOCK_TEST, COURSE_BOOK, COURSE_TEST, LICENCE, TAIL_TEST, TRAIN_PART, Corpus, Vocab, gulliver
from .questions import Dropout, Licence, OneBatch, Practice, Regime, Samplers, Shift, Splits
from .registry import (EXPERIMENTS, REFRESH_DOCS, REGISTRY_END, REGISTRY_START, Experiment, Workbench, measure,
                       register, registry_section, registry_table, result_of, write_registry_docs)
from .runs import GPU_EPOCHS, Run, RunSpec, compare, setup, spread, train_run, verdict_dict

__all__ = ["BLOCK_TEST", "COURSE_BOOK", "COURSE_TEST", "EXPERIMENTS", "GPU_EPOCHS", "LICENCE", "REFRESH_DOCS",
           "REGISTRY_END", "REGISTRY_START", "TAIL_TEST", "TRAIN_PART", "Corpus", "Dropout", "Experiment", "Licence",
           "OneBatch", "Practice", "Regime", "Results", "Run", "RunSpec", "Samplers", "Shift", "Splits", "Vocab",
           "Workbench", "compare", "context", "gulliver", "measure", "other_book", "plot_differences", "register",
           "registry_section", "registry_table", "result_of", "run_all", "setup", "spread", "t4_estimate",
           "train_flops", "train_run", "verdict_dict", "write_registry_docs"]

E = TypeVar("E", bound=Experiment)


def context(raw_text: str, spec: RunSpec, progress: Callable[[str], None] | None = None) -> Workbench:
    """The workbench of the raw Gutenberg file: its corpus, and ``spec`` with the corpus's vocabulary."""
    corpus = gulliver(raw_text, spec.train.seq_len)
    return Workbench(corpus, spec.with_vocab(len(corpus.vocab)), progress)


def other_book(book: int | str, spec: RunSpec, *, progress: Callable[[str], None] | None = None) -> Shift | str:
    """`Shift` on any Gutenberg book: its first three quarters against its last quarter. Needs the network (or a
    cached copy); the reason, as one line, when the book cannot be had or is not a Gutenberg text (`run_all` calls
    it last: a bad book must not lose the other results)."""
    try:
        text = clean_text(load_book(book, verbose=False).text)
    except (ConnectionError, BookError, OSError) as e:
        return f"book {book} skipped: {str(e).splitlines()[0]}"
    gpt2 = encode(text)
    vocab = Vocab.of(gpt2)
    tokens = vocab.encode(gpt2)
    return Shift.on(spec.with_vocab(len(vocab)), tokens, int(0.75 * len(tokens)), epoch_tokens=int(0.9 * len(tokens)),
                    progress=progress, after="last quarter", before="first three quarters", book=book)


@dataclass
class Results:
    """Every experiment's result, by name in run order, with the spec and the corpus they ran on and the time they
    took; ``results[Samplers]`` is the `Samplers` result."""

    spec: RunSpec  # with the corpus's vocabulary
    corpus: Corpus = field(repr=False)
    experiments: dict[str, Experiment]
    seconds: float = 0.0
    other_book: Shift | str | None = None  # `other_book`'s result, or why it was skipped

    def __getitem__(self, kind: type[E]) -> E:
        found = result_of(self.experiments, kind)
        if found is None:
            raise KeyError(f"no {getattr(kind, '__name__', kind)} result here; measured: {', '.join(self.experiments)}")
        return found

    def all_runs(self) -> list[Run]:
        runs = [r for e in self.experiments.values() for r in e.all_runs()]
        return runs + (self.other_book.all_runs() if isinstance(self.other_book, Shift) else [])

    def report(self) -> dict[str, list[str]]:
        """Per experiment: the numbers (which change with the machine, the budget and the seeds)."""
        lines = {name: e.report() for name, e in self.experiments.items()}
        if self.other_book is not None:
            other = self.other_book
            lines["other_book"] = [other] if isinstance(other, str) else other.report()
        return lines

    def facts(self) -> dict[str, list[str]]:
        """Per experiment: lines that end in ': True' or ': False'."""
        return {name: e.facts() for name, e in self.experiments.items()}

    def to_json(self) -> dict:
        other = self.other_book.to_dict() if isinstance(self.other_book, Shift) else self.other_book
        c = self.corpus
        return {"setup": self.spec.to_dict(), "vocab": len(c.vocab), "tail_n": c.tail_n, "part4": c.part4,
                "seconds": self.seconds, "train_flops": train_flops(self.all_runs(), self.spec), "other_book": other,
                **{name: e.to_dict() for name, e in self.experiments.items()}}

    def write(self, out: str | os.PathLike) -> Path:
        """``results.json``, ``table.md`` (the numbers and the facts) and a PNG per plot into the folder ``out``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.to_json(), indent=1, allow_nan=False), encoding="utf-8")
        numbers, checks = self.report(), self.facts()
        md = [f"# Experiments ({self.spec.epochs:g} epochs, seeds {list(self.spec.seeds)})", ""]
        for name in numbers:
            md += [f"## {name}", "", *[f"- {line}" for line in numbers[name] + checks.get(name, [])], ""]
        (out / "table.md").write_text("\n".join(md), encoding="utf-8")
        figures = {name: e.plot() for name, e in self.experiments.items()}
        figures["differences"] = plot_differences(self.experiments.values())
        for name, fig in figures.items():
            if fig is not None:
                fig.savefig(out / f"{name}.png", dpi=120)
                plt.close(fig)
        return out


def run_all(spec: RunSpec, *, raw_text: str | None = None, book: int | str | None = None,
            progress: Callable[[str], None] | None = print) -> Results:
    """Every registered experiment on *Gulliver's Travels* (``raw_text``: the raw file; default `load_book`), in the
    registry's order, and `other_book` when ``book`` is given."""
    t0 = time.perf_counter()
    workbench = context(raw_text if raw_text is not None else load_book(verbose=False).text, spec, progress)
    done: dict[str, Experiment] = {}
    for cls in EXPERIMENTS.values():
        measure(cls, workbench, done)
    other = other_book(book, spec, progress=progress) if book is not None else None
    return Results(workbench.spec, workbench.corpus, done, time.perf_counter() - t0, other)


def train_flops(runs: list[Run], spec: RunSpec) -> float:
    """Training FLOPs of the runs: 3 forward passes' worth per step (`gpt_lesson.forward_flops`)."""
    per_step = 3 * forward_flops(spec.model, spec.train.batch_size, spec.train.seq_len)
    return float(sum(r.steps[-1] for r in runs) * per_step)


def t4_estimate(runs: list[Run], seconds: float, flops: float, *, scale: float = 1.0, step_overhead_s: float = 0.005,
                t4_flops: float = 8.1e12, efficiency: float = 0.3) -> dict:
    """An estimate, not a measurement, of the same runs with ``device="cuda"`` on a Colab T4, each ``scale`` times as
    long (the GPU budget over the budget they ran: ``setup(device="cuda").epochs / spec.epochs``): their training
    ``flops`` times ``scale`` at ``efficiency`` of a T4's fp32 peak, but no faster than ``step_overhead_s`` per step
    (a model this small leaves a GPU waiting on Python and kernel launches). Everything outside training in
    ``seconds`` (tokenizing, baselines, evaluation, the probe, plots) is counted once, at its measured time here: on a
    T4 the evaluations run on the GPU, but the longer runs also evaluate more often, so that part is a rough figure."""
    steps = sum(r.steps[-1] for r in runs)
    cpu_train = sum(r.train_seconds for r in runs)
    gpu_train = max(scale * flops / (t4_flops * efficiency), scale * steps * step_overhead_s)
    other = seconds - cpu_train
    return {"steps": steps, "cpu_train_s": cpu_train, "cpu_flops_per_s": flops / cpu_train, "scale": scale,
            "t4_steps": round(scale * steps), "t4_train_s": gpu_train, "other_s": other, "t4_s": gpu_train + other}


def plot_differences(experiments, ax=None):
    """Each question's answer (of the results ``experiments``), a difference in nats with an error bar of twice its
    noise (the seed spread of one seed's difference): the verdicts' rule, drawn. A filled dot is beyond the noise,
    an open one within it (no finding)."""
    from ..plots import new_axes

    items = [item for e in experiments for item in e.differences()]
    fig, ax = new_axes(ax, (8, 0.9 + 0.33 * max(len(items), 3)))
    for y, (_, d) in enumerate(items):
        ax.errorbar(d.difference, y, xerr=2 * d.noise, fmt="o", capsize=4, color="tab:blue",
                    mfc="tab:blue" if d.beyond else "white")
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(range(len(items))), [name for name, _ in items])
    ax.invert_yaxis()
    ax.set_xlabel("difference in loss (nats/token); bars: ± 2 × the seed spread; filled: beyond the noise")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
