"""Computed verdicts: beyond or within the noise by the 2× rule, stand-ins never a finding, one sentence each."""

import math

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson import Verdict, not_measured, ratio_verdict, verdict


def test_beyond_in_both_directions():
    up = verdict("tail - block", [6.30, 6.40, 6.35], [6.05, 6.10, 6.10], unit="nats")
    assert up.beyond and up.holds and up.kind == "beyond" and up.sign == 1
    assert up.difference == pytest.approx(0.2667, abs=1e-4) and up.n == 3
    assert str(up).startswith("tail - block: +0.267 ± ")
    assert str(up).endswith("(3 seeds): beyond the noise: tail is higher than block")
    down = verdict("tail - block", [6.05, 6.10, 6.10], [6.30, 6.40, 6.35], unit="nats",
                   above="the tail is harder", below="the tail is easier")
    assert down.beyond and down.sign == -1 and down.difference < 0
    assert str(down).endswith("beyond the noise: the tail is easier")


def test_within_the_noise_states_no_direction():
    v = verdict("tail - block", [6.10, 6.30, 6.00], [6.05, 6.10, 6.05], unit="nats",
                above="the tail is harder", below="the tail is easier")
    assert v.kind == "within" and not v.beyond and v.sign == 0
    text = str(v)
    assert text.endswith("within the noise: no finding")
    for word in ("harder", "easier", "higher", "lower"):
        assert word not in text


def test_paired_noise_is_the_spread_of_per_seed_differences():
    # Each seed moves both runs alike; pairing takes that out, two independent groups cannot.
    a = [5.0, 6.0, 7.0, 8.0]
    b = [4.9, 5.92, 6.89, 7.91]
    paired = verdict("a - b", a, b)
    unpaired = verdict("a - b", a, b, paired=False)
    assert paired.difference == pytest.approx(unpaired.difference)
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    assert paired.noise == pytest.approx((ta - tb).std().item())  # ddof=1
    assert unpaired.noise == pytest.approx(math.sqrt(ta.var().item() + tb.var().item()))
    assert paired.beyond and not unpaired.beyond
    assert "unpaired" in str(unpaired) and "4 + 4 seeds" in str(unpaired)


def test_the_boundary_is_twice_the_noise():
    assert verdict("x", difference=0.2, noise=0.1).kind == "within"  # exactly twice: still within
    assert verdict("x", difference=-0.2, noise=0.1).kind == "within"
    assert verdict("x", difference=0.2001, noise=0.1).kind == "beyond"
    assert verdict("x", difference=-0.2001, noise=0.1).kind == "beyond"
    assert verdict("x", difference=0.0, noise=0.0).kind == "within"


@pytest.mark.parametrize("stand_in", [float("nan"), float("-inf"), float("inf"), None])
def test_stand_ins_are_refused_not_found(stand_in):
    with pytest.raises(ValueError, match="not_measured"):
        verdict("GPU - CPU", [1.0, stand_in], [1.0, 2.0])
    with pytest.raises(ValueError):
        verdict("GPU - CPU", difference=stand_in, noise=0.1)
    with pytest.raises(ValueError):
        ratio_verdict("CPU / GPU time", [1.0, 2.0], [stand_in, 1.0])


def test_empty_missing_and_too_few_values_are_refused():
    with pytest.raises(ValueError, match="empty"):
        verdict("a - b", [], [])
    with pytest.raises(ValueError, match="not_measured"):
        ratio_verdict("CPU / GPU time", [1.0, 2.0], None)
    with pytest.raises(ValueError, match="at least 2"):
        verdict("a - b", [1.0], [2.0])
    with pytest.raises(ValueError, match="at least 2"):
        verdict("a - b", [1.0, 2.0], [2.0], paired=False)
    with pytest.raises(ValueError, match="same seeds"):
        verdict("a - b", [1.0, 2.0, 3.0], [2.0, 3.0])
    with pytest.raises(ValueError, match=">= 0"):
        verdict("a - b", difference=1.0, noise=-0.1)
    with pytest.raises(ValueError, match="not both"):
        verdict("a - b", [1.0, 2.0], [1.0, 2.0], difference=1.0, noise=0.1)


def test_not_measured_is_never_beyond():
    for v in (not_measured("GPU time", "no GPU"),
              verdict("GPU - CPU", [float("nan")] * 3, [1.0, 2.0, 3.0], not_measured="no GPU"),
              ratio_verdict("CPU / GPU time", None, None, not_measured="no GPU")):
        assert v.kind == "not measured" and not v.beyond and not v.measured and v.sign == 0
        assert str(v).endswith(": not measured here (no GPU)")
    with pytest.raises(ValueError, match="reason"):
        not_measured("GPU time", "")


def test_ratio_of_times():
    cpu = [45.1, 45.9, 44.8, 46.0, 45.3]
    gpu = [1.00, 1.02, 0.99, 1.01, 1.00]
    v = ratio_verdict("CPU / GPU time", cpu, gpu, above="the GPU is faster", below="the CPU is faster")
    assert v.beyond and v.ratio and v.value == pytest.approx(45.2, rel=0.01)
    assert str(v).startswith("CPU / GPU time: 45.2x ×/÷ 1.0")
    assert str(v).endswith("(5 repeats): beyond the noise: the GPU is faster")
    # A 1% difference in timings that wander by 10% is no finding.
    same = ratio_verdict("cache / no-cache time", [1.00, 1.20, 0.90, 1.10], [1.10, 0.95, 1.05, 1.00])
    assert same.kind == "within" and str(same).endswith("no finding")
    with pytest.raises(ValueError, match="positive"):
        ratio_verdict("a / b", [1.0, 0.0], [1.0, 1.0])


def test_show_prints_and_returns(capsys):
    v = verdict("a - b", difference=1.0, noise=0.1, n=5, unit="s").show()
    assert isinstance(v, Verdict)
    assert capsys.readouterr().out == str(v) + "\n"
    assert str(v) == "a - b: +1.000 ± 0.100 s (5 seeds): beyond the noise: a is higher than b"


def test_accepts_tensors():
    v = verdict("a - b", torch.tensor([1.0, 2.0, 3.0]), torch.tensor([0.0, 1.1, 1.9]))
    assert v.n == 3 and v.beyond


# ---- check: a checked line only over something measured ----------------------------------------------------------


def test_check_over_nothing_says_not_measured_never_true(capsys):
    assert gl.check("the GPU, where there is one, was faster than the CPU", [], reason="no GPU") is None
    assert capsys.readouterr().out == ("the GPU, where there is one, was faster than the CPU: "
                                       "not measured here (no GPU)\n")
    assert gl.check("GPT-2's test loss is below ours", None, reason="offline") is None
    assert "not measured here (offline)" in capsys.readouterr().out


def test_check_prints_the_bool_of_what_was_measured(capsys):
    assert gl.check("every run's loss fell", [True, True]) is True
    assert gl.check("every run's loss fell", [True, False]) is False
    assert gl.check("the loss fell", True) is True
    assert capsys.readouterr().out.splitlines() == ["every run's loss fell: True", "every run's loss fell: False",
                                                    "the loss fell: True"]


def test_check_never_states_a_direction_inside_the_noise(capsys):
    within = gl.verdict("tail - block", [6.40, 6.45, 6.38], [6.36, 6.41, 6.40])
    assert not within.beyond
    assert gl.check("the tail split's test loss is higher than the block split's", within) is None
    assert capsys.readouterr().out == "the tail split's test loss is higher than the block split's: no finding " \
                                      "(within the noise)\n"
    beyond = gl.verdict("tail - block", [6.80, 6.85, 6.78], [6.36, 6.41, 6.40])
    assert gl.check("the tail split's test loss is higher", beyond) is True
    assert gl.check("the tail split's test loss is lower", beyond, direction=-1) is False
    assert gl.check("GPT-2 is better", gl.not_measured("GPT-2 - ours", "offline")) is None
    assert capsys.readouterr().out.splitlines()[-1] == "GPT-2 is better: not measured here (offline)"


def test_check_refuses_what_it_cannot_read():
    with pytest.raises(TypeError, match="a bool, a list of bools, a Verdict or None"):
        gl.check("x", [1.0, 2.0])
    with pytest.raises(ValueError, match="direction must be"):
        gl.check("x", True, direction=0)
