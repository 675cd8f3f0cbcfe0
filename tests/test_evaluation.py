"""One evaluation: EvalSet (random batches or every window), per-token losses on both loss paths, -100 ignored."""

import pytest
import torch
import torch.nn.functional as F

import gpt_lesson as gl
from gpt_lesson.evaluation import FP32

CFG = gl.GPTConfig(vocab_size=64, context_length=16, n_layer=1, n_head=2, n_embd=16)


def _model(seed: int = 0, **kw) -> gl.Model5:
    torch.manual_seed(seed)
    return gl.Model5(gl.GPTConfig(**{**CFG.to_dict(), **kw})).eval()


def _tokens(n: int = 300, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 64, (n,), generator=torch.Generator().manual_seed(seed))


def test_random_set_draws_the_batches_random_batch_draws():
    tokens = _tokens()
    s = gl.EvalSet.random(tokens, batch_size=4, seq_len=8, n_batches=3, seed=7)
    g = torch.Generator().manual_seed(7)
    for starts in s.starts_per_batch():
        x, _ = gl.random_batch(tokens, 4, 8, generator=g)
        assert torch.equal(x, gl.gather_windows(tokens, starts, 8)[0])
    assert len(s) == 12 and s.n_tokens == 96


def test_windows_set_is_every_non_overlapping_window():
    s = gl.EvalSet.windows(_tokens(100), 8, batch_size=5)
    assert torch.equal(s.starts, torch.arange(0, 92, 8))
    assert [len(b) for b in s.starts_per_batch()] == [5, 5, 2]


@pytest.mark.parametrize("chunk", [0, 7])
def test_window_losses_are_the_mean_token_losses_of_each_window(chunk):
    model, tokens = _model(), _tokens()
    s = gl.EvalSet.windows(tokens, 8, batch_size=4)
    w = gl.window_losses(model, s, loss_policy=gl.LossPolicy(None, chunk))
    x, y = gl.gather_windows(tokens, s.starts, 8)
    with torch.no_grad():
        ref = F.cross_entropy(model(x).flatten(0, 1), y.flatten(), reduction="none").view(len(x), 8).mean(1)
    torch.testing.assert_close(w, ref)
    assert gl.mean_loss(model, s, loss_policy=gl.LossPolicy(None, chunk)) == pytest.approx(ref.mean().item(), rel=1e-6)


def test_micro_batches_give_the_same_mean():
    model, tokens = _model(), _tokens()
    s = gl.EvalSet.random(tokens, batch_size=4, seq_len=8, n_batches=2, seed=0)
    assert gl.mean_loss(model, s, micro_batches=4) == pytest.approx(gl.mean_loss(model, s), rel=1e-6)
    with pytest.raises(ValueError, match="micro_batches=3"):
        gl.mean_loss(model, s, micro_batches=3)


def test_logits_loss_scores_a_logits_model_like_our_own():
    model, tokens = _model(), _tokens()
    s = gl.EvalSet.windows(tokens, 8)
    as_logits = gl.logits_loss(lambda x: model(x))  # what a HuggingFace model would give
    torch.testing.assert_close(gl.window_losses(model, s, loss_fn=as_logits), gl.window_losses(model, s))


def test_the_evaluation_leaves_the_model_in_its_mode():
    model = _model().train()
    gl.mean_loss(model, gl.EvalSet.windows(_tokens(), 8))
    assert model.training


@pytest.mark.parametrize("chunk", [0, 5])
def test_targets_of_minus_100_are_ignored_on_both_loss_paths(chunk):
    """PyTorch's ignore_index: the chunked path used to crash on it; both now leave those targets out."""
    model, tokens = _model(), _tokens()
    x, y = gl.gather_windows(tokens, torch.tensor([0, 30, 60]), 8)
    y = y.clone()
    y[:, :3] = -100
    loss = model.loss(x, y, chunk=chunk)
    logits = model(x)
    ref = F.cross_entropy(logits[:, 3:].flatten(0, 1), y[:, 3:].flatten())
    torch.testing.assert_close(loss, ref)
    with torch.no_grad():
        per_token = model.loss(x, y, chunk=chunk, reduction="none")
    assert per_token.shape == (3, 8) and torch.all(per_token[:, :3] == 0)
    torch.testing.assert_close(per_token[:, 3:].mean(), ref.detach())


def test_gradients_of_the_chunked_loss_ignore_the_same_targets():
    x, y = gl.gather_windows(_tokens(), torch.tensor([0, 30]), 8)
    y = y.clone()
    y[0, :4] = -100
    grads = []
    for chunk in (0, 3):
        model = _model().train()
        model.loss(x, y, chunk=chunk).backward()
        grads.append(model.lm_head.weight.grad.clone())
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)


def test_per_token_chunked_loss_is_for_evaluation_only():
    model = _model().train()
    x, y = gl.gather_windows(_tokens(), torch.tensor([0, 30]), 8)
    with pytest.raises(ValueError, match="torch.no_grad"):
        model.loss(x, y, chunk=4, reduction="none")
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'none'"):
        model.loss(x, y, reduction="sum")


def test_fp32_is_the_default_path():
    assert FP32 == gl.LossPolicy(None, 0) == gl.LossPolicy.for_run(0, None)
    assert gl.LossPolicy.for_run(512, torch.bfloat16).chunk == 0  # never chunked under autocast


def test_targets_outside_the_vocabulary_are_named():
    model = _model()
    x, y = gl.gather_windows(_tokens(), torch.tensor([0, 30]), 8)
    y = y.clone()
    y[1, 2] = 64
    for chunk in (0, 4):
        with pytest.raises(ValueError, match=r"target 64 is outside the model's vocabulary 0 … 63"):
            model.loss(x, y, chunk=chunk)
    with pytest.raises(ValueError, match=r"targets must be a tensor of the inputs' shape \(2, 8\)"):
        model.loss(x, y[:, :4])
