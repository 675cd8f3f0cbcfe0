"""Timing helpers: call counts, statistics, FLOP counts (no speed assertions: those belong in benchmarks)."""

import math

import pytest
import torch

from gpt_lesson import (
    GPTConfig, Model5, Timing, forward_flops, matmul_ceiling, preset, time_forward, time_interleaved, time_it,
    time_train_step,
)


def test_time_it_calls_warmup_plus_repeats_times():
    calls = []
    t = time_it(lambda: calls.append(1), warmup=2, repeats=4)
    assert len(calls) == 6
    assert isinstance(t, Timing) and len(t.times) == 4
    assert all(x >= 0 for x in t.times)
    assert t.min <= t.median <= t.max


def test_time_it_without_warmup():
    calls = []
    t = time_it(lambda: calls.append(1), warmup=0, repeats=1)
    assert len(calls) == 1 and len(t.times) == 1


def test_time_interleaved_takes_turns():
    calls = []
    fns = {name: (lambda name=name: calls.append(name)) for name in "abc"}
    res = time_interleaved(fns, warmup=1, repeats=2)
    assert calls == list("abc") * 3  # one warm-up round, then two timed rounds, each a, b, c in turn
    assert list(res) == list("abc") and all(len(t.times) == 2 for t in res.values())


def test_time_interleaved_refuses_bad_counts():
    calls = []
    with pytest.raises(ValueError, match="repeats"):
        time_interleaved({"a": lambda: calls.append(1)}, repeats=0)
    assert calls == []


def test_timing_statistics():
    t = Timing((3.0, 1.0, 2.0, 10.0))
    assert (t.min, t.median, t.max) == (1.0, 2.5, 10.0)
    assert "median of 4" in str(t)


@pytest.mark.parametrize("kwargs", [dict(repeats=0), dict(repeats=-1), dict(warmup=-1)])
def test_time_it_refuses_bad_counts(kwargs):
    calls = []
    with pytest.raises(ValueError, match=f"^{next(iter(kwargs))} must be"):  # the count that was passed, alone
        time_it(lambda: calls.append(1), **kwargs)
    assert calls == []  # refused before running anything


def _matmul_weights_by_inspection(cfg: GPTConfig) -> int:
    """Weights of every matrix multiply, counted from the modules of a (meta) model: the blocks'
    Linear layers and the V x C head. Embedding look-ups, biases and LayerNorms are not matmuls."""
    with torch.device("meta"):
        model = Model5(cfg)
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize(
    "cfg,B,T",
    [
        (GPTConfig(vocab_size=100, context_length=16, n_layer=2, n_head=2, n_embd=8), 3, 16),
        (GPTConfig(vocab_size=50257, context_length=64, n_layer=3, n_head=4, n_embd=64), 2, 40),
    ],
)
def test_forward_flops_is_palms_count(cfg, B, T):
    # PaLM (Chowdhery et al. 2022, appendix B): training costs 6N + 12 L H Q T FLOPs per token, the
    # forward pass a third of it: 2N + 4 L H Q T, where N = matmul weights and H * Q = n_embd.
    N = _matmul_weights_by_inspection(cfg)
    per_token = 2 * N + 4 * cfg.n_layer * cfg.n_embd * T
    assert forward_flops(cfg, B, T) == per_token * B * T


def test_forward_flops_of_model5():
    # Model 5: N = 12 layers * 12 * 768^2 + 50257 * 768 = 123,532,032 matmul weights (the parameters
    # minus position embeddings, biases and LayerNorms); attention adds 4 * 12 * 768 * 256 per token.
    per_token = 2 * 123_532_032 + 4 * 12 * 768 * 256
    assert forward_flops(preset("model5"), 16, 256) == per_token * 16 * 256
    assert _matmul_weights_by_inspection(preset("model5")) == 123_532_032


def test_forward_flops_documents_the_training_factor():
    doc = forward_flops.__doc__
    assert "3×" in doc and "Training" in doc


def test_time_forward_and_train_step_run_on_a_tiny_model():
    torch.manual_seed(0)
    model = Model5(GPTConfig(vocab_size=50, context_length=8, n_layer=1, n_head=2, n_embd=16))
    x = torch.randint(0, 50, (2, 8))
    y = torch.randint(0, 50, (2, 8))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    tf = time_forward(model, x, warmup=1, repeats=2)
    assert len(tf.times) == 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # forward changes nothing
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    ts = time_train_step(model, x, y, opt, warmup=1, repeats=2)
    assert len(ts.times) == 2
    changed = [k for k, v in model.state_dict().items() if not torch.equal(before[k], v)]
    assert changed  # three optimizer steps ran


def test_matmul_ceiling_is_a_positive_finite_rate():
    rate = matmul_ceiling("cpu", n=128, repeats=2)
    assert rate > 0 and math.isfinite(rate)
