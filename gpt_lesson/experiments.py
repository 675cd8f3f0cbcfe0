"""Step 08: the lesson's open questions, answered by training runs instead of argument.

Every run trains the small ``experiment`` preset for the same budget of tokens (``Setup.epochs`` passes
over the lesson's training part), once per seed, and is evaluated on whole test parts: all their
non-overlapping windows (`TestSet`), so a test loss is the loss of the whole test text, not of a few batches.
The model's vocabulary is the corpus's own tokens (`Vocab`): the same text and the same predictions, but a
head 5× smaller than GPT-2's 50,257 rows, which is most of the time a small model spends on a CPU.

One function per question, each returning plain numbers (and facts derived from them):

- `compare_samplers`: random (the lesson's) vs epoch vs without replacement, test-loss curves per seed;
- `one_batch_noise`: the course's test loss on one random batch vs the loss of the whole test part;
- `compare_splits`: tail split vs block split, each model on each test set: the tail's bias;
- `licence_effect`: the course's test part still holds Project Gutenberg's licence;
- `subject_shift`: train on Parts I–III, test on held-out blocks of them and on Part IV (or any book's last
  quarter, `other_book`).

``python -m gpt_lesson.experiments --out DIR`` runs them all and writes ``results.json``, ``table.md`` and
the plots (matplotlib is imported by the plot functions only).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from .batches import SAMPLERS, batch_starts, coverage, epoch_windows, gather_windows
from .book import END_RE, BookError, clean_text, load_book
from .model import GPTConfig, Model5, forward_flops
from .presets import preset, train_config
from .split import block_split, tail_split
from .step import eval_mode
from .tokens import decode, encode
from .training import TrainConfig, train


# ---- The corpus's own vocabulary --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Vocab:
    """The GPT-2 ids a corpus uses, sorted: compact id i stands for GPT-2 id ``ids[i]``."""

    ids: torch.Tensor  # (V,) int64, sorted, unique

    @classmethod
    def of(cls, *token_vectors: torch.Tensor) -> "Vocab":
        return cls(torch.unique(torch.cat([t.long().reshape(-1) for t in token_vectors])))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, gpt2_tokens: torch.Tensor) -> torch.Tensor:
        """GPT-2 ids (N,) -> compact ids (N,); an id outside the vocabulary is an error."""
        t = gpt2_tokens.long()
        idx = torch.searchsorted(self.ids, t).clamp(max=len(self.ids) - 1)
        missing = self.ids[idx] != t
        if missing.any():
            raise ValueError(f"{int(missing.sum())} tokens are not in this vocabulary (e.g. GPT-2 id "
                             f"{int(t[missing][0])}); build it with Vocab.of(...) from every text you will encode")
        return idx

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Compact ids -> GPT-2 ids (for `gpt_lesson.decode`)."""
        return self.ids[ids.long()]


# ---- Budget and model ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Setup:
    """How every run of the experiments is sized; the same for all of them, so that they compare."""

    model: GPTConfig = field(default_factory=lambda: preset("experiment"))
    train: TrainConfig = field(default_factory=lambda: train_config("experiment"))
    epochs: float = 1.0  # tokens per run, in passes over the lesson's training part
    evals_per_epoch: int = 6  # points of the sampler curves per epoch
    seeds: tuple[int, ...] = (0, 1, 2)
    one_batch_draws: int = 64  # random single batches per evaluation (the course's test loss)
    device: str = "cpu"

    def with_vocab(self, vocab_size: int) -> "Setup":
        """The same setup for a corpus of ``vocab_size`` token ids (see `Vocab`)."""
        return Setup(**{**self.__dict__, "model": GPTConfig(**{**self.model.to_dict(), "vocab_size": vocab_size})})

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


def setup(quick: bool = False, device: str = "cpu") -> Setup:
    """The full setup (3 seeds, 1 epoch), or the quick one the tests run (2 seeds, a tenth of an epoch)."""
    if quick:
        return Setup(epochs=0.1, evals_per_epoch=15, seeds=(0, 1), device=device)
    return Setup(device=device)


# ---- Test sets and runs -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TestSet:
    """A whole test part as its non-overlapping windows: ``starts`` index ``tokens``."""

    name: str
    tokens: torch.Tensor
    starts: torch.Tensor

    @classmethod
    def of(cls, name: str, tokens: torch.Tensor, seq_len: int, allowed: torch.Tensor | None = None) -> "TestSet":
        return cls(name, tokens, epoch_windows(len(tokens), seq_len, allowed=allowed))

    def n_tokens(self, seq_len: int) -> int:
        return len(self.starts) * seq_len


@torch.no_grad()
def window_losses(model: Model5, test: TestSet, seq_len: int, *, batch_size: int = 64) -> torch.Tensor:
    """(W,) float: the mean next-token loss of each window of ``test``, on the CPU."""
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for i in range(0, len(test.starts), batch_size):
            x, y = gather_windows(test.tokens, test.starts[i : i + batch_size], seq_len)
            logits = model(x.to(device).long()).float()  # (b, T, V)
            loss = F.cross_entropy(logits.flatten(0, 1), y.to(device).long().flatten(), reduction="none")
            out.append(loss.view(len(x), seq_len).mean(1).cpu())
    return torch.cat(out)


@dataclass
class Run:
    """One training run: its test losses at each evaluation (``loss[test name][i]`` after ``steps[i]``)."""

    name: str
    sampler: str
    seed: int
    steps: list[int]
    tokens: list[int]
    loss: dict[str, list[float]]
    train_seconds: float = 0.0
    windows: dict[str, list[torch.Tensor]] = field(default_factory=dict, repr=False)  # per-window losses
    model: Model5 | None = field(default=None, repr=False)

    def final(self, test: str) -> float:
        return self.loss[test][-1]

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("windows", "model")}


def train_run(tokens: torch.Tensor, test_sets: list[TestSet], setup: Setup, *, name: str, seed: int,
              eval_steps: list[int], sampler: str = "random", allowed: torch.Tensor | None = None,
              keep_windows: bool = False) -> Run:
    """Train a fresh ``experiment`` model (init and batches seeded by ``seed``) to ``eval_steps[-1]`` steps,
    evaluating every test set after each step count in ``eval_steps``.

    The run is `gpt_lesson.train` called once per stretch between evaluations, resuming from its checkpoint,
    so it draws exactly the batches of one unbroken run (the start table depends on the seed only).
    """
    torch.manual_seed(seed)
    model = Model5(setup.model).to(setup.device)
    config = setup.train.with_overrides(steps=eval_steps[-1], seed=seed, sampler=sampler, eval_every=eval_steps[-1])
    T = config.seq_len
    run = Run(name, sampler, seed, [], [], {t.name: [] for t in test_sets})
    with tempfile.TemporaryDirectory() as tmp:
        ckpt, done = Path(tmp) / "run.pt", 0
        for step in eval_steps:
            h = train(model, tokens, None, config, device=setup.device, progress=False, checkpoint_path=ckpt,
                      resume_from=ckpt if done else None, stop_after=step - done, allowed=allowed)
            done = step
            run.steps.append(step)
            run.tokens.append(step * setup.batch_tokens)
            for test in test_sets:
                w = window_losses(model, test, T)
                run.loss[test.name].append(w.mean().item())
                if keep_windows:
                    run.windows.setdefault(test.name, []).append(w)
    run.train_seconds, run.model = h.train_seconds, model.cpu()
    return run


def _spread(values: list[float]) -> float:
    return torch.tensor(values, dtype=torch.float64).std().item() if len(values) > 1 else float("nan")


def difference(a: list[float], b: list[float], *, paired: bool) -> dict:
    """mean(a) - mean(b) and its seed spread: the std of the per-seed differences (paired: the same models on two
    test sets, or runs whose seed gave them the same initial weights), else sqrt(std(a)² + std(b)²), the spread
    of one seed's difference of independent runs. ``beyond_noise``: the difference exceeds twice that spread."""
    diff = sum(a) / len(a) - sum(b) / len(b)
    if paired:
        spread = _spread([x - y for x, y in zip(a, b)])
    else:
        spread = math.sqrt(_spread(a) ** 2 + _spread(b) ** 2)
    return {"difference": diff, "spread": spread, "seeds": len(a), "beyond_noise": abs(diff) > 2 * spread}


def _say(progress: Callable[[str], None] | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


# ---- The corpus ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Corpus:
    """*Gulliver's Travels* as the experiments use it, in the compact ids of ``vocab``."""

    vocab: Vocab
    tokens: torch.Tensor  # the cleaned book (notebooks 01-02)
    tail_n: int  # the lesson's 90/10 tail split: tokens[:tail_n] train
    part4: int  # where Part IV starts
    course_book: torch.Tensor  # the course's test part (last 10% of the raw file's tokens) up to the licence ...
    course_licence: torch.Tensor  # ... and the Project Gutenberg end marker and licence after it
    seq_len: int

    @property
    def tail_test(self) -> TestSet:
        return TestSet.of("tail test", self.tokens[self.tail_n :], self.seq_len)

    def block(self) -> tuple[torch.Tensor, TestSet]:
        """Notebook 03's block split (seed 0), with a gap of ``seq_len``: (allowed train starts, test set)."""
        split = block_split(self.tokens, 0.1, block_len=2048, seq_len=self.seq_len, generator=torch.Generator().manual_seed(0))
        return split.starts("train", self.seq_len), TestSet.of("block test", self.tokens, self.seq_len,
                                                               allowed=split.starts("test", self.seq_len))


def gulliver(raw_text: str, seq_len: int) -> Corpus:
    """The corpus from the raw Gutenberg file (BOM, CRLF, header and licence included)."""
    text = clean_text(raw_text)
    gpt2 = encode(text)
    m = re.search(r"^PART IV\. A VOYAGE", text, re.MULTILINE)
    if m is None:
        raise ValueError("no 'PART IV. A VOYAGE' heading in this text: the experiments need Gulliver's Travels")
    raw = encode(raw_text)  # the course's tokens
    tail = decode(raw[int(0.9 * len(raw)) :]).replace("\ufeff", "").replace("\r\n", "\n")  # line endings as ours
    end = END_RE.search(tail)
    cut = end.start() if end is not None else len(tail)
    book_part, licence = encode(tail[:cut]), encode(tail[cut:])
    vocab = Vocab.of(gpt2, book_part, licence)
    _, tail_test = tail_split(gpt2, 0.9)
    return Corpus(vocab, vocab.encode(gpt2), len(gpt2) - len(tail_test), len(encode(text[: m.start()])),
                  vocab.encode(book_part), vocab.encode(licence), seq_len)


# ---- The experiments ------------------------------------------------------------------------------------------------

def compare_samplers(corpus: Corpus, setup: Setup, progress: Callable[[str], None] | None = None) -> dict:
    """Random vs epoch vs without replacement on the tail split: test-loss curves, one run per sampler and seed."""
    train_tokens, test = corpus.tokens[: corpus.tail_n], corpus.tail_test
    steps, T = setup.eval_steps(corpus.tail_n), setup.train.seq_len
    runs, unseen = {}, {}
    for sampler in SAMPLERS:
        runs[sampler], unseen[sampler] = [], []
        for seed in setup.seeds:
            _say(progress, f"samplers: {sampler}, seed {seed}")
            runs[sampler].append(train_run(train_tokens, [test], setup, name=f"tail/{sampler}", seed=seed,
                                           eval_steps=steps, sampler=sampler, keep_windows=sampler == "random"))
            table = batch_starts(corpus.tail_n, steps[-1], setup.train.batch_size, T, seed=seed, sampler=sampler)
            unseen[sampler].append((coverage(table, T, corpus.tail_n)[: corpus.tail_n - T] == 0).double().mean().item())
    final = {s: [r.final(test.name) for r in runs[s]] for s in SAMPLERS}
    # Paired by seed: the seed gives every sampler's run the same initial weights.
    vs = {s: difference(final[s], final["random"], paired=True) for s in SAMPLERS if s != "random"}
    return {"runs": runs, "final": final, "vs_random": vs, "unseen": unseen, "epoch_tokens": corpus.tail_n,
            "test_tokens": test.n_tokens(T)}


def one_batch_noise(samplers: dict, setup: Setup, *, seed: int = 0) -> dict:
    """The course's test loss is one random batch of B windows; ours the whole test part. For each evaluation of
    the random-sampler runs: the spread of ``one_batch_draws`` one-batch losses (B windows drawn with
    replacement from the test windows) around the whole part's loss, next to the seed spread of that loss."""
    g = torch.Generator().manual_seed(seed)
    runs, B = samplers["runs"]["random"], setup.train.batch_size
    bands = []
    for run in runs:
        rows = []
        for w in run.windows["tail test"]:
            one = w[torch.randint(0, len(w), (setup.one_batch_draws, B), generator=g)].mean(1)
            rows.append({"whole": w.mean().item(), "std": one.std().item(), "lo": one.quantile(0.05).item(),
                         "hi": one.quantile(0.95).item(), "min": one.min().item(), "max": one.max().item()})
        bands.append(rows)
    one_std = sum(r["std"] for rows in bands for r in rows) / sum(len(rows) for rows in bands)
    seed_spread = _spread([rows[-1]["whole"] for rows in bands])
    return {"bands": bands, "steps": runs[0].steps, "tokens": runs[0].tokens, "one_batch_std": one_std,
            "seed_spread": seed_spread, "batch_tokens": setup.batch_tokens}


def compare_splits(corpus: Corpus, setup: Setup, samplers: dict, progress: Callable[[str], None] | None = None) -> dict:
    """Tail split vs block split: a model trained on each (same budget, same seeds), evaluated on both test sets."""
    allowed, block_test = corpus.block()
    tail_test, T = corpus.tail_test, setup.train.seq_len
    steps = [setup.steps_for(corpus.tail_n)]
    tail_models = [r.model for r in samplers["runs"]["random"]]
    on_block = [window_losses(m.to(setup.device), block_test, T).mean().item() for m in tail_models]
    table = {"tail split": {"tail test": samplers["final"]["random"], "block test": on_block}}
    runs = []
    for seed in setup.seeds:
        _say(progress, f"splits: block split, seed {seed}")
        runs.append(train_run(corpus.tokens, [tail_test, block_test], setup, name="block/random", seed=seed,
                              eval_steps=steps, allowed=allowed))
    table["block split"] = {t: [r.final(t) for r in runs] for t in ("tail test", "block test")}
    bias = difference(table["tail split"]["tail test"], table["block split"]["block test"], paired=True)  # same inits
    block_reads = coverage(allowed, T, len(corpus.tokens)) > 0  # the tokens the block split's windows read
    seen = {  # share of each test set's tokens that the other split trains on
        "tail model on block test": (block_test.starts < corpus.tail_n - T).double().mean().item(),
        "block model on tail test": block_reads[corpus.tail_n :].double().mean().item(),
    }
    return {"table": table, "bias": bias, "seen_in_training": seen, "block_runs": runs}


def licence_effect(corpus: Corpus, setup: Setup, samplers: dict) -> dict:
    """The course tokenized the raw file, so its test part ends with Project Gutenberg's licence. The tail-split
    models (trained on the cleaned text), evaluated on that part with and without the licence."""
    T = setup.train.seq_len
    sets = {
        "course test part": TestSet.of("course", torch.cat([corpus.course_book, corpus.course_licence]), T),
        "course test part without the licence": TestSet.of("book", corpus.course_book, T),
        "licence alone": TestSet.of("licence", corpus.course_licence, T),
    }
    losses = {k: [window_losses(r.model.to(setup.device), s, T).mean().item() for r in samplers["runs"]["random"]]
              for k, s in sets.items()}
    licence_share = len(corpus.course_licence) / (len(corpus.course_book) + len(corpus.course_licence))
    effect = difference(losses["course test part"], losses["course test part without the licence"], paired=True)
    return {"losses": losses, "effect": effect, "licence_share": licence_share,
            "licence_tokens": len(corpus.course_licence)}


def subject_shift(tokens: torch.Tensor, boundary: int, setup: Setup, *, epoch_tokens: int, after: str = "Part IV",
                  before: str = "Parts I-III", progress: Callable[[str], None] | None = None) -> dict:
    """Train on ``tokens[:boundary]`` (a block split of it: 10% held out), evaluate on its held-out blocks and on
    ``tokens[boundary:]``: how much worse is text of another subject, beyond the noise of the seed?"""
    T = setup.train.seq_len
    split = block_split(tokens[:boundary], 0.1, block_len=2048, seq_len=T, generator=torch.Generator().manual_seed(0))
    held = TestSet.of(f"{before} held out", tokens, T, allowed=split.starts("test", T))
    later = TestSet.of(after, tokens, T, allowed=torch.arange(boundary, len(tokens) - T))
    runs = []
    for seed in setup.seeds:
        _say(progress, f"shift: {before} -> {after}, seed {seed}")
        runs.append(train_run(tokens, [held, later], setup, name=f"{before}/random", seed=seed,
                              eval_steps=[setup.steps_for(epoch_tokens)], allowed=split.starts("train", T)))
    losses = {t.name: [r.final(t.name) for r in runs] for t in (held, later)}
    return {"losses": losses, "shift": difference(losses[after], losses[held.name], paired=True),
            "names": (held.name, after), "train_tokens": split.n_tokens("train"), "runs": runs}


def other_book(book: int | str, setup: Setup, *, progress: Callable[[str], None] | None = None) -> dict:
    """`subject_shift` on any Gutenberg book: its first three quarters against its last quarter.
    Needs the network (or a cached copy); ``{"skipped": reason}`` when the book cannot be had."""
    try:
        text = load_book(book, verbose=False).text
    except (ConnectionError, BookError, OSError) as e:
        return {"skipped": f"book {book} skipped: {str(e).splitlines()[0]}"}
    gpt2 = encode(clean_text(text))
    vocab = Vocab.of(gpt2)
    tokens = vocab.encode(gpt2)
    boundary = int(0.75 * len(tokens))
    result = subject_shift(tokens, boundary, setup.with_vocab(len(vocab)), epoch_tokens=int(0.9 * len(tokens)),
                           after="last quarter", before="first three quarters", progress=progress)
    return {**result, "book": book, "tokens": len(tokens), "vocab": len(vocab)}


# ---- All of them, the printed conclusions, the run folder -------------------------------------------------------

def run_all(setup: Setup, *, raw_text: str | None = None, book: int | str | None = None,
            progress: Callable[[str], None] | None = print) -> dict:
    """Every experiment on *Gulliver's Travels* (``raw_text``: the raw file; default `load_book`), and
    `other_book` when ``book`` is given. Returns the results (models and per-window losses included)."""
    t0 = time.perf_counter()
    corpus = gulliver(raw_text if raw_text is not None else load_book(verbose=False).text, setup.train.seq_len)
    s = setup.with_vocab(len(corpus.vocab))
    out = {"setup": s, "vocab": len(corpus.vocab), "tail_n": corpus.tail_n, "part4": corpus.part4}
    out["samplers"] = compare_samplers(corpus, s, progress)
    out["one_batch"] = one_batch_noise(out["samplers"], s)
    out["splits"] = compare_splits(corpus, s, out["samplers"], progress)
    out["licence"] = licence_effect(corpus, s, out["samplers"])
    out["shift"] = subject_shift(corpus.tokens, corpus.part4, s, epoch_tokens=corpus.tail_n, progress=progress)
    if book is not None:
        out["other_book"] = other_book(book, setup, progress=progress)
    out["seconds"] = time.perf_counter() - t0
    out["train_flops"] = train_flops(out, s)
    return out


def _all_runs(results: dict) -> list[Run]:
    runs = [r for rs in results["samplers"]["runs"].values() for r in rs]
    runs += results["splits"]["block_runs"] + results["shift"]["runs"]
    return runs + results.get("other_book", {}).get("runs", [])


def train_flops(results: dict, setup: Setup) -> float:
    """Training FLOPs of every run: 3 forward passes' worth per step (`gpt_lesson.forward_flops`)."""
    per_step = 3 * forward_flops(setup.model, setup.train.batch_size, setup.train.seq_len)
    return float(sum(r.steps[-1] for r in _all_runs(results)) * per_step)


def t4_estimate(results: dict, *, step_overhead_s: float = 0.005, t4_flops: float = 8.1e12, efficiency: float = 0.3) -> dict:
    """An estimate, not a measurement, of the same runs with ``device="cuda"`` on a Colab T4: the runs' training
    FLOPs at ``efficiency`` of a T4's fp32 peak, but no faster than ``step_overhead_s`` per step (a model this small
    leaves a GPU waiting on Python and kernel launches). Everything outside training (tokenizing, evaluation,
    plots) is counted at its measured time here: an upper bound, since evaluation would run on the GPU too."""
    runs = _all_runs(results)
    steps = sum(r.steps[-1] for r in runs)
    cpu_train = sum(r.train_seconds for r in runs)
    gpu_train = max(results["train_flops"] / (t4_flops * efficiency), steps * step_overhead_s)
    other = results["seconds"] - cpu_train
    return {"steps": steps, "cpu_train_s": cpu_train, "cpu_flops_per_s": results["train_flops"] / cpu_train,
            "t4_train_s": gpu_train, "other_s": other, "t4_s": gpu_train + other}


def _pm(d: dict) -> str:
    verdict = "beyond twice the seed spread" if d["beyond_noise"] else "inside twice the seed spread: no finding"
    return f"{d['difference']:+.3f} ± {d['spread']:.3f} nats ({d['seeds']} seeds; {verdict})"


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def report_samplers(sm: dict) -> list[str]:
    lines = [f"{s:20s} final test loss {_mean(sm['final'][s]):.3f} (seeds: {', '.join(f'{v:.3f}' for v in sm['final'][s])}), "
             f"training text never seen: {_mean(sm['unseen'][s]):.1%}" for s in SAMPLERS]
    return lines + [f"{s} - random: {_pm(d)}" for s, d in sm["vs_random"].items()]


def facts_samplers(sm: dict) -> list[str]:
    fell = all(r.loss["tail test"][-1] < r.loss["tail test"][0] for rs in sm["runs"].values() for r in rs)
    return [f"every run's test loss fell from its first to its last evaluation: {fell}",
            f"random sampling left more of the training text unseen than the epoch sampler: "
            f"{_mean(sm['unseen']['random']) > _mean(sm['unseen']['epoch'])}"] + [
            f"{s} vs random: final test losses within 0.1 nats of each other: {abs(d['difference']) < 0.1}"
            for s, d in sm["vs_random"].items()]


def report_one_batch(ob: dict) -> list[str]:
    return [f"one batch of {ob['batch_tokens']:,} test tokens: std {ob['one_batch_std']:.3f} nats around the whole "
            f"test part's loss; seed spread of that loss at the end: {ob['seed_spread']:.3f} nats"]


def facts_one_batch(ob: dict) -> list[str]:
    return [f"one batch is noisier than the seed spread of the whole test part's loss: "
            f"{ob['one_batch_std'] > ob['seed_spread']}"]


def report_splits(sp: dict) -> list[str]:
    lines = [f"{tr} model on the {te}: {_mean(v):.3f} ± {_spread(v):.3f}" for tr, row in sp["table"].items()
             for te, v in row.items()]
    lines += [f"tail bias (tail split on its test - block split on its test): {_pm(sp['bias'])}"]
    return lines + [f"{k}: {v:.0%} of its tokens were training text" for k, v in sp["seen_in_training"].items()]


def facts_splits(sp: dict) -> list[str]:
    return [f"the tail split's test loss is higher than the block split's: {sp['bias']['difference'] > 0}"]


def report_licence(lic: dict) -> list[str]:
    return [f"{k}: {_mean(v):.3f}" for k, v in lic["losses"].items()] + [
        f"licence: {lic['licence_tokens']:,} tokens, {lic['licence_share']:.1%} of the course's test part; "
        f"it moves the course's test loss by {_pm(lic['effect'])}"]


def facts_licence(lic: dict) -> list[str]:
    return [f"the licence raises the course's test loss: {lic['effect']['difference'] > 0}",
            f"licence effect larger than twice the seed spread: {lic['effect']['beyond_noise']}"]


def report_shift(sh: dict) -> list[str]:
    held, after = sh["names"]
    prefix = f"book {sh['book']}: " if "book" in sh else ""
    return [f"{prefix}{k}: {_mean(v):.3f}" for k, v in sh["losses"].items()] + [
        f"{prefix}{after} - {held}: {_pm(sh['shift'])}"]


def facts_shift(sh: dict) -> list[str]:
    held, after = sh["names"]
    # Only the direction: whether a shift this small is beyond its seed spread depends on the budget (report_shift).
    return [f"{after} is harder than the held-out {held.removesuffix(' held out')}: {sh['shift']['difference'] > 0}"]


_PARTS = {"samplers": (report_samplers, facts_samplers), "one_batch": (report_one_batch, facts_one_batch),
          "splits": (report_splits, facts_splits), "licence": (report_licence, facts_licence),
          "shift": (report_shift, facts_shift)}


def report(results: dict) -> dict[str, list[str]]:
    """Per experiment: the numbers (which change with the machine, the budget and the seeds)."""
    lines = {k: rep(results[k]) for k, (rep, _) in _PARTS.items() if k in results}
    other = results.get("other_book")
    if other is not None:
        lines["other_book"] = [other["skipped"]] if "skipped" in other else report_shift(other)
    return lines


def facts(results: dict) -> dict[str, list[str]]:
    """Per experiment: lines of facts that end in ': True' or ': False' (what the notebook's checked cells print)."""
    return {k: fact(results[k]) for k, (_, fact) in _PARTS.items() if k in results}


def to_json(results: dict) -> dict:
    """The results without models and tensors, for ``results.json``."""
    def clean(v):
        if isinstance(v, Run):
            return v.to_dict()
        if isinstance(v, Setup):
            return {"model": v.model.to_dict(), "train": v.train.to_dict(), "epochs": v.epochs,
                    "evals_per_epoch": v.evals_per_epoch, "seeds": list(v.seeds), "device": v.device}
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v
    return clean({k: v for k, v in results.items()})


def plot_samplers(sm: dict, ax=None):
    """Test loss against training tokens (bottom axis) and epochs (top axis), per sampler: the seeds' mean
    and, shaded, the band between the lowest and the highest seed."""
    import matplotlib.pyplot as plt

    fig, ax = (plt.subplots(figsize=(8, 4)) if ax is None else (ax.figure, ax))
    for sampler, runs in sm["runs"].items():
        x = torch.tensor(runs[0].tokens, dtype=torch.float64)
        y = torch.tensor([r.loss["tail test"] for r in runs])
        (line,) = ax.plot(x, y.mean(0), marker="o", ms=3, label=f"{sampler} ({len(runs)} seeds)")
        ax.fill_between(x, y.min(0).values, y.max(0).values, color=line.get_color(), alpha=0.25)
    top = ax.secondary_xaxis("top", functions=(lambda t: t / sm["epoch_tokens"], lambda e: e * sm["epoch_tokens"]))
    top.set_xlabel("epochs of the training part")
    return _finish_loss_plot(fig, ax)


def plot_one_batch(ob: dict, ax=None):
    """The whole test part's loss per evaluation (seed 0, and thin lines for the other seeds) and, shaded, where 90%
    of seed 0's one-batch losses fall."""
    import matplotlib.pyplot as plt

    fig, ax = (plt.subplots(figsize=(8, 4)) if ax is None else (ax.figure, ax))
    rows, x = ob["bands"][0], ob["tokens"]
    ax.fill_between(x, [r["lo"] for r in rows], [r["hi"] for r in rows], alpha=0.3,
                    label=f"one random batch ({ob['batch_tokens']:,} tokens): 5-95% of draws")
    ax.plot(x, [r["whole"] for r in rows], marker="o", ms=3, label="whole test part")
    for i, rows in enumerate(ob["bands"][1:]):
        ax.plot(x, [r["whole"] for r in rows], color="tab:orange", lw=0.8, alpha=0.7,
                label="whole test part, other seeds" if i == 0 else None)
    return _finish_loss_plot(fig, ax)


def _finish_loss_plot(fig, ax):
    """Axis labels, legend and grid of a tail-test-loss curve over training tokens."""
    ax.set_xlabel("training tokens")
    ax.set_ylabel("tail test loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_differences(results: dict, ax=None):
    """Each question's answer, a difference in nats, with an error bar of twice its seed spread."""
    import matplotlib.pyplot as plt

    items = [(f"{s} - random", d) for s, d in results["samplers"]["vs_random"].items()]
    items += [("tail bias", results["splits"]["bias"]), ("licence in test", results["licence"]["effect"]),
              ("Part IV shift", results["shift"]["shift"])]
    fig, ax = (plt.subplots(figsize=(8, 3.5)) if ax is None else (ax.figure, ax))
    ys = range(len(items))
    ax.errorbar([d["difference"] for _, d in items], ys, xerr=[2 * d["spread"] for _, d in items], fmt="o", capsize=4)
    ax.axvline(0, color="grey", lw=1)
    ax.set_yticks(list(ys), [name for name, _ in items])
    ax.set_xlabel("difference in test loss (nats/token), bars: ± 2 seed spreads")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def write_run(results: dict, out: str | os.PathLike) -> Path:
    """``results.json``, ``table.md`` (the numbers and the facts) and three PNG plots into the folder ``out``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(to_json(results), indent=1), encoding="utf-8")
    numbers, checks = report(results), facts(results)
    md = [f"# Experiments ({results['setup'].epochs:g} epochs, seeds {list(results['setup'].seeds)})", ""]
    for name in numbers:
        md += [f"## {name}", "", *[f"- {line}" for line in numbers[name] + checks.get(name, [])], ""]
    (out / "table.md").write_text("\n".join(md), encoding="utf-8")
    for name, plot, data in (("samplers", plot_samplers, results["samplers"]),
                             ("one_batch", plot_one_batch, results["one_batch"]), ("differences", plot_differences, results)):
        fig = plot(data)
        fig.savefig(out / f"{name}.png", dpi=120)
        import matplotlib.pyplot as plt

        plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m gpt_lesson.experiments", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="run folder for results.json, table.md and the plots")
    p.add_argument("--quick", action="store_true", help="2 seeds, a tenth of an epoch (what the tests run)")
    p.add_argument("--book", default=None, help="also a Gutenberg id (or URL, or file) for the other-book shift")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    book = int(args.book) if args.book is not None and args.book.isdigit() else args.book
    results = run_all(setup(args.quick, args.device), book=book)
    folder = write_run(results, args.out)
    for name, lines in report(results).items():
        print(f"[{name}]", *lines, *facts(results).get(name, []), sep="\n  ")
    print(f"{results['seconds']:.0f} s; written to {folder}")


if __name__ == "__main__":
    main()
