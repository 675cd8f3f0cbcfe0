"""The lesson's open questions, one class each, in one registry (`registry.EXPERIMENTS`, in run order).

Each experiment is a dataclass whose instance is its typed result: ``measure(workbench, ...)`` trains and evaluates
(its parameters after the workbench, typed with another experiment's class, are the results it reuses),
``report()`` gives the numbers and the verdicts (`gpt_lesson.verdict` sentences: beyond the noise, or within it and no
finding; they change with the machine, the budget and the seeds), ``facts()`` lines that end in ': True' or ': False'
and hold at any budget and on any device (what notebook 08's checked cells print; they never state the direction of a
difference, which is the verdicts' business), ``plot()`` a figure or None, ``differences()`` the answers in nats for
the summary plot, as verdicts. A new experiment is one more class here with ``@register``, a ``name`` and a
one-line ``question`` (docs/experiments.md lists them from the registry).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from ..batches import batch_starts, coverage
from ..config import SAMPLERS, TrainConfig
from ..evaluation import EvalSet, window_losses
from ..verdicts import Verdict, not_measured, ratio_verdict
from .corpus import BLOCK_TEST, COURSE_BOOK, COURSE_TEST, LICENCE, TAIL_TEST
from .registry import Experiment, Workbench, register
from .runs import Run, RunSpec, compare, mean, spread, train_run

LOSS_LABEL = "tail test loss (nats/token)"
COURSE_SAMPLER = TrainConfig().sampler  # "random": TrainConfig's defaults are the course's settings


def _seeds(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


def _tokens_read(starts: torch.Tensor, seq_len: int, n_tokens: int) -> torch.Tensor:
    """(n_tokens,) bool: the tokens that a window from any of ``starts`` reads, its inputs tokens[s : s + T] (notebook
    04's `coverage`) and its targets, one token further."""
    inputs = coverage(starts, seq_len, n_tokens) > 0
    read = inputs.clone()
    read[1:] |= inputs[:-1]
    return read


@register
@dataclass
class Samplers(Experiment):
    """Random (the lesson's) vs epoch vs without replacement on the tail split: test-loss curves per seed."""

    name: ClassVar[str] = "samplers"
    question: ClassVar[str] = ("Does the sampler (the lesson's random starts, one shuffled epoch, random starts "
                               "without replacement) change the test loss?")
    json_properties: ClassVar[tuple[str, ...]] = ("final", "vs_random")
    runs: dict[str, list[Run]]
    unseen: dict[str, list[float]]  # per sampler and seed: the share of training text no batch read
    epoch_tokens: int
    test_tokens: int

    @classmethod
    def measure(cls, workbench: Workbench) -> Samplers:
        c, s = workbench.corpus, workbench.spec
        test, steps, T = c.tail_test, s.eval_steps(c.tail_n), s.train.seq_len
        runs: dict[str, list[Run]] = {}
        unseen: dict[str, list[float]] = {}
        for sampler in SAMPLERS:
            runs[sampler], unseen[sampler] = [], []
            for seed in s.seeds:
                workbench.say(f"samplers: {sampler}, seed {seed}")
                runs[sampler].append(train_run(c.tokens[: c.tail_n], [test], s, name=f"tail/{sampler}", seed=seed,
                                               eval_steps=steps, sampler=sampler,
                                               keep_windows=sampler == COURSE_SAMPLER))
                table = batch_starts(c.tail_n, steps[-1], s.train.batch_size, T, seed=seed, sampler=sampler)
                seen = coverage(table, T, c.tail_n)[: c.tail_n - T]
                unseen[sampler].append((seen == 0).double().mean().item())
        return cls(runs, unseen, c.tail_n, test.n_tokens)

    @property
    def final(self) -> dict[str, list[float]]:
        return {s: [r.final(TAIL_TEST) for r in rs] for s, rs in self.runs.items()}

    @property
    def course_runs(self) -> list[Run]:
        """The runs with the course's sampler (random starts), one per seed: what the other experiments reuse."""
        return [r for r in self.all_runs() if r.sampler == COURSE_SAMPLER]

    @property
    def course_final(self) -> list[float]:
        """The course runs' final tail-test losses, per seed."""
        return [r.final(TAIL_TEST) for r in self.course_runs]

    @property
    def vs_random(self) -> dict[str, Verdict]:
        # Paired by seed: the seed gives every sampler's run the same initial weights.
        return {s: compare(f"{s} - random", v, self.course_final,
                           above=f"the {s} sampler's final test loss is higher than random sampling's",
                           below=f"the {s} sampler's final test loss is lower than random sampling's")
                for s, v in self.final.items() if s != COURSE_SAMPLER}

    def report(self) -> list[str]:
        lines = [f"{s:20s} final test loss {mean(v):.3f} (seeds: {_seeds(v)}), "
                 f"training text never seen: {mean(self.unseen[s]):.1%}" for s, v in self.final.items()]
        return lines + [str(d) for d in self.vs_random.values()]

    def facts(self) -> list[str]:
        fell = all(r.loss[TAIL_TEST][-1] < r.loss[TAIL_TEST][0] for rs in self.runs.values() for r in rs)
        budget = {r.steps[-1] for rs in self.runs.values() for r in rs}
        return [f"every run's test loss fell from its first to its last evaluation: {fell}",
                f"every sampler's runs trained the same number of steps: {len(budget) == 1}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [(f"{s} - random", d) for s, d in self.vs_random.items()]

    def all_runs(self) -> list[Run]:
        return [r for rs in self.runs.values() for r in rs]

    def plot(self, ax=None, lines: dict[str, float] | None = None):
        """Test loss against training tokens (bottom axis) and epochs (top axis), per sampler: the seeds' mean
        and, shaded, the band between the lowest and the highest seed; ``lines``: label -> loss, each a dashed
        horizontal line (the unigram and bigram lines of `Regime`)."""
        from ..plots import add_epoch_axis, finish, new_axes

        fig, ax = new_axes(ax, (8, 4))
        for sampler, runs in self.runs.items():
            x = torch.tensor(runs[0].tokens, dtype=torch.float64)
            y = torch.tensor([r.loss[TAIL_TEST] for r in runs])
            (line,) = ax.plot(x, y.mean(0), marker="o", ms=3, label=f"{sampler} ({len(runs)} seeds)")
            ax.fill_between(x, y.min(0).values, y.max(0).values, color=line.get_color(), alpha=0.25)
        for (label, value), color in zip((lines or {}).items(), ["tab:gray", "tab:purple", "tab:brown"] * 3):
            ax.axhline(value, ls="--", lw=1, color=color, label=f"{label}: {value:.3f}")
        add_epoch_axis(ax, 1 / self.epoch_tokens, "epochs of the training part")
        return finish(fig, ax, xlabel="training tokens", ylabel=LOSS_LABEL)


@register
@dataclass
class Regime(Experiment):
    """Where the runs stand against two counting models of the same text in the same vocabulary (`gpt_lesson`'s
    baselines): the unigram (token frequencies, add-alpha) and the bigram (which token follows which), each fitted on
    the lesson's training part with its smoothing chosen on held-out training text, and scored on the tail test.
    A model below the unigram line has learned more than token frequencies; below the bigram line, more than the
    previous token can tell."""

    name: ClassVar[str] = "regime"
    question: ClassVar[str] = ("Which regime are the runs in: above the unigram line (token frequencies), between it "
                               "and the bigram line, or past the bigram line?")
    json_properties: ClassVar[tuple[str, ...]] = ("vs_unigram", "vs_bigram", "way_to_bigram", "regime")
    alpha: float  # the unigram's add-alpha smoothing (`gpt_lesson.choose_alpha`)
    beta: float  # the bigram's interpolation weight (`gpt_lesson.choose_beta`)
    unigram: float  # nats/token on the tail test
    bigram: float
    final: list[float]  # the course runs' final tail-test loss, per seed
    epochs: float
    vocab: int  # the corpus's vocabulary size

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> Regime:
        from ..baselines import bigram_loss, choose_alpha, choose_beta, unigram_loss

        c = workbench.corpus
        train, test, vocab = c.tokens[: c.tail_n], c.tokens[c.tail_n :], len(c.vocab)
        alpha = choose_alpha(train, vocab).value
        beta = choose_beta(train, vocab, alpha).value
        return cls(alpha, beta, unigram_loss(train, test, vocab, alpha),
                   bigram_loss(train, test, vocab, alpha=alpha, beta=beta), samplers.course_final,
                   workbench.spec.epochs, vocab)

    @property
    def lines(self) -> dict[str, float]:
        """The two lines, for `Samplers.plot`."""
        return {"unigram line": self.unigram, "bigram line": self.bigram}

    @property
    def vs_unigram(self) -> Verdict:
        return compare("final test loss - unigram line", self.final, [self.unigram] * len(self.final),
                       above="the runs are above the unigram line", below="the runs are below the unigram line")

    @property
    def vs_bigram(self) -> Verdict:
        return compare("final test loss - bigram line", self.final, [self.bigram] * len(self.final),
                       above="the runs are above the bigram line", below="the runs are below the bigram line")

    @property
    def way_to_bigram(self) -> float:
        """How far the runs' mean final loss went from the unigram line to the bigram line (0: at the unigram line,
        1: at the bigram line, above 1: past it)."""
        return (self.unigram - mean(self.final)) / (self.unigram - self.bigram)

    @property
    def regime(self) -> str:
        """The regime, from the two verdicts: a loss within the noise of a line is on it."""
        if self.vs_bigram.sign < 0:
            return "past the bigram line: the models use more of the context than the previous token"
        if self.vs_bigram.sign == 0:
            return "on the bigram line: the models predict about as well as the previous token alone allows"
        if self.vs_unigram.sign < 0:
            return ("between the unigram and the bigram lines: the models learned more than token frequencies, and "
                    "less than a table of which token follows which")
        if self.vs_unigram.sign == 0:
            return "on the unigram line: the models learned about as much as token frequencies"
        return "above the unigram line: the models predict worse than token frequencies alone"

    def report(self) -> list[str]:
        return [f"unigram line (add-{self.alpha:g}): {self.unigram:.3f} nats/token on the tail test; bigram line "
                f"(beta {self.beta:g}): {self.bigram:.3f}",
                f"the runs' final tail-test loss after {self.epochs:g} epochs: {mean(self.final):.3f} "
                f"(seeds: {_seeds(self.final)})",
                str(self.vs_unigram), str(self.vs_bigram),
                (f"of the way from the unigram line to the bigram line, the runs went {self.way_to_bigram:.0%}"
                 if self.way_to_bigram > 0 else
                 f"the runs are {mean(self.final) - self.unigram:.3f} nats above the unigram line"),
                f"regime: {self.regime}"]

    def facts(self) -> list[str]:
        return [f"the unigram line is below a uniform guess over the {self.vocab:,} tokens (ln V = "
                f"{math.log(self.vocab):.3f}): {self.unigram < math.log(self.vocab)}",
                f"the bigram line is below the unigram line: {self.bigram < self.unigram}"]


@register
@dataclass
class OneBatch(Experiment):
    """The course's test loss is one random batch of B windows; ours the whole test part. For each evaluation of the
    random-sampler runs: the spread of ``one_batch_draws`` one-batch losses (B windows drawn with replacement from
    the test windows) around the whole part's loss, next to the seed spread of that loss.

    The experiment's batch (B × T, 16 × 64 = 1,024 tokens) is a quarter of the course's (16 × 256 = 4,096), so the
    same is measured for batches of the course's shape, drawn from the same per-window losses: B stretches of
    256 / T consecutive test windows each, 256 consecutive tokens of text like the course's windows (the model still
    reads at most T tokens of context). Neighbouring windows of a text tend to be alike, so such a batch is noisier than
    1/√n from the small batch predicts (``sqrt_rule``), which would hold for 4× as many independent windows."""

    name: ClassVar[str] = "one_batch"
    question: ClassVar[str] = ("How far is the course's test loss, one random batch, from the whole test part's, "
                               "next to the seed spread?")
    json_properties: ClassVar[tuple[str, ...]] = ("course_batch_tokens", "sqrt_rule", "course_vs_ours")
    bands: list[list[dict[str, float]]]  # per seed, per evaluation: whole, std, lo, hi, min, max, course_*
    steps: list[int]
    tokens: list[int]
    one_batch_std: float
    seed_spread: float
    batch_tokens: int
    course_std: float  # the same spread for a batch of the course's shape ...
    course_batch: tuple[int, int]  # ... its (stretches, tokens per stretch): 16 of 256 tokens

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers, *, seed: int = 0) -> OneBatch:
        from ..presets import train_config

        g = torch.Generator().manual_seed(seed)
        g_course = torch.Generator().manual_seed(seed + 1)  # its own draws: the small batches' stay as they were
        s = workbench.spec
        runs, B, T = samplers.course_runs, s.train.batch_size, s.train.seq_len
        course = train_config("model5")  # the course's batch: 16 windows of 256 tokens
        draws = s.one_batch_draws
        bands = []
        for run in runs:
            rows = []
            for w in run.windows[TAIL_TEST]:  # the tail test's windows, in the order of the text
                one = w[torch.randint(0, len(w), (draws, B), generator=g)].mean(1)
                k = max(1, min(round(course.seq_len / T), len(w)))  # consecutive windows per stretch
                first = torch.randint(0, len(w) - k + 1, (draws, course.batch_size), generator=g_course)
                big = w[first[..., None] + torch.arange(k)].mean((1, 2))
                rows.append({"whole": w.mean().item(), "std": one.std().item(), "lo": one.quantile(0.05).item(),
                             "hi": one.quantile(0.95).item(), "min": one.min().item(), "max": one.max().item(),
                             "course_std": big.std().item(), "course_lo": big.quantile(0.05).item(),
                             "course_hi": big.quantile(0.95).item()})
            bands.append(rows)
        n_rows = sum(len(rows) for rows in bands)
        one_std = sum(r["std"] for rows in bands for r in rows) / n_rows
        course_std = sum(r["course_std"] for rows in bands for r in rows) / n_rows
        return cls(bands, runs[0].steps, runs[0].tokens, one_std, spread([rows[-1]["whole"] for rows in bands]),
                   s.batch_tokens, course_std, (course.batch_size, k * T))

    @property
    def course_batch_tokens(self) -> int:
        return self.course_batch[0] * self.course_batch[1]

    @property
    def sqrt_rule(self) -> float:
        """What 1/√n predicts for a batch of ``course_batch_tokens`` from the small batch's spread."""
        return self.one_batch_std * math.sqrt(self.batch_tokens / self.course_batch_tokens)

    @property
    def course_vs_ours(self) -> Verdict:
        """The course's batch against ours, one pair of spreads per evaluation of every seed (the same windows)."""
        what = f"std of one batch, course's {self.course_batch_tokens:,} tokens / our {self.batch_tokens:,}"
        rows = [r for rows in self.bands for r in rows]
        ours, course = [r["std"] for r in rows], [r["course_std"] for r in rows]
        if len(rows) < 2 or not all(math.isfinite(v) and v > 0 for v in ours + course):
            return not_measured(what, "fewer than two evaluations with a spread (a test part of one window has none)")
        return ratio_verdict(what, course, ours, above="the course's batch is noisier",
                             below="the course's batch is less noisy", n_label="evaluations")

    def report(self) -> list[str]:
        side = "above" if self.course_std > self.seed_spread else "below"
        stretches, length = self.course_batch
        return [f"one batch of {self.batch_tokens:,} test tokens: std {self.one_batch_std:.3f} nats around the whole "
                f"test part's loss; seed spread of that loss at the end: {self.seed_spread:.3f} nats",
                f"one batch of the course's {self.course_batch_tokens:,} tokens ({stretches} stretches of {length}): "
                f"std {self.course_std:.3f} nats ({side} that seed spread); 1/sqrt(n) from {self.batch_tokens:,} "
                f"tokens predicts {self.sqrt_rule:.3f}",
                str(self.course_vs_ours)]

    def facts(self) -> list[str]:
        # Which batch is noisier, and by how much, is the verdict's (the report).
        measured = all(math.isfinite(r[k]) for rows in self.bands for r in rows for k in ("std", "course_std"))
        return [f"both batch shapes' spreads were measured at every evaluation of every seed: "
                f"{measured and len(self.bands) > 0 and all(len(rows) == len(self.steps) for rows in self.bands)}"]

    def plot(self, ax=None):
        """The whole test part's loss per evaluation (seed 0, and thin lines for the other seeds) and, shaded, where
        90% of seed 0's one-batch losses fall, for the experiment's batch and for one of the course's size."""
        from ..plots import finish, new_axes

        fig, ax = new_axes(ax, (8, 4))
        rows, x = self.bands[0], self.tokens
        ax.fill_between(x, [r["lo"] for r in rows], [r["hi"] for r in rows], alpha=0.25,
                        label=f"one random batch ({self.batch_tokens:,} tokens): 5-95% of draws")
        ax.fill_between(x, [r["course_lo"] for r in rows], [r["course_hi"] for r in rows], alpha=0.35,
                        color="tab:green", label=f"one batch of the course's {self.course_batch_tokens:,} tokens")
        ax.plot(x, [r["whole"] for r in rows], marker="o", ms=3, label="whole test part")
        for i, rows in enumerate(self.bands[1:]):
            ax.plot(x, [r["whole"] for r in rows], color="tab:orange", lw=0.8, alpha=0.7,
                    label="whole test part, other seeds" if i == 0 else None)
        return finish(fig, ax, xlabel="training tokens", ylabel=LOSS_LABEL)


@register
@dataclass
class Splits(Experiment):
    """Tail split vs block split: a model trained on each (same budget, same seeds), evaluated on both test sets."""

    name: ClassVar[str] = "splits"
    question: ClassVar[str] = "Is the tail split's test loss biased against a block split's, beyond the seed spread?"
    json_properties: ClassVar[tuple[str, ...]] = ("bias",)
    table: dict[str, dict[str, list[float]]]  # train split -> test set -> per seed
    seen_in_training: dict[str, float]
    block_runs: list[Run]

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> Splits:
        c, s = workbench.corpus, workbench.spec
        allowed, block_test = c.block()
        tail_test, T = c.tail_test, s.train.seq_len
        tail_models = [r.model for r in samplers.course_runs]
        on_block = [window_losses(m.to(s.device), block_test).mean().item() for m in tail_models]
        table = {"tail split": {TAIL_TEST: samplers.course_final, BLOCK_TEST: on_block}}
        runs = []
        for seed in s.seeds:
            workbench.say(f"splits: block split, seed {seed}")
            runs.append(train_run(c.tokens, [tail_test, block_test], s, name="block/random", seed=seed,
                                  eval_steps=[s.steps_for(c.tail_n)], allowed=allowed))
        table["block split"] = {t: [r.final(t) for r in runs] for t in (TAIL_TEST, BLOCK_TEST)}
        block_reads = _tokens_read(allowed, T, len(c.tokens))  # the tokens the block split's windows read
        seen = {  # share of each test set's tokens that the other split trains on
            "tail model on block test": (block_test.starts < c.tail_n - T).double().mean().item(),
            "block model on tail test": block_reads[c.tail_n :].double().mean().item(),
        }
        return cls(table, seen, runs)

    @property
    def bias(self) -> Verdict:
        # Paired by seed: the same initial weights.
        return compare("tail split on its test - block split on its test", self.table["tail split"][TAIL_TEST],
                       self.table["block split"][BLOCK_TEST],
                       above="the tail split's test loss is higher than the block split's (a bias)",
                       below="the tail split's test loss is lower than the block split's")

    def report(self) -> list[str]:
        lines = [f"{tr} model on the {te}: {mean(v):.3f} ± {spread(v):.3f}" for tr, row in self.table.items()
                 for te, v in row.items()]
        lines += [str(self.bias)]
        return lines + [f"{k}: {v:.0%} of its tokens were training text" for k, v in self.seen_in_training.items()]

    def facts(self) -> list[str]:
        # Which split's test loss is higher is the verdict's (the report): at some budgets it is within the noise.
        tail_on_block = self.seen_in_training["tail model on block test"]
        return [f"every block split run trained as many steps as the tail split's: "
                f"{len({r.steps[-1] for r in self.block_runs}) == 1}",
                f"the block test set is all training text of the tail split (so that cell is no test loss): "
                f"{tail_on_block == 1.0}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [("tail bias", self.bias)]

    def all_runs(self) -> list[Run]:
        return list(self.block_runs)


WEIGHTED_TOLERANCE = 0.02  # nats: the windows that straddle the licence's boundary, and the pieces' last tokens


@register
@dataclass
class Licence(Experiment):
    """The course tokenized the raw file, so its test part ends with Project Gutenberg's licence. The tail-split
    models (trained on the cleaned text), evaluated on that part with and without the licence."""

    name: ClassVar[str] = "licence"
    question: ClassVar[str] = "How much does Project Gutenberg's licence in the course's test part move its test loss?"
    json_properties: ClassVar[tuple[str, ...]] = ("effect",)
    losses: dict[str, list[float]]  # test set -> per seed
    licence_share: float
    licence_tokens: int

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> Licence:
        c, models = workbench.corpus, [r.model.to(workbench.spec.device) for r in samplers.course_runs]
        losses = {s.name: [window_losses(m, s).mean().item() for m in models] for s in c.course_sets()}
        share = len(c.course_licence) / (len(c.course_book) + len(c.course_licence))
        return cls(losses, share, len(c.course_licence))

    @property
    def effect(self) -> Verdict:
        # Paired by seed: the same models on both texts.
        return compare("course test part - course test part without the licence", self.losses[COURSE_TEST],
                       self.losses[COURSE_BOOK], above="the licence raises the course's test loss",
                       below="the licence lowers the course's test loss")

    def report(self) -> list[str]:
        book, licence = mean(self.losses[COURSE_BOOK]), mean(self.losses[LICENCE])
        return [f"{k}: {mean(v):.3f}" for k, v in self.losses.items()] + [
            f"licence: {self.licence_tokens:,} tokens, {self.licence_share:.1%} of the course's test part",
            str(self.effect),
            f"its share times how much harder it is: {self.licence_share:.1%} x ({licence:.3f} - {book:.3f}) = "
            f"{self.licence_share * (licence - book):+.3f} nats"]

    @property
    def weighted(self) -> list[float]:
        """Per model: the token-weighted mean of its losses on the book's text and on the licence."""
        share = self.licence_share
        return [(1 - share) * b + share * li for b, li in zip(self.losses[COURSE_BOOK], self.losses[LICENCE])]

    def facts(self) -> list[str]:
        # Whether the licence moves the loss beyond the noise is the verdict's (the report). The whole part is scored
        # in its own windows, which straddle the book/licence boundary once; any larger gap from the weighted mean
        # would mean that the pieces were scored on other text than the whole.
        close = all(abs(w - m) < WEIGHTED_TOLERANCE for w, m in zip(self.losses[COURSE_TEST], self.weighted))
        return [f"the licence is more than a quarter of the course's test part: {self.licence_share > 0.25}",
                f"for every model, the course's test loss is the token-weighted mean of its losses on the book's "
                f"text and on the licence, within {WEIGHTED_TOLERANCE} nats: {close}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [("licence in test", self.effect)]


@register
@dataclass
class Shift(Experiment):
    """Train on the text before ``boundary`` (a block split of it: 10% held out), evaluate on its held-out blocks and
    on the text after: how much worse is text of another subject, beyond the noise of the seed? On Gulliver: Parts
    I-III against Part IV; `other_book`: any book's first three quarters against its last quarter."""

    name: ClassVar[str] = "shift"
    question: ClassVar[str] = "Is text of another subject (Part IV) harder than held-out text of the Parts trained on?"
    json_properties: ClassVar[tuple[str, ...]] = ("shift",)
    losses: dict[str, list[float]]  # test set -> per seed
    names: tuple[str, str]  # (held-out test set, later test set)
    train_tokens: int
    runs: list[Run]
    book: int | str | None = None
    test_tokens_trained_on: int = 0  # tokens of either test set that some training window read (0 by design)

    @classmethod
    def measure(cls, workbench: Workbench) -> Shift:
        c = workbench.corpus
        return cls.on(workbench.spec, c.tokens, c.part4, epoch_tokens=c.tail_n, progress=workbench.progress)

    @classmethod
    def on(cls, spec: RunSpec, tokens: torch.Tensor, boundary: int, *, epoch_tokens: int,
           progress: Callable[[str], None] | None = None, after: str = "Part IV", before: str = "Parts I-III",
           book: int | str | None = None) -> Shift:
        """One run of ``spec`` per seed on ``tokens`` (ids in ``spec.model``'s vocabulary) before ``boundary``, each
        trained for ``spec.epochs`` passes over ``epoch_tokens`` tokens; ``progress`` gets a line per run."""
        from ..split import block_split

        s, T = spec, spec.train.seq_len
        split = block_split(tokens[:boundary], 0.1, block_len=2048, seq_len=T,
                            generator=torch.Generator().manual_seed(0))
        held = EvalSet.windows(tokens, T, allowed=split.starts("test", T), name=f"{before} held out")
        later = EvalSet.windows(tokens, T, allowed=torch.arange(boundary, len(tokens) - T), name=after)
        runs = []
        for seed in s.seeds:
            if progress is not None:
                progress(f"shift: {before} -> {after}, seed {seed}")
            runs.append(train_run(tokens, [held, later], s, name=f"{before}/random", seed=seed,
                                  eval_steps=[s.steps_for(epoch_tokens)], allowed=split.starts("train", T)))
        losses = {t.name: [r.final(t.name) for r in runs] for t in (held, later)}
        overlap = _tokens_read(split.starts("train", T), T, len(tokens)) & (
            _tokens_read(held.starts, T, len(tokens)) | _tokens_read(later.starts, T, len(tokens)))
        return cls(losses, (held.name, after), split.n_tokens("train"), runs, book, int(overlap.sum()))

    @property
    def shift(self) -> Verdict:
        held, after = self.names
        prefix = f"book {self.book}: " if self.book is not None else ""
        # Paired by seed: the same models on both test sets.
        return compare(f"{prefix}{after} - {held}", self.losses[after], self.losses[held],
                       above=f"{after} is harder than held-out text of the part trained on",
                       below=f"{after} is easier than held-out text of the part trained on")

    def report(self) -> list[str]:
        prefix = f"book {self.book}: " if self.book is not None else ""
        lines = [f"{prefix}{k}: {mean(v):.3f}" for k, v in self.losses.items()]
        return lines + [str(self.shift)]

    def facts(self) -> list[str]:
        # Whether the later text is harder is the verdict's (the report): at this budget it may be within the noise.
        held, after = self.names
        return [f"no training window read a token of the {held.removesuffix(' held out')} held-out blocks or "
                f"of {after}: {self.test_tokens_trained_on == 0}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [("Part IV shift" if self.book is None else f"book {self.book} shift", self.shift)]

    def all_runs(self) -> list[Run]:
        return list(self.runs)


@register
@dataclass
class Practice(Experiment):
    """The course's training settings (a constant learning rate, no warmup, no clipping, weight decay on every
    parameter) beside what nanoGPT and *LLMs from Scratch* teach, each switch alone and all together: the same
    budget, seeds and tail split as the samplers' random runs, which are the course's settings."""

    name: ClassVar[str] = "practice"
    question: ClassVar[str] = ("Do warmup + cosine decay, gradient clipping and weight decay on matrices only beat the "
                               "course's training settings?")
    json_properties: ClassVar[tuple[str, ...]] = ("vs_course",)
    settings: dict[str, dict]  # variant -> the TrainConfig fields it changes
    final: dict[str, list[float]]  # variant -> final tail-test loss per seed; "course" included
    runs: list[Run]

    @staticmethod
    def variants(steps: int) -> dict[str, dict]:
        """The switches: warmup over a tenth of the run, then a cosine decay to a tenth of lr; clipping the gradient
        norm at 1.0; weight decay on matrices only; and all three."""
        schedule = {"warmup_steps": min(steps, max(2, steps // 10)), "schedule": "cosine", "min_lr_ratio": 0.1}
        one = {"warmup + cosine": schedule, "clip at 1.0": {"grad_clip": 1.0},
               "decay on matrices only": {"decay_matrices_only": True}}
        return {**one, "all three": {k: v for d in one.values() for k, v in d.items()}}

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> Practice:
        c, s = workbench.corpus, workbench.spec
        steps = s.steps_for(c.tail_n)
        settings = cls.variants(steps)
        final = {"course": samplers.course_final}
        runs = []
        for variant, changes in settings.items():
            final[variant] = []
            for seed in s.seeds:
                workbench.say(f"practice: {variant}, seed {seed}")
                run = train_run(c.tokens[: c.tail_n], [c.tail_test], s, name=f"tail/{variant}", seed=seed,
                                eval_steps=[steps], **changes)
                runs.append(run)
                final[variant].append(run.final(TAIL_TEST))
        return cls(settings, final, runs)

    @property
    def vs_course(self) -> dict[str, Verdict]:
        # Paired by seed: the seed gives every variant's run the course's run's initial weights and batches.
        return {v: compare(f"{v} - course", x, self.final["course"],
                           above=f"{v} ends with a higher test loss than the course's settings",
                           below=f"{v} ends with a lower test loss than the course's settings")
                for v, x in self.final.items() if v != "course"}

    def report(self) -> list[str]:
        lines = [f"{v:24s} final test loss {mean(x):.3f} (seeds: {_seeds(x)})" for v, x in self.final.items()]
        return lines + [str(d) for d in self.vs_course.values()]

    def facts(self) -> list[str]:
        sched = [r for r in self.runs if r.config.warmup_steps > 0]  # the runs of the variants with a schedule
        shaped = bool(sched) and all(r.lr[0] < max(r.lr) and abs(r.lr[-1] / max(r.lr) - 0.1) < 1e-9 for r in sched)
        return [f"every variant's run trained as long as the course's: "
                f"{len({r.steps[-1] for r in self.runs}) == 1}",
                f"the scheduled runs started below their peak learning rate and ended at a tenth of it: {shaped}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [(f"{v} - course", d) for v, d in self.vs_course.items()]

    def all_runs(self) -> list[Run]:
        return list(self.runs)


@register
@dataclass
class Dropout(Experiment):
    """The one-book regime: a model reads the same book again and again, so its loss on that text can fall below its
    loss on text it never read (the train-test gap). Dropout (`GPTConfig.dropout`: after the embeddings, in attention
    and on both residual branches; off when a model is evaluated) is the usual remedy. The course trains without it:
    the samplers' random runs are this experiment's dropout-0 arm, and each rate in `RATES` trains the same runs
    (same seeds, so the same initial weights and batches, same steps) with dropout. For every model: its loss on every
    window of the training part and of the tail test (the same measurement), their gap, and the extraction probe
    (`gpt_lesson.extraction`: greedy continuations of training and of test windows, tokens reproduced before the
    first mismatch)."""

    name: ClassVar[str] = "dropout"
    question: ClassVar[str] = ("Does dropout (0.1, 0.2) close the gap between the training and test losses of the "
                               "course's settings, and does it change how far the models recite their training text?")
    json_properties: ClassVar[tuple[str, ...]] = ("gap", "course_gap", "gap_vs_course", "test_vs_course",
                                                  "recitation")
    RATES: ClassVar[tuple[float, ...]] = (0.1, 0.2)
    PROBE_WINDOWS: ClassVar[int] = 64
    train_loss: dict[str, list[float]]  # arm -> per seed: mean loss over every window of the training part
    test_loss: dict[str, list[float]]  # arm -> per seed: the same on the tail test
    extracted: dict[str, dict[str, list[float]]]  # arm -> text ("training", "test") -> per seed: mean match length
    probe: dict[str, int]  # n, prompt_len, continuation of every probe (its windows drawn with the run's seed)
    steps: int
    same_budget: bool  # every dropout run trained the course runs' steps with their seeds and settings
    weights_changed: bool  # every dropout run ended with other weights than its course run: dropout acted
    runs: list[Run]

    @classmethod
    def measure(cls, workbench: Workbench, samplers: Samplers) -> Dropout:
        from ..memorization import extraction

        c, s = workbench.corpus, workbench.spec
        steps, course = s.steps_for(c.tail_n), samplers.course_runs
        train_set, test = c.train_part, c.tail_test
        prompt = s.model.context_length // 2
        probe = {"n": cls.PROBE_WINDOWS, "prompt_len": prompt, "continuation": s.model.context_length - prompt}
        models = {"course": [r.model for r in course]}
        runs: list[Run] = []
        for rate in cls.RATES:
            arm = f"dropout {rate:g}"
            for seed in s.seeds:
                workbench.say(f"dropout: {rate:g}, seed {seed}")
                runs.append(train_run(c.tokens[: c.tail_n], [test], s.with_model(dropout=rate), name=f"tail/{arm}",
                                      seed=seed, eval_steps=[steps]))
            models[arm] = [r.model for r in runs[-len(s.seeds):]]
        train_loss, test_loss, extracted = {}, {}, {}
        texts = {"training": c.tokens[: c.tail_n], "test": c.tokens[c.tail_n :]}
        for arm, ms in models.items():
            ms = [m.to(s.device) for m in ms]
            train_loss[arm] = [window_losses(m, train_set).mean().item() for m in ms]
            test_loss[arm] = [window_losses(m, test).mean().item() for m in ms]
            # Each seed's model is probed on windows drawn with that seed: the verdicts' noise then holds the
            # draw of the windows too, not only what the seed did to the model.
            extracted[arm] = {k: [extraction(m, t, seed=seed, **probe).mean for m, seed in zip(ms, s.seeds)]
                              for k, t in texts.items()}
        same = all(r.steps[-1] == steps and r.config == b.config for r, b in
                   zip(runs, course * len(cls.RATES)))
        changed = all(any(not torch.equal(p, q.to(p.device)) for p, q in
                          zip(r.model.state_dict().values(), b.model.state_dict().values()))
                      for r, b in zip(runs, course * len(cls.RATES)))
        return cls(train_loss, test_loss, extracted, probe, steps, same, changed, runs)

    @property
    def arms(self) -> list[str]:
        return list(self.train_loss)

    @property
    def gap(self) -> dict[str, list[float]]:
        """Per arm and seed: test loss - training loss (positive: the model does better on the text it read)."""
        return {a: [te - tr for te, tr in zip(self.test_loss[a], self.train_loss[a])] for a in self.arms}

    @property
    def course_gap(self) -> Verdict:
        return compare("course test loss - course training loss", self.test_loss["course"],
                       self.train_loss["course"],
                       above="the course's models score worse on the test part than on their training text",
                       below="the course's models score better on the test part than on their training text")

    @property
    def gap_vs_course(self) -> dict[str, Verdict]:
        # Paired by seed: the same initial weights and batches, dropout the only change.
        return {a: compare(f"{a} gap - course gap", self.gap[a], self.gap["course"],
                           above=f"{a} widens the train-test gap", below=f"{a} narrows the train-test gap")
                for a in self.arms if a != "course"}

    @property
    def test_vs_course(self) -> dict[str, Verdict]:
        return {a: compare(f"{a} test loss - course test loss", self.test_loss[a], self.test_loss["course"],
                           above=f"{a} ends with a higher test loss than the course's settings",
                           below=f"{a} ends with a lower test loss than the course's settings")
                for a in self.arms if a != "course"}

    @property
    def recitation(self) -> dict[str, Verdict]:
        """Per arm: tokens reproduced from training windows - from test windows (paired by seed: the same models)."""
        return {a: compare(f"{a} match on training text - match on test text", self.extracted[a]["training"],
                           self.extracted[a]["test"], unit="tokens",
                           above=f"the {a} models continue their training text further than unseen text",
                           below=f"the {a} models continue unseen text further than their training text")
                for a in self.arms}

    def report(self) -> list[str]:
        p = self.probe
        lines = [f"{a:12s} training loss {mean(self.train_loss[a]):.3f}, test loss {mean(self.test_loss[a]):.3f}, "
                 f"gap {mean(self.gap[a]):+.3f} (seeds: {_seeds(self.gap[a])}); probe: "
                 f"{mean(self.extracted[a]['training']):.2f} tokens reproduced on training text, "
                 f"{mean(self.extracted[a]['test']):.2f} on test text" for a in self.arms]
        lines.insert(0, f"after {self.steps} steps; the probe: {p['n']} windows of each text (drawn with the run's "
                        f"seed), prompted with {p['prompt_len']} tokens, {p['continuation']} tokens decoded greedily")
        verdicts = [v for _, v in self.differences()] + list(self.recitation.values())
        return lines + [str(v) for v in verdicts]

    def facts(self) -> list[str]:
        # Whether dropout narrows the gap, and whether any model recites, are the verdicts' (the report).
        return [f"every dropout run trained the course runs' steps, seeds and settings: {self.same_budget}",
                f"every dropout run ended with weights other than its course run's (dropout acted): "
                f"{self.weights_changed}"]

    def differences(self) -> list[tuple[str, Verdict]]:
        return [("course test - training loss", self.course_gap),
                *((f"{a} gap - course gap", v) for a, v in self.gap_vs_course.items()),
                *((f"{a} test loss - course", v) for a, v in self.test_vs_course.items())]

    def all_runs(self) -> list[Run]:
        return list(self.runs)

    def plot(self, ax=None):
        """Each arm's training and test loss, a dot per seed and a bar at their mean: the gap is the distance
        between the two."""
        from ..plots import finish, new_axes

        fig, ax = new_axes(ax, (8, 3.5))
        for offset, (label, losses, marker) in zip((-0.12, 0.12), (("training part", self.train_loss, "o"),
                                                                    ("tail test", self.test_loss, "s"))):
            color = None
            for i, a in enumerate(self.arms):
                points = ax.plot([i + offset] * len(losses[a]), losses[a], marker, ms=5, color=color,
                                 alpha=0.7, label=label if i == 0 else None)
                color = points[0].get_color()
                ax.hlines(mean(losses[a]), i + offset - 0.08, i + offset + 0.08, color=color, lw=2)
        ax.set_xticks(range(len(self.arms)), self.arms)
        return finish(fig, ax, ylabel="loss (nats/token), every window")
