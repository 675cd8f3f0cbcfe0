"""A grid of bad values through every public entry point that takes sizes or indices.

For each case: the call raises ValueError or TypeError (never an IndexError, RuntimeError or ZeroDivisionError from
deep inside), the message names the parameter the caller passed, names no other size parameter of the same call that
the caller did not pass, and suggests no zero or negative size (the old "Use seq_len <= -1 or more text").
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch

import gpt_lesson as gl

V = 97
CFG = gl.GPTConfig(vocab_size=V, context_length=16, n_layer=1, n_head=2, n_embd=16)
GPT2_VOCAB = gl.GPTConfig(context_length=16, n_layer=1, n_head=2, n_embd=16)  # for text prompts
TOKENS = torch.arange(100) % V

# Size and index parameters. A message may name those of its own call only when the caller passed them (the
# model's vocab_size or context_length may be named to a caller of evaluate: they are not parameters of that call).
SIZE_PARAMS = {
    "n_tokens", "batch_size", "seq_len", "steps", "n_batches", "stride", "block_len", "eval_every", "eval_batches",
    "stop_after", "grad_accum", "checkpoint_every", "loss_chunk", "micro_batches", "max_new_tokens", "top_k",
    "repeats", "warmup", "retries", "timeout", "budget", "vocab_size", "context_length", "n_layer", "n_head", "n_embd",
    "vocab_multiple",
}
# Parameters that are also plain English words: they count as named only when used as a parameter (name=, name <).
WORDS = {"steps", "stride", "repeats", "warmup", "retries", "timeout", "budget"}

# Suggestions of a zero or negative size: "Use seq_len <= -1", "<= 0", "= -3", "e.g. 0", "0 … -2" (a 0 followed by
# "." or a digit is a fraction such as 0.9, which is fine).
ZERO = r"0(?![.\d])"
BAD_ADVICE = [r"<=\s*-\d", rf"<=\s*{ZERO}", r"\s=\s*-\d", rf"e\.g\.\s*-?{ZERO}", r"e\.g\.\s*-\d", r"…\s*-\d",
              r"\.\.\.\s*-\d", rf"\buse\b[^.;]*?\b\w+\s*<?=\s*(?:-\d|{ZERO})", rf"e\.g\.\s*\w+\s*=\s*(?:-\d|{ZERO})"]

SIZES = {"0": 0, "-1": -1, "-4": -4, "2.5": 2.5, "None": None, "'x'": "x", "True": True}
POSITIVE_FLOATS = {"0": 0.0, "-1": -1.0, "nan": math.nan, "None": None, "'x'": "x", "True": True}


def model() -> gl.Model5:
    torch.manual_seed(0)
    return gl.Model5(CFG)


@dataclass
class Case:
    """``call(**{**base, param: value})`` for each bad value."""

    entry: str
    call: Callable[..., object]
    base: dict
    param: str
    values: dict
    says: str = ""  # the words that name the parameter in the message (default: the parameter's name)
    targets: tuple = ()  # the functions or classes whose parameters the call takes (default: ``call``)

    def size_params(self) -> set[str]:
        names = set()
        for target in self.targets or (self.call,):
            names |= set(inspect.signature(target).parameters)
        return names & SIZE_PARAMS


def sizes(*skip: str) -> dict:
    return {k: v for k, v in SIZES.items() if k not in skip}


def starts_values() -> dict:
    return {"past the end": torch.tensor([0, 100]), "negative": torch.tensor([-1]), "float": torch.tensor([1.5]),
            "2-D": torch.tensor([[1, 2]]), "a list": [1, 2]}


def allowed_values() -> dict:
    return {**starts_values(), "empty": torch.tensor([], dtype=torch.long), "bool": torch.tensor([True])}


def tokens_values() -> dict:
    return {"empty": torch.tensor([], dtype=torch.long), "too short": torch.arange(5), "2-D": TOKENS[None],
            "float": TOKENS.float(), "None": None, "'x'": "x"}


HUGE = {"huge": 10**9}

RB = dict(tokens=TOKENS, batch_size=4, seq_len=8)
RS = dict(n_tokens=100, batch_size=4, seq_len=8)
GW = dict(tokens=TOKENS, starts=torch.tensor([0, 5]), seq_len=8)
BS = dict(n_tokens=100, steps=3, batch_size=4, seq_len=8, seed=0)
EW = dict(n_tokens=100, seq_len=8)
EL = dict(tokens=TOKENS, batch_size=4, seq_len=8)
WD = dict(tokens=TOKENS, seq_len=8)
CV = dict(starts=torch.tensor([0, 5]), seq_len=8, n_tokens=100)
TS = dict(tokens=TOKENS, train_frac=0.9)
BK = dict(tokens=torch.arange(4000) % V, test_frac=0.1, block_len=256, seq_len=16)
ER = dict(tokens=TOKENS, batch_size=4, seq_len=8, n_batches=2, seed=0)
EWS = dict(tokens=TOKENS, seq_len=8, batch_size=4)
EV = dict(tokens=TOKENS, batch_size=2, seq_len=8, n_batches=1)
TR = dict(train_tokens=TOKENS, test_tokens=TOKENS, steps=2, batch_size=2, seq_len=8, eval_every=1, eval_batches=1,
          progress=False)
GEN = dict(prompt="Hello", max_new_tokens=2)
GT = dict(idx=torch.tensor([[1, 2]]), max_new_tokens=2)


def evaluate(**kw):
    return gl.evaluate(model(), **kw)


def train(**kw):
    return gl.train(model(), **kw)


def generate(**kw):
    torch.manual_seed(0)
    return gl.generate(gl.Model5(GPT2_VOCAB), **kw)


def generate_tokens(**kw):
    return gl.generate_tokens(model(), **kw)


def forward(idx):
    return model()(idx)


def gpt_config(**kw):
    return gl.GPTConfig(**{**CFG.to_dict(), **kw})


CASES: list[Case] = [
    *(Case("random_batch", gl.random_batch, RB, p, v) for p, v in [
        ("batch_size", sizes()), ("seq_len", {**sizes(), **HUGE}), ("allowed", allowed_values())]),
    Case("random_batch", gl.random_batch, RB, "tokens", tokens_values()),
    *(Case("random_starts", gl.random_starts, RS, p, v) for p, v in [
        ("n_tokens", sizes()), ("batch_size", sizes()), ("seq_len", {**sizes(), **HUGE}),
        ("allowed", allowed_values())]),
    *(Case("gather_windows", gl.gather_windows, GW, p, v) for p, v in [
        ("starts", starts_values()), ("seq_len", {**sizes(), **HUGE}), ("tokens", tokens_values())]),
    *(Case("batch_starts", gl.batch_starts, BS, p, v) for p, v in [
        ("n_tokens", sizes()), ("steps", sizes("0")), ("batch_size", sizes()), ("seq_len", {**sizes(), **HUGE}),
        ("allowed", allowed_values()), ("sampler", {"'x'": "x", "None": None})]),
    *(Case("epoch_windows", gl.epoch_windows, EW, p, v) for p, v in [
        ("n_tokens", sizes()), ("seq_len", {**sizes(), **HUGE}), ("allowed", allowed_values())]),
    *(Case("epoch_loader", gl.epoch_loader, EL, p, v) for p, v in [
        ("batch_size", sizes()), ("seq_len", {**sizes(), **HUGE}), ("stride", sizes("None")),
        ("tokens", tokens_values())]),
    *(Case("WindowDataset", gl.WindowDataset, WD, p, v) for p, v in [
        ("seq_len", {**sizes(), **HUGE}), ("stride", sizes("None")), ("tokens", tokens_values())]),
    *(Case("coverage", gl.coverage, CV, p, v) for p, v in [
        ("starts", {k: v for k, v in starts_values().items() if k != "2-D"}),  # any shape is fine there
        ("seq_len", {**sizes(), **HUGE}), ("n_tokens", sizes())]),
    Case("tail_split", gl.tail_split, TS, "train_frac", {"0": 0, "-1": -1, "1.5": 1.5, "None": None, "'x'": "x",
                                                          "True": True, "nan": math.nan}),
    Case("tail_split", gl.tail_split, TS, "tokens", {**tokens_values(), "too short": torch.arange(1)}),
    *(Case("block_split", gl.block_split, BK, p, v) for p, v in [
        ("block_len", {**sizes(), **HUGE}), ("seq_len", sizes()),
        ("test_frac", {"0": 0, "-1": -1, "None": None, "'x'": "x", "True": True, "nan": math.nan}),
        ("tokens", tokens_values())]),
    *(Case("EvalSet.random", gl.EvalSet.random, ER, p, v) for p, v in [
        ("batch_size", sizes()), ("seq_len", {**sizes(), **HUGE}), ("n_batches", sizes()),
        ("allowed", allowed_values()), ("tokens", tokens_values())]),
    *(Case("EvalSet.windows", gl.EvalSet.windows, EWS, p, v) for p, v in [
        ("seq_len", {**sizes(), **HUGE}), ("batch_size", sizes()), ("allowed", allowed_values()),
        ("tokens", tokens_values())]),
    *(Case("evaluate", evaluate, EV, p, v, targets=(gl.evaluate,)) for p, v in [
        ("batch_size", sizes()), ("seq_len", {**sizes(), "past the context": 17, **HUGE}), ("n_batches", sizes()),
        ("micro_batches", {**sizes(), "3 (does not split 2)": 3}), ("loss_chunk", sizes("0", "None")),
        ("tokens", {**tokens_values(), "ids past the vocabulary": torch.arange(100)})]),
    *(Case("train", train, TR, p, v, targets=(gl.train, gl.TrainConfig)) for p, v in [
        ("steps", sizes()), ("batch_size", sizes()), ("seq_len", {**sizes("None"), "past the context": 17, **HUGE}),
        ("eval_every", sizes()), ("eval_batches", sizes()), ("stop_after", sizes("None")),
        ("grad_accum", {**sizes(), "3 (does not divide 2)": 3}), ("checkpoint_every", sizes("None")),
        ("loss_chunk", sizes("0")), ("lr", {"-1": -1.0, "nan": math.nan, "None": None, "'x'": "x", "True": True}),
        ("train_tokens", tokens_values()), ("test_tokens", {k: v for k, v in tokens_values().items() if k != "None"}),
        ("sampler", {"'x'": "x"})]),
    *(Case("TrainConfig", gl.TrainConfig, {}, p, sizes()) for p in (
        "steps", "batch_size", "eval_every", "eval_batches", "grad_accum")),
    *(Case("TrainConfig", gl.TrainConfig, {}, p, sizes("None")) for p in ("seq_len", "checkpoint_every")),
    *(Case("GPTConfig", gpt_config, {}, p, sizes(), targets=(gl.GPTConfig,)) for p in (
        "vocab_size", "context_length", "n_layer", "n_head", "n_embd", "vocab_multiple")),
    Case("GPTConfig", gpt_config, {}, "ln_eps", POSITIVE_FLOATS, targets=(gl.GPTConfig,)),
    Case("GPTConfig", gpt_config, {}, "dropout", {"-1": -1.0, "1": 1.0, "nan": math.nan, "None": None, "'x'": "x",
                                                  "True": True}, targets=(gl.GPTConfig,)),
    Case("preset", gl.preset, {}, "name", {"'huge'": "huge", "None": None}, says="preset"),
    Case("train_config", gl.train_config, {}, "name", {"'huge'": "huge", "None": None}, says="preset"),
    *(Case("generate", generate, GEN, p, v, targets=(gl.generate,)) for p, v in [
        ("max_new_tokens", sizes("0")), ("temperature", POSITIVE_FLOATS), ("top_k", sizes("None"))]),
    *(Case("generate_tokens", generate_tokens, GT, p, v, targets=(gl.generate_tokens,)) for p, v in [
        ("max_new_tokens", sizes("0")), ("temperature", POSITIVE_FLOATS), ("top_k", sizes("None"))]),
    Case("Model5 forward", forward, {}, "idx", {"id = vocab_size": torch.tensor([[1, V]]),
                                                 "id -1": torch.tensor([[-1]]),
                                                 "float": torch.tensor([[1.0]]), "1-D": torch.tensor([1, 2]),
                                                 "a list": [[1, 2]]}, says="token id", targets=(gl.Model5.forward,)),
    Case("time_it", lambda **kw: gl.time_it(lambda: None, **kw), {}, "repeats", sizes(), targets=(gl.time_it,)),
    Case("time_it", lambda **kw: gl.time_it(lambda: None, **kw), {}, "warmup", sizes("0"), targets=(gl.time_it,)),
    *(Case("load_book", gl.load_book, dict(offline=True, verbose=False), p, v) for p, v in [
        ("retries", sizes()), ("timeout", POSITIVE_FLOATS), ("budget", POSITIVE_FLOATS)]),
]


def named(message: str, param: str) -> bool:
    if param in WORDS:
        return re.search(rf"\b{param}\s*(=|<|>|must|\()", message) is not None
    return re.search(rf"\b{re.escape(param)}\b", message) is not None


GRID = [pytest.param(case, value, id=f"{case.entry}-{case.param}={label}")
        for case in CASES for label, value in case.values.items()]


@pytest.mark.parametrize("case, value", GRID)
def test_a_bad_value_gets_a_clear_message_about_it(case: Case, value):
    kwargs = {**case.base, case.param: value}
    with pytest.raises((ValueError, TypeError)) as err:
        case.call(**kwargs)
    assert not isinstance(err.value, (IndexError, ZeroDivisionError)), repr(err.value)
    msg = str(err.value)
    says = case.says or case.param
    assert says in msg, f"the message does not name {says!r}: {msg}"
    others = sorted(p for p in case.size_params() - set(kwargs) if named(msg, p))
    assert not others, f"the message names {others}, which the caller did not pass: {msg}"
    advice = [pattern for pattern in BAD_ADVICE if re.search(pattern, msg, flags=re.IGNORECASE)]
    assert not advice, f"the message suggests a zero or negative size ({advice}): {msg}"


def test_every_message_checker_catches_the_old_advice():
    """The old message for seq_len on an empty token vector, and its kin, fail the advice check."""
    for old in ("Use seq_len <= -1 or more text.", "use seq_len <= 0", "e.g. 0", "got 0 … -2", "use n_embd = -4",
                "use e.g. n_embd=0"):
        assert any(re.search(p, old, flags=re.IGNORECASE) for p in BAD_ADVICE), old
    for fine in ("got -1", "seq_len=-1 must be smaller", "use seq_len <= 99 or more text", "a number >= 0",
                 "strictly between 0 and 1 (e.g. 0.9)", "use seq_len <= 16"):
        assert not any(re.search(p, fine, flags=re.IGNORECASE) for p in BAD_ADVICE), fine
