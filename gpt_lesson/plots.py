"""Plots used by notebooks 04-07: loss curves, what a run learned, timing bars, coverage. Each returns its Figure.

`import gpt_lesson` does not import this module (nor matplotlib, which takes seconds to load): the package
imports it on first use of ``gpt_lesson.plot_losses``, ``plot_learning``, ``plot_timings`` or ``plot_coverage``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch
from matplotlib.figure import Figure


def plot_losses(
    history,
    *,
    log_scale: bool = False,
    title: str = "Model 5 on Gulliver's Travels",
    baselines: dict[str, float] | None = None,
    tokens_per_step: int | None = None,
    epoch_tokens: int | None = None,
    show_lr: bool = False,
    ax=None,
) -> Figure:
    """Train loss at every step and test loss at each evaluation, on one set of axes.

    ``baselines``: label -> loss, each drawn as a dashed horizontal line (e.g. ln V for a uniform guess).
    ``tokens_per_step`` and ``epoch_tokens`` (both or neither): a second x axis on top, in epochs, i.e.
    tokens seen (step x tokens per step) over the number of training tokens.
    ``show_lr``: the learning rate of every step (``history.lr``) as a dotted line on a second y axis.
    ``log_scale``: a log loss axis whose ticks read as plain numbers (3, 4, 6, 10), not powers of ten.
    """
    if (tokens_per_step is None) != (epoch_tokens is None):
        raise ValueError("give both tokens_per_step and epoch_tokens for the epoch axis, or neither")
    if tokens_per_step is not None and (tokens_per_step <= 0 or epoch_tokens <= 0):
        raise ValueError(f"tokens_per_step and epoch_tokens must be positive, got {tokens_per_step}, {epoch_tokens}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 4))
    ax.plot(range(len(history.train_loss)), history.train_loss, lw=1, alpha=0.8, label="train (each batch)")
    if history.test_loss:
        ax.plot(history.eval_steps, history.test_loss, "o-", lw=2, label="test (mean of several batches)")
    colors = ["tab:gray", "tab:purple", "tab:brown", "tab:olive"] * 4
    for (label, value), color in zip((baselines or {}).items(), colors):
        ax.axhline(value, ls="--", lw=1, color=color, label=f"{label}: {value:.2f}")
    ax.set_xlabel("step (random batch)")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    if log_scale:
        plain_log_axis(ax)
    if show_lr and history.lr:
        right = ax.twinx()
        right.plot(range(len(history.lr)), history.lr, ":", color="tab:red", lw=1.5, label="learning rate")
        right.set_ylabel("learning rate", color="tab:red")
        right.set_ylim(0, max(v for v in history.lr if v is not None) * 1.1)
        right.legend(loc="upper center", fontsize=8)
    if tokens_per_step is not None:
        add_epoch_axis(ax, tokens_per_step / epoch_tokens, "epochs: tokens seen / training tokens")
    ax.set_title(title)
    return finish(fig, ax, legend_size=8)


def plot_learning(history, *, title: str = "What the model learned, at each evaluation") -> Figure:
    """``history.learning`` (a `gpt_lesson.Watch`'s records) over the steps: left, the likeness of a greedy and a
    sampled continuation to the book's shape (1 = the book's); right, the tokens of training text and of test text
    (the control) the model reproduced after a prompt from it."""
    records = history.learning
    if not records:
        raise ValueError("history.learning is empty: train with watch=gl.Watch.of(...) to record it")
    steps = [r["step"] for r in records]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for how, style in (("greedy", "s-"), ("sampled", "o-")):
        left.plot(steps, [r[how]["likeness"] for r in records], style, label=f"{how} continuation")
    left.axhline(1.0, ls="--", lw=1, color="tab:gray", label="the book's own shape")
    left.set_ylim(0, 1.05)
    finish(fig, left, xlabel="step", ylabel="likeness to the book's shape")
    right.plot(steps, [r["reproduced_train"] for r in records], "o-", label="training text")
    right.plot(steps, [r["reproduced_test"] for r in records], "s--", label="test text (never trained on)")
    finish(fig, right, xlabel="step", ylabel="tokens reproduced after a prompt (mean)")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def add_epoch_axis(ax, epochs_per_x: float, label: str) -> None:
    """A second x axis on top, in epochs: the bottom axis's value times ``epochs_per_x``."""
    top = ax.secondary_xaxis("top", functions=(lambda x: x * epochs_per_x, lambda e: e / epochs_per_x))
    top.set_xlabel(label)


def finish(fig: Figure, ax, *, xlabel: str | None = None, ylabel: str | None = None, legend_size=None) -> Figure:
    """Labels (when given), legend, a light grid and a tight layout: how every line plot of the series ends."""
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    if ylabel is not None:
        ax.set_ylabel(ylabel)
    ax.legend(fontsize=legend_size)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_timings(seconds: dict[str, float], *, title: str = "One forward pass", ax=None) -> Figure:
    """Bars of seconds per label (e.g. {"CPU": 8.1, "GPU": 0.05}), with the value written on each bar."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 3.5))
    labels, values = list(seconds), list(seconds.values())
    bars = ax.bar(labels, values, color=["tab:blue", "tab:orange", "tab:green", "tab:red"][: len(values)])
    for bar, v in zip(bars, values):
        ax.annotate(f"{v:.3g} s", (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom")
    ax.set_ylabel("seconds (median)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_coverage(counts: dict[str, torch.Tensor], *, max_count: int = 12, ax=None) -> Figure:
    """For each name -> per-position counts, the share of positions seen 0, 1, 2, ... times."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(8, 3.5))
    width = 0.8 / len(counts)
    for j, (name, c) in enumerate(counts.items()):
        hist = torch.bincount(c.clamp(max=max_count), minlength=max_count + 1).double() / len(c)
        xs = torch.arange(max_count + 1) + (j - (len(counts) - 1) / 2) * width
        ax.bar(xs.tolist(), (100 * hist).tolist(), width=width, label=name)
    ax.set_xticks(range(max_count + 1), [str(i) for i in range(max_count)] + [f"{max_count}+"])
    ax.set_xlabel("times a training token was seen")
    ax.set_ylabel("% of training tokens")
    ax.legend()
    fig.tight_layout()
    return fig


def new_axes(ax=None, figsize: tuple[float, float] = (8, 4)):
    """(figure, axes): a new figure of ``figsize``, or the given axes and their figure."""
    return (ax.figure, ax) if ax is not None else plt.subplots(figsize=figsize)


def plain_log_axis(ax) -> None:
    """A log-scale y axis labelled with plain numbers (2, 3, 4, 6, 10), major and minor ticks alike; matplotlib's
    default labels them as powers of ten (``9 × 10⁰``), which no one reads as 9."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0)))
    ax.yaxis.set_major_formatter(plain)
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
