#!/usr/bin/env python3
"""The project's own lint: rules about this code base that ruff cannot know, each a named check with its reason.

    python scripts/lint.py                # every check, one line each: "NAME: ok", or its findings as file:line
    python scripts/lint.py NAME [NAME..]  # only these checks

It exits 1 when any check finds something. .ci/run runs it right after ``ruff check .``, before the tests. A check
is a function ``check(root) -> list[str]`` of the repository at ``root`` that returns its findings, listed in
`CHECKS`; the first line of its docstring says what it wants, the rest why. tests/test_lint.py plants a violation of
every check, so that none can rot into one that never fails.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import inspect
import re
import sys
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "gpt_lesson"
STEP_MODULE = "gpt_lesson/step.py"
PLOTS_MODULE = "gpt_lesson.plots"

# The flags of the hand-written parsers that the flags made from dataclass fields replaced (issue 19). Commands in
# docs/, scripts/ and people's notes use them, so each keeps its spelling; tests/test_bench.py and tests/test_cli.py
# check what each one means.
OLD_BENCH_FLAGS = frozenset({
    "--device", "--preset", "--batch-size", "--seq-len", "--repeats", "--sweep", "--loss-chunk", "--vocab-multiple",
    "--compile", "--vocab-variant", "--chunk-variant", "--fused-adamw", "--no-hf", "--profile", "--gen-tokens",
    "--lesson-steps", "--threads", "--json"})
OLD_CLI_FLAGS = frozenset({
    "--preset", "--device", "--steps", "--batch-size", "--grad-accum", "--seq-len", "--lr", "--weight-decay",
    "--eval-every", "--eval-batches", "--grad-clip", "--seed", "--checkpoint-every", "--book", "--raw", "--offline",
    "--out", "--overwrite", "--resume", "--sample-tokens", "--compile", "--no-progress"})


def _modules(root: Path) -> Iterator[tuple[str, ast.Module]]:
    """(path relative to ``root``, syntax tree) of every module of the package, subpackages included."""
    for path in sorted((root / PACKAGE).rglob("*.py")):
        yield path.relative_to(root).as_posix(), ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# ---- one training step ------------------------------------------------------------------------------------------


def training_step_calls(source: str | ast.Module) -> list[tuple[int, str]]:
    """The calls in ``source`` (text or its syntax tree) that belong to the training step alone, as (line, call):
    ``<anything>.backward(...)`` (so ``torch.autograd.backward`` too, or ``backward`` imported from torch.autograd)
    and ``<name>.step(...)`` on a name containing scaler / opt (``self.scaler``, ``optimizer``, ``opt``)."""
    tree = ast.parse(source) if isinstance(source, str) else source
    backward_names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                      and node.module in ("torch", "torch.autograd") for a in node.names if a.name == "backward"}

    def steps_an_optimizer(func: ast.Attribute) -> bool:
        owner = func.value.id if isinstance(func.value, ast.Name) else getattr(func.value, "attr", "")
        return func.attr == "step" and any(word in owner.lower() for word in ("scaler", "opt"))

    found = []
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if (isinstance(func, ast.Name) and func.id in backward_names
                or isinstance(func, ast.Attribute) and (func.attr == "backward" or steps_an_optimizer(func))):
            found.append((node.lineno, ast.unparse(func)))
    return sorted(found)


def one_training_step(root: Path = ROOT) -> list[str]:
    """Only gpt_lesson/step.py calls backward or steps an optimizer or a gradient scaler.

    train(), the timer and the benchmark share `gpt_lesson.step.TrainStep`: autocast, the fp16 gradient scaler,
    gradient accumulation and clipping are written once. A second copy would drift from it, and the speed the
    benchmark measures would no longer be the speed the lesson trains at.
    """
    found = []
    for rel, tree in _modules(root):
        if rel != STEP_MODULE:
            found += [f"{rel}:{line}: {call} belongs to the training step: use gpt_lesson.step.TrainStep"
                      for line, call in training_step_calls(tree)]
    return found


# ---- options hold a TrainConfig ---------------------------------------------------------------------------------


def _fields(cls: ast.ClassDef) -> dict[str, int]:
    """The annotated names of a class body (a dataclass's fields) and their lines."""
    return {s.target.id: s.lineno for s in cls.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}


def options_hold_train_config(root: Path = ROOT) -> list[str]:
    """No ``...Options`` class of the package declares a field that `TrainConfig` has.

    A training setting (batch size, sequence length, loss chunk, compile, ...) has one default and one help text:
    TrainConfig's. A command's options hold a TrainConfig (``BenchOptions.train``) and make the flags of the settings
    they use with ``add_flags(..., TrainConfig, include=...)``. A copy has a default of its own, which drifts (the
    bench's loss_chunk and vocab_variant once did).
    """
    trees = dict(_modules(root))
    config = f"{PACKAGE}/config.py"
    train = [n for n in ast.walk(trees.get(config, ast.Module(body=[], type_ignores=[])))
             if isinstance(n, ast.ClassDef) and n.name == "TrainConfig"]
    if not train:
        return [f"{config}:1: no class TrainConfig to compare the options with"]
    settings = _fields(train[0])
    found = []
    for rel, tree in trees.items():
        for cls in (n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name.endswith("Options")):
            found += [f"{rel}:{line}: {cls.name}.{name} redeclares TrainConfig.{name} ({config}:{settings[name]}): "
                      f"hold a TrainConfig and make its flag with add_flags(..., TrainConfig, include=...)"
                      for name, line in _fields(cls).items() if name in settings]
    return found


# ---- matplotlib on first use ------------------------------------------------------------------------------------


def _imports_at_import_time(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module is imported: all but those in functions (which run when
    called) and under ``if TYPE_CHECKING:``."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo += ast.iter_child_nodes(node)


def _imported(node: ast.Import | ast.ImportFrom, rel: str) -> list[str]:
    """The absolute module names (and ``module.name`` for ``from module import name``) that a statement of the
    module at ``rel`` imports."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    package = rel.removesuffix(".py").split("/")[:-1]  # a module's package; __init__.py's is its own folder
    base = package[:len(package) - node.level + 1] if node.level else []
    module = ".".join(base + ([node.module] if node.module else []))
    return [module] + [f"{module}.{a.name}" for a in node.names]


def matplotlib_on_first_use(root: Path = ROOT) -> list[str]:
    """Only gpt_lesson/plots.py imports matplotlib as it is imported, and no module imports gpt_lesson.plots then.

    matplotlib takes seconds to import: ``import gpt_lesson`` (every command, every test, every notebook) must not
    pay for it, only a plot. An import inside a function runs on first use and is fine. tests/test_plots.py and
    tests/test_experiments.py check the same at run time in a fresh interpreter; this finds the line.
    """
    found = []
    for rel, tree in _modules(root):
        for node in _imports_at_import_time(tree):
            names = _imported(node, rel)
            bad = [n for n in names if n == PLOTS_MODULE or (rel != "gpt_lesson/plots.py" and n.split(".")[0] ==
                                                             "matplotlib")]
            if bad:
                found.append(f"{rel}:{node.lineno}: imports {bad[0]} as the module is imported: import it in the "
                             "function that plots")
    return sorted(found, key=lambda f: (f.split(":")[0], int(f.split(":")[1])))


# ---- flags keep their spelling ----------------------------------------------------------------------------------


def missing_flags(parser: argparse.ArgumentParser, old: frozenset[str], where: str) -> list[str]:
    """The flags of ``old`` that ``parser``'s ``--help`` does not list, as findings at ``where``."""
    listed = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", parser.format_help()))
    return [f"{where}: {flag}, a flag of the old hand-written parser, is gone from --help: keep its spelling"
            for flag in sorted(old - listed)]


def _parser_builder(root: Path, module: str, name: str) -> tuple[Callable[[], argparse.ArgumentParser], str]:
    """The package's parser-building function ``module.name`` (imported from ``root``) and its file:line."""
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    build = getattr(importlib.import_module(module), name)
    path = Path(inspect.getsourcefile(build)).resolve()
    rel = path.relative_to(root.resolve()).as_posix() if path.is_relative_to(root.resolve()) else str(path)
    return build, f"{rel}:{inspect.getsourcelines(build)[1]}"


def bench_flags_kept(root: Path = ROOT, *, parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``python -m gpt_lesson.bench --help`` lists every flag its old hand-written parser had (`OLD_BENCH_FLAGS`).

    Its flags are made from dataclass fields (BenchOptions, CommandOptions and TrainConfig's): renaming or moving a
    field renames its flag, and docs/performance.md, scripts/gpu_check.sh and people's notes call the bench with
    the old spellings. Checked on --help, without running a benchmark; ``parser``: check this one instead.
    """
    build, where = _parser_builder(root, f"{PACKAGE}.bench", "_parser")
    return missing_flags(parser or build(), OLD_BENCH_FLAGS, where)


def cli_flags_kept(root: Path = ROOT, *, parser: argparse.ArgumentParser | None = None) -> list[str]:
    """``python -m gpt_lesson --help`` lists every flag its old hand-written parser had (`OLD_CLI_FLAGS`).

    Its flags are made from the fields of RunOptions and TrainConfig: renaming a field renames its flag, and the
    README, the notebooks' text and people's notes train with the old spellings. ``parser``: check this one instead.
    """
    build, where = _parser_builder(root, f"{PACKAGE}.cli", "build_parser")
    return missing_flags(parser or build(), OLD_CLI_FLAGS, where)


CHECKS: dict[str, Callable[[Path], list[str]]] = {check.__name__: check for check in (
    one_training_step, options_hold_train_config, matplotlib_on_first_use, bench_flags_kept, cli_flags_kept)}


def run(names: list[str], root: Path = ROOT, out=print) -> int:
    """Run the checks ``names``; ``out`` gets one line per check; 1 if any found something (or could not run)."""
    failed = False
    for name in names:
        try:
            found = CHECKS[name](root)
        except Exception as e:  # a check that cannot run is a finding too, reported on its own line
            found = [f"could not run: {type(e).__name__}: {e}"]
        out(f"{name}: " + ("; ".join(found) if found else "ok"))
        failed = failed or bool(found)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checks", nargs="*", metavar="CHECK", help=f"only these: {', '.join(CHECKS)} (default: all)")
    args = ap.parse_args(argv)
    unknown = [n for n in args.checks if n not in CHECKS]
    if unknown:
        ap.error(f"unknown check(s) {', '.join(unknown)}; the checks are {', '.join(CHECKS)}")
    return run(args.checks or list(CHECKS))


if __name__ == "__main__":
    sys.exit(main())
