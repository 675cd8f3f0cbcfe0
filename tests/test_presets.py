"""The course's own Model 5: scaled logits, a log-softmax output, PyTorch's default init."""

import math
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from gpt_lesson import Model5, preset
from gpt_lesson.presets import COURSE


def test_course_preset_is_model5_with_the_course_switches():
    course, model5 = preset("course"), preset("model5")
    assert course.scale_logits and course.log_softmax_output and not course.gpt2_init
    assert replace(course, **{k: getattr(model5, k) for k in COURSE}) == model5  # nothing else differs
    assert preset("cpu", course=True) == preset("cpu", **COURSE)
    assert preset("cpu", course=True, scale_logits=False).scale_logits is False  # overrides come last
    with pytest.raises(TypeError, match="course"):
        preset("cpu", course="yes")


def test_course_model_scales_its_logits_and_returns_log_probabilities():
    # Model 5's width and vocabulary with one block (the depth barely moves the first loss: 16.8 with 12 blocks,
    # 19.0 with one, measured); the same weights then read without the course's scaling.
    torch.manual_seed(0)
    model = Model5(preset("course", n_layer=1)).eval()
    x = torch.randint(0, 50257, (2, 33), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(x[:, :-1])  # (B, T, V) log-probabilities
        course_loss = F.nll_loss(out.reshape(-1, out.size(-1)), x[:, 1:].reshape(-1)).item()
        assert out.logsumexp(-1).abs().max().item() < 1e-3  # each row is a distribution
        assert model.loss(x[:, :-1], x[:, 1:]).item() == pytest.approx(course_loss, rel=1e-4)  # NLL = CE
        repeats = (out.argmax(-1) == x[:, :-1]).float().mean().item()
        model.config = replace(model.config, scale_logits=False, log_softmax_output=False)
        unscaled_loss = model.loss(x[:, :-1], x[:, 1:]).item()
    ln_v = math.log(50257)
    assert ln_v - 0.5 < course_loss < ln_v + 15  # near the uniform guess's ln(50257) = 10.8, measured ~17-19
    assert unscaled_loss > 10 * ln_v  # PyTorch's default init alone: ~500, measured
    assert repeats > 0.9  # the untrained course model repeats its last token ("ionsionsions...")
