"""``import gpt_lesson`` stays light: notebook 08's experiments and matplotlib load on first use, not before."""

import subprocess
import sys

import pytest

import gpt_lesson


def test_import_loads_neither_the_experiments_nor_matplotlib_until_used():
    code = """
import sys
import gpt_lesson as gl
print("gpt_lesson.experiments" in sys.modules, "matplotlib" in sys.modules)
run_all = gl.experiments.run_all  # first use: imports the subpackage
print("gpt_lesson.experiments" in sys.modules, run_all is sys.modules["gpt_lesson.experiments"].run_all)
print("experiments" in dir(gl), len(gl.experiments.EXPERIMENTS) > 0, gl.experiments.setup(quick=True).seeds)
print("matplotlib" in sys.modules)  # the experiments import it only to plot
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[:4] == ["False False", "True True", "True True (0, 1)", "False"]


def test_an_unknown_attribute_is_still_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'experiment'"):
        gpt_lesson.experiment
    assert gpt_lesson.experiments.run_all is __import__("gpt_lesson.experiments").experiments.run_all
