"""The registry of experiments: what they measure on (`Workbench`), their base class, and how one is measured.

An experiment names what it reuses from another as typed parameters of its ``measure``::

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> OneBatch: ...

`measure` (the function) hands it the result of that class, found by its type among those measured before; the
registry's order is the run order, so a class may only need classes registered before it. The section of
``docs/experiments.md`` between the registry markers is generated from here (`write_registry_docs`).
"""

from __future__ import annotations

import inspect
import math
import os
import typing
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import ClassVar, TypeVar

import torch

from .corpus import Corpus
from ..verdicts import Verdict
from .runs import Run, RunSpec, verdict_dict


@dataclass(frozen=True)
class Workbench:
    """What every experiment measures on: the corpus, the run spec (with the corpus's vocabulary), a progress line."""

    corpus: Corpus
    spec: RunSpec
    progress: Callable[[str], None] | None = None

    @property
    def setup(self) -> RunSpec:
        """Notebook 08's name for ``spec`` (``corpus, S = ctx.corpus, ctx.setup``)."""
        return self.spec

    def say(self, msg: str) -> None:
        if self.progress is not None:
            self.progress(msg)


class Experiment:
    """The base of every experiment: a dataclass whose instance is its result, with its report, facts, plot, runs
    and JSON form.

    A subclass sets ``name`` (its key in results and ``results.json``), ``question`` (one line, for the docs) and
    implements ``measure(workbench, **needed)``: its parameters after the workbench, each typed with an experiment
    class, are the results it reuses (`needs`)."""

    name: ClassVar[str]
    question: ClassVar[str]
    json_properties: ClassVar[tuple[str, ...]] = ()  # computed values written into results.json too

    @classmethod
    def measure(cls, workbench: Workbench, **needed: Experiment) -> Experiment:
        raise NotImplementedError

    @classmethod
    def needs(cls) -> dict[str, type[Experiment]]:
        """The results ``measure`` reuses: its parameter name -> the experiment class it is typed with."""
        hints = typing.get_type_hints(cls.measure, localns={cls.__name__: cls})  # its own name: not bound yet
        params = inspect.signature(cls.measure).parameters
        return {p: hints[p] for p in params
                if isinstance(hints.get(p), type) and issubclass(hints[p], Experiment)}

    def report(self) -> list[str]:
        raise NotImplementedError

    def facts(self) -> list[str]:
        return []

    def plot(self, ax=None):
        return None

    def differences(self) -> list[tuple[str, Verdict]]:
        """The answers in nats, as (label, verdict), for `plot_differences`."""
        return []

    def all_runs(self) -> list[Run]:
        """The runs this experiment trained (not those it borrowed from another)."""
        return []

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return _plain({**d, **{p: getattr(self, p) for p in self.json_properties}})


EXPERIMENTS: dict[str, type[Experiment]] = {}  # by name, in run order

E = TypeVar("E", bound=Experiment)


def register(cls: type[E]) -> type[E]:
    """Add an experiment to the registry; it runs after those registered before it (which it may need)."""
    question = getattr(cls, "question", "")
    if not isinstance(question, str) or not question.strip() or "\n" in question:
        raise TypeError(f"{cls.__name__}.question must be one line of text (the docs list it); got {question!r}")
    if cls.name in EXPERIMENTS and EXPERIMENTS[cls.name] is not cls:
        raise ValueError(f"an experiment named {cls.name!r} is registered already ({EXPERIMENTS[cls.name].__name__})"
                         f"; give {cls.__name__} another name")
    missing = [k.name for k in cls.needs().values() if EXPERIMENTS.get(k.name) is not k]
    if missing:
        raise ValueError(f"{cls.name} needs {missing}: register those first")
    EXPERIMENTS[cls.name] = cls
    return cls


def result_of(results: Mapping[str, Experiment], kind: type[E]) -> E | None:
    """The result of the experiment class ``kind`` among ``results`` (found by its type), or None."""
    return next((r for r in results.values() if type(r) is kind), None)


def measure(experiment: str | type[E], workbench: Workbench, done: MutableMapping[str, Experiment]) -> E:
    """Measure one registered experiment (its name or its class); ``done`` holds the results measured before it,
    by name: it gets those it needs from there, by type, and this one is added."""
    cls = EXPERIMENTS.get(experiment) if isinstance(experiment, str) else experiment
    if cls is None or EXPERIMENTS.get(getattr(cls, "name", None)) is not cls:
        raise ValueError(f"unknown experiment {experiment!r}; registered: {', '.join(EXPERIMENTS)}")
    needed = {p: result_of(done, kind) for p, kind in cls.needs().items()}
    missing = [kind.name for p, kind in cls.needs().items() if needed[p] is None]
    if missing:
        raise ValueError(f"{cls.name} needs the results of {missing}: measure those first")
    result = cls.measure(workbench, **needed)
    done[cls.name] = result
    return result  # type: ignore[return-value]


def _plain(v):
    """JSON-ready: runs and verdicts as dicts, tensors and models left out, NaN as None."""
    if isinstance(v, Run):
        return v.to_dict()
    if isinstance(v, Verdict):
        return _plain(verdict_dict(v))
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items() if not isinstance(x, (torch.Tensor, torch.nn.Module))}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v if not isinstance(x, torch.nn.Module)]
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


# ---- the generated section of docs/experiments.md ----------------------------------------------------------------

REGISTRY_START = "<!-- registry:start -->"
REGISTRY_END = "<!-- registry:end -->"
REFRESH_DOCS = 'python -c "import gpt_lesson.experiments as ex; ex.write_registry_docs(\'docs/experiments.md\')"'


def registry_table() -> str:
    """The registered experiments in run order, as a Markdown table: name, class, question, the results reused."""
    rows = [f"<!-- generated from gpt_lesson.experiments.EXPERIMENTS; do not edit, refresh with: {REFRESH_DOCS} -->",
            "| # | name | class | question | reuses |", "| --- | --- | --- | --- | --- |"]
    for i, cls in enumerate(EXPERIMENTS.values(), start=1):
        reuses = ", ".join(f"`{kind.name}`" for kind in cls.needs().values())
        question = cls.question.replace("|", "\\|")
        rows.append(f"| {i} | `{cls.name}` | `{cls.__name__}` | {question} | {reuses} |")
    return "\n".join(rows)


def registry_section(text: str) -> str:
    """What ``text`` holds between the registry markers (stripped); a ValueError when the markers are missing."""
    start, end = text.find(REGISTRY_START), text.find(REGISTRY_END)
    if start < 0 or end < start:
        raise ValueError(f"no {REGISTRY_START} ... {REGISTRY_END} section in this text: add the two markers, each "
                         "on its own line, where the list of experiments belongs")
    return text[start + len(REGISTRY_START) : end].strip()


def write_registry_docs(path: str | os.PathLike = "docs/experiments.md") -> bool:
    """Rewrite the registry section of the Markdown file ``path`` from `EXPERIMENTS`; True when it changed."""
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    registry_section(text)  # the markers are there
    head, rest = text.split(REGISTRY_START, 1)
    _, tail = rest.split(REGISTRY_END, 1)
    new = f"{head}{REGISTRY_START}\n{registry_table()}\n{REGISTRY_END}{tail}"
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text
