"""How the experiments' runs are sized, trained and compared.

Every run trains the small ``experiment`` preset for the same budget of tokens (`RunSpec.epochs` passes over the
lesson's training part), once per seed, and is evaluated at chosen steps on whole test parts (every
non-overlapping window, `gpt_lesson.evaluation.EvalSet.windows`). A run is one `gpt_lesson.Trainer`, run to each
evaluation step in turn: the losses of one unbroken run, with no checkpoint in between.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace

import torch

from ..config import TrainConfig
from ..evaluation import EvalSet, window_losses
from ..model import GPTConfig, Model5
from ..presets import preset, train_config
from ..plan import RunPlan
from ..training import Trainer


@dataclass(frozen=True)
class RunSpec:
    """What every run of the experiments is: its model, training settings, budget of tokens, evaluations, seeds and
    device; the same for all of them, so that they compare."""

    model: GPTConfig = field(default_factory=lambda: preset("experiment"))
    train: TrainConfig = field(default_factory=lambda: train_config("experiment"))
    epochs: float = 1.0  # tokens per run, in passes over the lesson's training part
    evals_per_epoch: int = 6  # points of the sampler curves per epoch
    seeds: tuple[int, ...] = (0, 1, 2)
    one_batch_draws: int = 64  # random single batches per evaluation (the course's test loss)
    device: str = "cpu"

    def with_vocab(self, vocab_size: int) -> RunSpec:
        """The same spec for a corpus of ``vocab_size`` token ids (see `Vocab`)."""
        return replace(self, model=replace(self.model, vocab_size=vocab_size))

    def with_train(self, **settings) -> RunSpec:
        """The same spec with some `TrainConfig` fields of every run changed (e.g. ``lr=5e-4``)."""
        return replace(self, train=self.train.with_overrides(**settings))

    @property
    def batch_tokens(self) -> int:
        return self.train.batch_size * self.train.seq_len

    def steps_for(self, epoch_tokens: int) -> int:
        """Steps of a run whose budget is ``epochs`` passes over ``epoch_tokens`` tokens."""
        return max(1, round(self.epochs * epoch_tokens / self.batch_tokens))

    def eval_steps(self, epoch_tokens: int) -> list[int]:
        total = self.steps_for(epoch_tokens)
        every = max(1, round(epoch_tokens / self.batch_tokens / self.evals_per_epoch))
        return sorted({*range(every, total, every), total})

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**d, "model": self.model.to_dict(), "train": self.train.to_dict(), "seeds": list(self.seeds)}


def setup(quick: bool = False, device: str = "cpu") -> RunSpec:
    """The full spec (3 seeds, 1 epoch), or the quick one the tests run (2 seeds, a tenth of an epoch)."""
    if quick:
        return RunSpec(epochs=0.1, evals_per_epoch=15, seeds=(0, 1), device=device)
    return RunSpec(device=device)


@dataclass
class Run:
    """One training run: the settings it trained with and its test losses at each evaluation (``loss[test name][i]``
    after ``steps[i]``)."""

    name: str
    config: TrainConfig = field(repr=False)  # its sampler, seed, schedule, ...: what tells the runs of a variant apart
    steps: list[int]
    tokens: list[int]
    loss: dict[str, list[float]]
    train_seconds: float = 0.0
    lr: list[float] = field(default_factory=list)  # the learning rate of every step
    windows: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)  # per-window losses
    model: Model5 | None = field(default=None, repr=False)

    @property
    def sampler(self) -> str:
        return self.config.sampler

    @property
    def seed(self) -> int:
        return self.config.seed

    def final(self, test: str) -> float:
        return self.loss[test][-1]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("name", "sampler", "seed", "steps", "tokens", "loss", "train_seconds")}


def train_run(tokens: torch.Tensor, test_sets: list[EvalSet], spec: RunSpec, *, name: str, seed: int,
              eval_steps: list[int], sampler: str = "random", allowed: torch.Tensor | None = None,
              keep_windows: bool = False, **settings) -> Run:
    """Train a fresh model of ``spec`` (init and batches seeded by ``seed``) to ``eval_steps[-1]`` steps,
    evaluating every test set after each step count in ``eval_steps``; ``settings`` change fields of its
    `TrainConfig` (e.g. ``grad_clip=1.0``)."""
    torch.manual_seed(seed)
    model = Model5(spec.model).to(spec.device)
    config = spec.train.with_overrides(steps=eval_steps[-1], seed=seed, sampler=sampler, eval_every=eval_steps[-1],
                                        **settings)
    plan = RunPlan.build(spec.model, config, tokens, allowed=allowed)
    trainer = Trainer(plan, model, tokens, device=spec.device, progress=False)
    run = Run(name, config, [], [], {t.name: [] for t in test_sets})
    for step in eval_steps:
        trainer.run_to(step)
        run.steps.append(step)
        run.tokens.append(step * spec.batch_tokens)
        for test in test_sets:
            w = window_losses(model, test, loss_policy=trainer.step_fn.loss_policy)
            run.loss[test.name].append(w.mean().item())
            if keep_windows:
                run.windows.setdefault(test.name, []).append(w)
    run.train_seconds, run.lr, run.model = trainer.history.train_seconds, trainer.history.lr, model.cpu()
    return run


def spread(values: list[float]) -> float:
    """The standard deviation over seeds (NaN for one seed)."""
    return torch.tensor(values, dtype=torch.float64).std().item() if len(values) > 1 else float("nan")


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


@dataclass(frozen=True)
class Difference:
    """mean(a) - mean(b) over seeds and its seed spread; ``beyond_noise``: beyond twice that spread."""

    difference: float
    spread: float
    seeds: int

    @property
    def beyond_noise(self) -> bool:
        return abs(self.difference) > 2 * self.spread

    def __str__(self) -> str:
        verdict = "beyond twice the seed spread" if self.beyond_noise else "inside twice the seed spread: no finding"
        return f"{self.difference:+.3f} ± {self.spread:.3f} nats ({self.seeds} seeds; {verdict})"

    def to_dict(self) -> dict:
        return {"difference": self.difference, "spread": self.spread, "seeds": self.seeds,
                "beyond_noise": self.beyond_noise}


def difference(a: list[float], b: list[float], *, paired: bool) -> Difference:
    """mean(a) - mean(b) and its seed spread: the std of the per-seed differences (paired: the same models on two
    test sets, or runs whose seed gave them the same initial weights), else sqrt(std(a)² + std(b)²), the spread
    of one seed's difference of independent runs."""
    if paired:
        s = spread([x - y for x, y in zip(a, b)])
    else:
        s = math.sqrt(spread(a) ** 2 + spread(b) ** 2)
    return Difference(mean(a) - mean(b), s, len(a))
