"""Step 08: the lesson's open questions, answered by training runs instead of argument.

- `corpus`: *Gulliver's Travels* in its own compact vocabulary (`Vocab`), its splits and test parts;
- `runs`: how every run is sized (`Setup`), trained (`train_run`) and compared (`difference`, a seed spread);
- `questions`: one class per question, in one registry (`EXPERIMENTS`): `Samplers` (random vs epoch vs without
  replacement), `OneBatch` (the course's one-batch test loss), `Splits` (tail vs block split), `Licence` (the
  licence in the course's test part), `Shift` (Parts I-III vs Part IV; `other_book` for any book), `Practice` (the
  course's training settings vs warmup + cosine decay, clipping, and weight decay on matrices only).

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

from ..book import BookError, clean_text, load_book
from ..model import forward_flops
from ..tokens import encode
from .corpus import BLOCK_TEST, COURSE_BOOK, COURSE_TEST, LICENCE, TAIL_TEST, Corpus, Vocab, gulliver
from .questions import (EXPERIMENTS, Context, Experiment, Licence, OneBatch, Practice, Samplers, Shift, Splits,
                        register)
from .runs import Difference, Run, Setup, difference, setup, spread, train_run

__all__ = ["BLOCK_TEST", "COURSE_BOOK", "COURSE_TEST", "EXPERIMENTS", "LICENCE", "TAIL_TEST", "Context", "Corpus",
           "Difference", "Experiment", "Licence", "OneBatch", "Practice", "Results", "Run", "Samplers", "Setup",
           "Shift", "Splits", "Vocab", "context", "difference", "gulliver", "measure", "other_book",
           "plot_differences", "register", "run_all", "setup", "spread", "t4_estimate", "train_flops", "train_run"]


def context(raw_text: str, setup: Setup, progress: Callable[[str], None] | None = None) -> Context:
    """The corpus of the raw Gutenberg file and the setup with the corpus's vocabulary."""
    corpus = gulliver(raw_text, setup.train.seq_len)
    return Context(corpus, setup.with_vocab(len(corpus.vocab)), progress)


def measure(name: str, ctx: Context, done: dict[str, Experiment]) -> Experiment:
    """Measure the registered experiment ``name``; ``done`` holds the results it needs (and gets this one)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; registered: {', '.join(EXPERIMENTS)}")
    cls = EXPERIMENTS[name]
    missing = [n for n in cls.needs if n not in done]
    if missing:
        raise ValueError(f"{name} needs the results of {missing}: measure those first")
    done[name] = cls.measure(ctx, done)
    return done[name]


def other_book(book: int | str, setup: Setup, *, progress: Callable[[str], None] | None = None) -> Shift | str:
    """`Shift` on any Gutenberg book: its first three quarters against its last quarter. Needs the network (or a
    cached copy); the reason, as one line, when the book cannot be had."""
    try:
        text = load_book(book, verbose=False).text
    except (ConnectionError, BookError, OSError) as e:
        return f"book {book} skipped: {str(e).splitlines()[0]}"
    gpt2 = encode(clean_text(text))
    vocab = Vocab.of(gpt2)
    tokens = vocab.encode(gpt2)
    ctx = Context(None, setup.with_vocab(len(vocab)), progress)  # type: ignore[arg-type]
    return Shift.on(ctx, tokens, int(0.75 * len(tokens)), epoch_tokens=int(0.9 * len(tokens)), after="last quarter",
                    before="first three quarters", book=book)


@dataclass
class Results:
    """Every experiment's result, by name, with the setup they ran with and the time they took."""

    setup: Setup
    found: dict[str, Experiment]
    seconds: float = 0.0
    other: Shift | str | None = None  # `other_book`'s result, or why it was skipped
    info: dict = field(default_factory=dict)

    def __getitem__(self, name: str) -> Experiment:
        return self.found[name]

    def all_runs(self) -> list[Run]:
        runs = [r for e in self.found.values() for r in e.all_runs()]
        return runs + (self.other.all_runs() if isinstance(self.other, Shift) else [])

    def report(self) -> dict[str, list[str]]:
        """Per experiment: the numbers (which change with the machine, the budget and the seeds)."""
        lines = {name: e.report() for name, e in self.found.items()}
        if self.other is not None:
            lines["other_book"] = [self.other] if isinstance(self.other, str) else self.other.report()
        return lines

    def facts(self) -> dict[str, list[str]]:
        """Per experiment: lines that end in ': True' or ': False'."""
        return {name: e.facts() for name, e in self.found.items()}

    def to_json(self) -> dict:
        other = self.other if isinstance(self.other, str) or self.other is None else self.other.to_dict()
        return {"setup": self.setup.to_dict(), **self.info, "seconds": self.seconds,
                "train_flops": train_flops(self.all_runs(), self.setup), "other_book": other,
                **{name: e.to_dict() for name, e in self.found.items()}}

    def write(self, out: str | os.PathLike) -> Path:
        """``results.json``, ``table.md`` (the numbers and the facts) and a PNG per plot into the folder ``out``."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(self.to_json(), indent=1, allow_nan=False), encoding="utf-8")
        numbers, checks = self.report(), self.facts()
        md = [f"# Experiments ({self.setup.epochs:g} epochs, seeds {list(self.setup.seeds)})", ""]
        for name in numbers:
            md += [f"## {name}", "", *[f"- {line}" for line in numbers[name] + checks.get(name, [])], ""]
        (out / "table.md").write_text("\n".join(md), encoding="utf-8")
        figures = {name: e.plot() for name, e in self.found.items()}
        figures["differences"] = plot_differences(self.found.values())
        for name, fig in figures.items():
            if fig is not None:
                fig.savefig(out / f"{name}.png", dpi=120)
                plt.close(fig)
        return out


def run_all(setup: Setup, *, raw_text: str | None = None, book: int | str | None = None,
            progress: Callable[[str], None] | None = print) -> Results:
    """Every registered experiment on *Gulliver's Travels* (``raw_text``: the raw file; default `load_book`), and
    `other_book` when ``book`` is given."""
    t0 = time.perf_counter()
    ctx = context(raw_text if raw_text is not None else load_book(verbose=False).text, setup, progress)
    done: dict[str, Experiment] = {}
    for name in EXPERIMENTS:
        measure(name, ctx, done)
    other = other_book(book, setup, progress=progress) if book is not None else None
    info = {"vocab": len(ctx.corpus.vocab), "tail_n": ctx.corpus.tail_n, "part4": ctx.corpus.part4}
    return Results(ctx.setup, done, time.perf_counter() - t0, other, info)


def train_flops(runs: list[Run], setup: Setup) -> float:
    """Training FLOPs of the runs: 3 forward passes' worth per step (`gpt_lesson.forward_flops`)."""
    per_step = 3 * forward_flops(setup.model, setup.train.batch_size, setup.train.seq_len)
    return float(sum(r.steps[-1] for r in runs) * per_step)


def t4_estimate(runs: list[Run], seconds: float, flops: float, *, step_overhead_s: float = 0.005,
                t4_flops: float = 8.1e12, efficiency: float = 0.3) -> dict:
    """An estimate, not a measurement, of the same runs with ``device="cuda"`` on a Colab T4: their training ``flops``
    at ``efficiency`` of a T4's fp32 peak, but no faster than ``step_overhead_s`` per step (a model this small leaves
    a GPU waiting on Python and kernel launches). Everything outside training in ``seconds`` (tokenizing,
    evaluation, plots) is counted at its measured time here: an upper bound, since evaluation would run on the GPU."""
    steps = sum(r.steps[-1] for r in runs)
    cpu_train = sum(r.train_seconds for r in runs)
    gpu_train = max(flops / (t4_flops * efficiency), steps * step_overhead_s)
    other = seconds - cpu_train
    return {"steps": steps, "cpu_train_s": cpu_train, "cpu_flops_per_s": flops / cpu_train, "t4_train_s": gpu_train,
            "other_s": other, "t4_s": gpu_train + other}


def plot_differences(found, ax=None):
    """Each question's answer, a difference in nats, with an error bar of twice its seed spread."""
    from ..plots import new_axes

    items = [item for e in found for item in e.differences()]
    fig, ax = new_axes(ax, (8, 3.5))
    ys = range(len(items))
    ax.errorbar([d.difference for _, d in items], ys, xerr=[2 * d.spread for _, d in items], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(ys), [name for name, _ in items])
    ax.set_xlabel("difference in test loss (nats/token), bars: ± 2 seed spreads")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
