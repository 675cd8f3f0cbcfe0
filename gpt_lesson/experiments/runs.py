"""How the experiments' runs are sized, trained and compared.

Every run trains the small ``experiment`` preset for the same budget of tokens (`RunSpec.epochs` passes over the
lesson's training part), once per seed, and is evaluated at chosen steps on whole test parts (every
non-overlapping window, `gpt_lesson.evaluation.EvalSet.windows`). A run is one `gpt_lesson.Trainer`, run to each
evaluation step in turn: the losses of one unbroken run, with no checkpoint in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import torch

from ..config import TrainConfig
from ..evaluation import EvalSet, window_losses
from ..model import GPTConfig, Model5
from ..presets import preset, train_config
from ..plan import RunPlan
from ..training import Trainer
from ..verdicts import Verdict, verdict


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

    def with_model(self, **fields) -> RunSpec:
        """The same spec with some `GPTConfig` fields of every run's model changed (e.g. ``dropout=0.1``)."""
        return replace(self, model=replace(self.model, **fields))

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


# Passes over the training part per run on a GPU: enough for the experiment preset's runs to pass the bigram line
# of notebook 08 (measured on a CPU: see docs/experiments.md), at a run time a Colab T4 takes in minutes.
GPU_EPOCHS = 8.0


def setup(quick: bool = False, device: str | torch.device = "cpu") -> RunSpec:
    """The spec of every run: 3 seeds of 1 epoch on a CPU, of `GPU_EPOCHS` epochs on a GPU (``device`` "cuda"); or
    the quick one the tests run on either (2 seeds, a tenth of an epoch)."""
    device = str(device)
    if quick:
        return RunSpec(epochs=0.1, evals_per_epoch=15, seeds=(0, 1), device=device)
    if torch.device(device).type == "cuda":
        return RunSpec(epochs=GPU_EPOCHS, evals_per_epoch=2, device=device)
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


def compare(what: str, a: list[float], b: list[float], *, above: str, below: str, unit: str = "nats") -> Verdict:
    """``mean(a) - mean(b)`` over seeds, paired by seed (the same seed gives both runs the same initial weights and
    batches, or ``a`` and ``b`` are the same models on two test sets), as a `gpt_lesson.verdict`: beyond the noise
    when |difference| > 2 × the std of the per-seed differences. ``above``/``below``: the finding when a is
    higher/lower."""
    return verdict(what, a, b, paired=True, unit=unit, above=above, below=below)


def verdict_dict(v: Verdict) -> dict:
    """A verdict as plain values for results.json (NaN, for a value not measured, is written as null)."""
    return {"what": v.what, "difference": v.difference, "noise": v.noise, "n": v.n, "kind": v.kind,
            "direction": v.direction, "beyond": v.beyond, "sentence": str(v)}
