"""scripts/lint.py: every check passes on this repository and finds a violation planted in a copy of a source.

The planted violations keep each check honest: a check that can no longer fail (a regex that stopped matching, a
walk that skips the folder) fails here. Each AST check runs on a small package written into tmp_path; each flag check
on a parser that lacks one old flag.
"""

import argparse
import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("lint", ROOT / "scripts" / "lint.py")
lint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint)

TRAIN_CONFIG = "from dataclasses import dataclass\n\n@dataclass\nclass TrainConfig:\n    batch_size: int = 16\n    " \
               "compile: bool = False\n"


def package(tmp_path: Path, files: dict[str, str]) -> Path:
    """A repository at tmp_path whose package holds ``files`` (path under gpt_lesson/: source), with a config.py."""
    for rel, source in {"config.py": TRAIN_CONFIG, **files}.items():
        path = tmp_path / "gpt_lesson" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source, encoding="utf-8")
    return tmp_path


def without_flag(old: frozenset[str], flag: str) -> argparse.ArgumentParser:
    """A parser with every flag of ``old`` but ``flag`` (a ``--no-x`` flag comes as ``--x/--no-x``)."""
    p = argparse.ArgumentParser()
    for name in sorted(old - {flag}):
        if name.startswith("--no-"):
            p.add_argument("--" + name[5:], action=argparse.BooleanOptionalAction)
        else:
            p.add_argument(name)
    return p


def test_every_check_passes_here_and_prints_one_line(capsys):
    assert lint.main([]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{name}: ok" for name in lint.CHECKS]


def test_every_check_has_a_reason_and_a_planted_violation():
    assert set(PLANTED) == set(lint.CHECKS), "plant a violation of the new check in PLANTED"
    for name, check in lint.CHECKS.items():
        doc = check.__doc__ or ""
        assert len(doc.strip().split("\n\n")) >= 2, f"{name}: its docstring says what it wants, then why"


# ---- the planted violations: (files of a package, what the finding starts with) --------------------------------


def plant_training_step(tmp_path):
    root = package(tmp_path, {"step.py": "def step(loss, opt):\n    loss.backward()\n    opt.step()\n",
                              "experiments/runs.py": "def go(model, x, y):\n    loss = model.loss(x, y)\n"
                                                     "    loss.backward()\n"})
    return lint.one_training_step(root), ["gpt_lesson/experiments/runs.py:3: loss.backward belongs"]


def plant_options(tmp_path):
    root = package(tmp_path, {"bench.py": "class BenchOptions:\n    repeats: int = 3\n    compile: bool = False\n"})
    return lint.options_hold_train_config(root), ["gpt_lesson/bench.py:3: BenchOptions.compile redeclares "
                                                  "TrainConfig.compile (gpt_lesson/config.py:6)"]


def plant_matplotlib(tmp_path):
    root = package(tmp_path, {"plots.py": "import matplotlib.pyplot as plt\n",
                              "__init__.py": "def plot():\n    from . import plots\n",  # on first use: fine
                              "experiments/__init__.py": "try:\n    from ..plots import plot_losses\nexcept "
                                                         "ImportError:\n    pass\n",
                              "cli.py": "import sys\n\n\nclass A:\n    import matplotlib\n"})
    return lint.matplotlib_on_first_use(root), ["gpt_lesson/cli.py:5: imports matplotlib",
                                                "gpt_lesson/experiments/__init__.py:2: imports gpt_lesson.plots"]


def plant_bench_flags(tmp_path):
    return lint.bench_flags_kept(parser=without_flag(lint.OLD_BENCH_FLAGS, "--no-hf")), ["gpt_lesson/bench.py:"]


def plant_cli_flags(tmp_path):
    return lint.cli_flags_kept(parser=without_flag(lint.OLD_CLI_FLAGS, "--seq-len")), ["gpt_lesson/cli.py:"]


PLANTED = {"one_training_step": plant_training_step, "options_hold_train_config": plant_options,
           "matplotlib_on_first_use": plant_matplotlib, "bench_flags_kept": plant_bench_flags,
           "cli_flags_kept": plant_cli_flags}


@pytest.mark.parametrize("name", list(PLANTED))
def test_each_check_finds_its_planted_violation(name, tmp_path):
    found, expected = PLANTED[name](tmp_path)
    assert len(found) == len(expected), found
    for finding, start in zip(found, expected):
        assert finding.startswith(start), (finding, start)
    if name.endswith("_flags_kept"):
        flag = "--no-hf" if name.startswith("bench") else "--seq-len"
        assert f": {flag}, a flag of the old hand-written parser, is gone" in found[0]


def test_a_finding_fails_the_run_on_its_own_line(monkeypatch, tmp_path):
    root = package(tmp_path, {"bench.py": "class BenchOptions:\n    batch_size: int = 16\n"})
    lines = []
    assert lint.run(["options_hold_train_config", "one_training_step"], root, out=lines.append) == 1
    assert lines[0].startswith("options_hold_train_config: gpt_lesson/bench.py:2: BenchOptions.batch_size")
    assert lines[1] == "one_training_step: ok"
    monkeypatch.setitem(lint.CHECKS, "broken", lambda root: 1 / 0)
    assert lint.run(["broken"], root, out=lines.append) == 1
    assert lines[2] == "broken: could not run: ZeroDivisionError: division by zero"


def test_an_unknown_check_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        lint.main(["one_training_step", "no_such_check"])
    assert e.value.code == 2 and "unknown check(s) no_such_check" in capsys.readouterr().err


def test_the_training_step_detector_on_sources_a_module_might_contain():
    must_find = ["loss.backward()", "self.scaler.scale(loss).backward()", "torch.autograd.backward(loss)",
                 "from torch.autograd import backward as bw\nbw(loss)", "self.scaler.step(self.optimizer)",
                 "optimizer.step()", "opt.step(closure)", "self.opt.step()"]
    for src in must_find:
        assert lint.training_step_calls(src), src
    must_pass = ["c.step(x, y)", "scheduler.step()", "def backward(ctx, g):\n    return g", "backward(x)",
                 "print('loss.backward()')  # optimizer.step()"]
    for src in must_pass:
        assert not lint.training_step_calls(src), src
