"""Plots return their Figure with the data drawn (no image comparison)."""

import matplotlib

matplotlib.use("Agg")

import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import gpt_lesson  # noqa: E402
from gpt_lesson import History, plot_coverage, plot_losses, plot_timings  # noqa: E402
from gpt_lesson import plots  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def test_importing_the_package_does_not_import_matplotlib():
    """matplotlib takes seconds to import; only a plot should pay for it."""
    code = "import gpt_lesson, sys; assert 'matplotlib' not in sys.modules, 'import gpt_lesson imported matplotlib'"
    root = Path(__file__).resolve().parents[1]
    run = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]


@pytest.mark.parametrize("name", ["plot_losses", "plot_timings", "plot_coverage"])
def test_plot_functions_are_package_attributes(name):
    assert getattr(gpt_lesson, name) is getattr(plots, name)


def test_plot_losses_draws_train_and_test():
    h = History(train_loss=[5.0, 4.0, 3.5, 3.0, 2.8], eval_steps=[0, 2, 5], test_loss=[5.1, 4.2, 3.3])
    fig = plot_losses(h)
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    train_line, test_line = ax.get_lines()
    assert list(train_line.get_xdata()) == [0, 1, 2, 3, 4]
    assert list(train_line.get_ydata()) == h.train_loss
    assert list(test_line.get_xdata()) == h.eval_steps
    assert list(test_line.get_ydata()) == h.test_loss
    assert len(ax.get_legend().get_texts()) == 2


def test_plot_losses_without_test_loss_and_log_scale():
    fig = plot_losses(History(train_loss=[3.0, 2.0, 1.0]), log_scale=True)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 1
    assert ax.get_yscale() == "log"


def test_plot_losses_on_given_axes():
    fig, ax = plt.subplots()
    out = plot_losses(History(train_loss=[1.0, 0.5]), ax=ax)
    assert out is fig
    assert len(ax.get_lines()) == 1


def test_plot_timings_one_bar_per_label():
    seconds = {"CPU": 8.1, "GPU": 0.05, "GPU fp16": 0.02}
    fig = plot_timings(seconds)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 3
    assert [b.get_height() for b in bars] == pytest.approx(list(seconds.values()))
    assert [t.get_text() for t in ax.get_xticklabels()] == list(seconds)
    assert len(ax.texts) == 3  # each bar is labelled with its value


def test_plot_coverage_bars_per_name_are_shares():
    counts = {
        "random": torch.tensor([0, 1, 1, 2, 3, 0, 15, 1]),
        "epoch": torch.ones(8, dtype=torch.long),
    }
    fig = plot_coverage(counts, max_count=4)
    ax = fig.axes[0]
    containers = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(containers) == 2
    assert all(len(c) == 5 for c in containers)  # counts 0, 1, 2, 3, 4+
    random_heights = [b.get_height() for b in containers[0]]
    # 0 twice, 1 three times, 2 once, 3 once, 4+ once (the 15), out of 8 positions, in %.
    assert random_heights == pytest.approx([25.0, 37.5, 12.5, 12.5, 12.5])
    assert [b.get_height() for b in containers[1]] == pytest.approx([0, 100, 0, 0, 0])
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "4+"


def test_plot_losses_draws_baselines_and_an_epoch_axis():
    h = History(train_loss=[10.0, 8.0, 7.0, 6.5], eval_steps=[0, 3], test_loss=[10.0, 7.0])
    fig = plot_losses(h, baselines={"uniform": 10.8, "unigram": 6.7}, tokens_per_step=100, epoch_tokens=200)
    ax = fig.axes[0]
    assert {round(line.get_ydata()[0], 2) for line in ax.get_lines()[2:]} == {10.8, 6.7}
    assert [a.get_xlabel() for a in ax.child_axes] == ["epochs: tokens seen / training tokens"]
    with pytest.raises(ValueError, match="both"):
        plot_losses(h, tokens_per_step=100)


def test_log_scale_ticks_read_as_plain_numbers():
    h = History(train_loss=[10.8, 7.0, 5.2, 4.1, 3.5], eval_steps=[0, 4], test_loss=[10.8, 4.0])
    fig = plot_losses(h, log_scale=True)
    fig.canvas.draw()
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_yticklabels(minor=True) if t.get_text()]
    assert ax.get_yscale() == "log" and labels
    assert all(re.fullmatch(r"\d+(\.\d+)?", text) for text in labels), labels  # no "9 × 10⁰", no "$10^{0}$"


def test_the_learning_rate_can_be_shown_on_a_second_axis():
    h = History(train_loss=[5.0, 4.0, 3.0], lr=[1e-4, 1e-3, 5e-4])
    fig = plot_losses(h, show_lr=True)
    right = [ax for ax in fig.axes if ax.get_ylabel() == "learning rate"]
    assert len(right) == 1 and list(right[0].lines[0].get_ydata()) == [1e-4, 1e-3, 5e-4]
    assert len(plot_losses(h).axes) == 1  # off by default
