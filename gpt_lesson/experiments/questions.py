"""The lesson's open questions, one class each, in one registry (`registry.EXPERIMENTS`, in run order).

Each experiment is a dataclass whose instance is its typed result: ``measure(workbench, ...)`` trains and evaluates
(its parameters after the workbench, typed with another experiment's class, are the results it reuses),
``report()`` gives the numbers (which change with the machine, the budget and the seeds), ``facts()`` lines that end
in ': True' or ': False' (what notebook 08's checked cells print), ``plot()`` a figure or None, ``differences()`` the
answers in nats for the summary plot. A new experiment is one more class here with ``@register``, a ``name`` and a
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
from .corpus import BLOCK_TEST, COURSE_BOOK, COURSE_TEST, TAIL_TEST
from .registry import Experiment, Workbench, register
from .runs import Difference, Run, RunSpec, difference, mean, spread, train_run

LOSS_LABEL = "tail test loss (nats/token)"
COURSE_SAMPLER = TrainConfig().sampler  # "random": TrainConfig's defaults are the course's settings


def _seeds(values: list[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values)


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
    def vs_random(self) -> dict[str, Difference]:
        # Paired by seed: the seed gives every sampler's run the same initial weights.
        return {s: difference(v, self.course_final, paired=True) for s, v in self.final.items()
                if s != COURSE_SAMPLER}

    def report(self) -> list[str]:
        lines = [f"{s:20s} final test loss {mean(v):.3f} (seeds: {_seeds(v)}), "
                 f"training text never seen: {mean(self.unseen[s]):.1%}" for s, v in self.final.items()]
        return lines + [f"{s} - random: {d}" for s, d in self.vs_random.items()]

    def facts(self) -> list[str]:
        fell = all(r.loss[TAIL_TEST][-1] < r.loss[TAIL_TEST][0] for rs in self.runs.values() for r in rs)
        return [f"every run's test loss fell from its first to its last evaluation: {fell}",
                f"random sampling left more of the training text unseen than the epoch sampler: "
                f"{mean(self.unseen[COURSE_SAMPLER]) > mean(self.unseen['epoch'])}"] + [
                f"{s} vs random: final test losses within 0.1 nats of each other: {abs(d.difference) < 0.1}"
                for s, d in self.vs_random.items()]

    def differences(self) -> list[tuple[str, Difference]]:
        return [(f"{s} - random", d) for s, d in self.vs_random.items()]

    def all_runs(self) -> list[Run]:
        return [r for rs in self.runs.values() for r in rs]

    def plot(self, ax=None):
        """Test loss against training tokens (bottom axis) and epochs (top axis), per sampler: the seeds' mean
        and, shaded, the band between the lowest and the highest seed."""
        from ..plots import add_epoch_axis, finish, new_axes

        fig, ax = new_axes(ax, (8, 4))
        for sampler, runs in self.runs.items():
            x = torch.tensor(runs[0].tokens, dtype=torch.float64)
            y = torch.tensor([r.loss[TAIL_TEST] for r in runs])
            (line,) = ax.plot(x, y.mean(0), marker="o", ms=3, label=f"{sampler} ({len(runs)} seeds)")
            ax.fill_between(x, y.min(0).values, y.max(0).values, color=line.get_color(), alpha=0.25)
        add_epoch_axis(ax, 1 / self.epoch_tokens, "epochs of the training part")
        return finish(fig, ax, xlabel="training tokens", ylabel=LOSS_LABEL)


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
    json_properties: ClassVar[tuple[str, ...]] = ("course_batch_tokens", "sqrt_rule")
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

    def report(self) -> list[str]:
        side = "above" if self.course_std > self.seed_spread else "below"
        stretches, length = self.course_batch
        return [f"one batch of {self.batch_tokens:,} test tokens: std {self.one_batch_std:.3f} nats around the whole "
                f"test part's loss; seed spread of that loss at the end: {self.seed_spread:.3f} nats",
                f"one batch of the course's {self.course_batch_tokens:,} tokens ({stretches} stretches of {length}): "
                f"std {self.course_std:.3f} nats ({side} that seed spread); 1/sqrt(n) from {self.batch_tokens:,} "
                f"tokens predicts {self.sqrt_rule:.3f}"]

    def facts(self) -> list[str]:
        return [f"one batch is noisier than the seed spread of the whole test part's loss: "
                f"{self.one_batch_std > self.seed_spread}",
                f"a batch of the course's {self.course_batch_tokens:,} tokens is less noisy than one of "
                f"{self.batch_tokens:,}: {self.course_std < self.one_batch_std}"]

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
        block_reads = coverage(allowed, T, len(c.tokens)) > 0  # the tokens the block split's windows read
        seen = {  # share of each test set's tokens that the other split trains on
            "tail model on block test": (block_test.starts < c.tail_n - T).double().mean().item(),
            "block model on tail test": block_reads[c.tail_n :].double().mean().item(),
        }
        return cls(table, seen, runs)

    @property
    def bias(self) -> Difference:
        # Paired by seed: the same initial weights.
        return difference(self.table["tail split"][TAIL_TEST], self.table["block split"][BLOCK_TEST], paired=True)

    def report(self) -> list[str]:
        lines = [f"{tr} model on the {te}: {mean(v):.3f} ± {spread(v):.3f}" for tr, row in self.table.items()
                 for te, v in row.items()]
        lines += [f"tail bias (tail split on its test - block split on its test): {self.bias}"]
        return lines + [f"{k}: {v:.0%} of its tokens were training text" for k, v in self.seen_in_training.items()]

    def facts(self) -> list[str]:
        return [f"the tail split's test loss is higher than the block split's: {self.bias.difference > 0}"]

    def differences(self) -> list[tuple[str, Difference]]:
        return [("tail bias", self.bias)]

    def all_runs(self) -> list[Run]:
        return list(self.block_runs)


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
    def effect(self) -> Difference:
        return difference(self.losses[COURSE_TEST], self.losses[COURSE_BOOK], paired=True)

    def report(self) -> list[str]:
        return [f"{k}: {mean(v):.3f}" for k, v in self.losses.items()] + [
            f"licence: {self.licence_tokens:,} tokens, {self.licence_share:.1%} of the course's test part; "
            f"it moves the course's test loss by {self.effect}"]

    def facts(self) -> list[str]:
        return [f"the licence raises the course's test loss: {self.effect.difference > 0}",
                f"licence effect larger than twice the seed spread: {self.effect.beyond_noise}"]

    def differences(self) -> list[tuple[str, Difference]]:
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
        return cls(losses, (held.name, after), split.n_tokens("train"), runs, book)

    @property
    def shift(self) -> Difference:
        held, after = self.names
        return difference(self.losses[after], self.losses[held], paired=True)

    def report(self) -> list[str]:
        held, after = self.names
        prefix = f"book {self.book}: " if self.book is not None else ""
        lines = [f"{prefix}{k}: {mean(v):.3f}" for k, v in self.losses.items()]
        return lines + [f"{prefix}{after} - {held}: {self.shift}"]

    def facts(self) -> list[str]:
        held, after = self.names
        # Only the direction: whether a shift this small is beyond its seed spread depends on the budget (report).
        return [f"{after} is harder than the held-out {held.removesuffix(' held out')}: {self.shift.difference > 0}"]

    def differences(self) -> list[tuple[str, Difference]]:
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
    def vs_course(self) -> dict[str, Difference]:
        # Paired by seed: the seed gives every variant's run the course's run's initial weights and batches.
        return {v: difference(x, self.final["course"], paired=True) for v, x in self.final.items() if v != "course"}

    def report(self) -> list[str]:
        lines = [f"{v:24s} final test loss {mean(x):.3f} (seeds: {_seeds(x)})" for v, x in self.final.items()]
        return lines + [f"{v} - course: {d}" for v, d in self.vs_course.items()]

    def facts(self) -> list[str]:
        sched = [r for r in self.runs if r.config.warmup_steps > 0]  # the runs of the variants with a schedule
        shaped = bool(sched) and all(r.lr[0] < max(r.lr) and abs(r.lr[-1] / max(r.lr) - 0.1) < 1e-9 for r in sched)
        return [f"every variant's run trained as long as the course's: "
                f"{len({r.steps[-1] for r in self.runs}) == 1}",
                f"the scheduled runs started below their peak learning rate and ended at a tenth of it: {shaped}"]

    def differences(self) -> list[tuple[str, Difference]]:
        return [(f"{v} - course", d) for v, d in self.vs_course.items()]

    def all_runs(self) -> list[Run]:
        return list(self.runs)
