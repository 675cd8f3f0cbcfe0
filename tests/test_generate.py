"""Generation: the KV cache gives the recomputed tokens, sampling options, prompt handling."""

import pytest
import torch

from gpt_lesson import LESSON_PROMPT, GPTConfig, Model5, generate, generate_tokens, preset

SMALL = GPTConfig(vocab_size=97, context_length=16, n_layer=2, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def model64():
    """A float64 model: cached and recomputed logits then agree far below any sampling boundary."""
    torch.manual_seed(0)
    return Model5(SMALL).double().eval()


@pytest.fixture(scope="module")
def tiny():
    """The tiny preset: GPT-2's vocabulary, so text prompts work."""
    torch.manual_seed(0)
    return Model5(preset("tiny")).eval()


def prompt(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 97, (2, n), generator=torch.Generator().manual_seed(seed))


def record_lengths(model):
    """A forward hook that records the length of every input the model sees."""
    lengths = []
    handle = model.register_forward_hook(lambda m, args, out: lengths.append(args[0].shape[1]))
    return lengths, handle


@pytest.mark.parametrize(
    "opts", [dict(temperature=1.0, top_k=10), dict(temperature=0.7), dict(greedy=True)], ids=["top_k", "temp", "greedy"]
)
def test_kv_cache_gives_the_recomputed_tokens_past_the_context(model64, opts):
    idx = prompt(5)
    n_new = 30  # 5 + 30 > context_length 16: the window slides
    lengths, handle = record_lengths(model64)
    try:
        cached = generate_tokens(model64, idx, n_new, generator=torch.Generator().manual_seed(1), use_cache=True,
                                 **opts)
    finally:
        handle.remove()
    full = generate_tokens(model64, idx, n_new, generator=torch.Generator().manual_seed(1), use_cache=False, **opts)
    assert cached.shape == (2, 5 + n_new)
    assert torch.equal(cached[:, :5], idx)
    assert torch.equal(cached, full)
    # The cache was really used: after the prompt, one token per step until the context is full.
    assert lengths[0] == 5
    assert lengths[1 : 16 - 5] == [1] * (16 - 5 - 1)
    assert max(lengths) <= 16


def test_top_k_1_is_greedy(model64):
    idx = prompt(4, seed=2)
    greedy = generate_tokens(model64, idx, 20, greedy=True)
    top1 = generate_tokens(model64, idx, 20, top_k=1, temperature=1.5, generator=torch.Generator().manual_seed(3))
    assert torch.equal(top1, greedy)


def test_greedy_picks_the_argmax_of_the_model(model64):
    idx = prompt(6, seed=4)
    out = generate_tokens(model64, idx, 1, greedy=True)
    with torch.no_grad():
        assert torch.equal(out[:, -1], model64(idx)[:, -1].argmax(-1))


def test_top_k_only_samples_among_the_k_best(model64):
    idx = prompt(6, seed=5)[:1].repeat(64, 1)  # the same prompt 64 times: 64 samples of the next token
    with torch.no_grad():
        best3 = set(model64(idx[:1])[0, -1].topk(3).indices.tolist())
    out = generate_tokens(model64, idx, 1, top_k=3, temperature=5.0, generator=torch.Generator().manual_seed(6))
    drawn = set(out[:, -1].tolist())
    assert drawn <= best3
    assert len(drawn) > 1  # a high temperature spreads the draws over the k candidates


def test_long_prompt_tensor_is_cropped_to_the_context(model64):
    idx = prompt(40, seed=7)  # longer than the context of 16
    out = generate_tokens(model64, idx, 3, greedy=True)
    assert out.shape == (2, 43)
    assert torch.equal(out[:, :40], idx)
    with torch.no_grad():  # the first new token is what the last 16 tokens predict
        assert torch.equal(out[:, 40], model64(idx[:, -16:])[:, -1].argmax(-1))


def test_one_dimensional_prompt_and_mode_restored(model64):
    model64.train()
    try:
        out = generate_tokens(model64, torch.tensor([1, 2, 3]), 2, greedy=True)
        assert out.shape == (1, 5)
        assert model64.training
    finally:
        model64.eval()


def test_bad_sampling_arguments(model64):
    idx = prompt(3)
    with pytest.raises(ValueError, match="empty"):
        generate_tokens(model64, torch.zeros(1, 0, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="temperature"):
        generate_tokens(model64, idx, 3, temperature=0.0)
    with pytest.raises(ValueError, match="temperature"):
        generate_tokens(model64, idx, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        generate_tokens(model64, idx, 3, top_k=0)
    assert generate_tokens(model64, idx, 3, temperature=0.0, greedy=True).shape == (2, 6)  # greedy needs no temperature


def test_generate_text_is_reproducible_with_a_seeded_generator(tiny):
    a = generate(tiny, LESSON_PROMPT, 12, generator=torch.Generator().manual_seed(5))
    b = generate(tiny, LESSON_PROMPT, 12, generator=torch.Generator().manual_seed(5))
    c = generate(tiny, LESSON_PROMPT, 12, generator=torch.Generator().manual_seed(6))
    assert a == b
    assert a != c
    assert a.startswith(LESSON_PROMPT) and len(a) > len(LESSON_PROMPT)


def test_generate_shows_no_carriage_returns(tiny):
    text = "Gulliver\r\nwent to sea.\r\n"
    out = generate(tiny, text, 20, generator=torch.Generator().manual_seed(0))
    assert "\r" not in out
    assert out.startswith("Gulliver\nwent to sea.\n")


def test_generate_crops_a_long_prompt_with_a_warning(tiny):
    long_prompt = " ".join(["the man-mountain"] * 30)  # far more than 32 tokens
    with pytest.warns(UserWarning, match="only its last 32"):
        out = generate(tiny, long_prompt, 4, greedy=True)
    assert out.startswith(long_prompt)


def test_generate_refuses_an_empty_prompt(tiny):
    with pytest.raises(ValueError, match="empty"):
        generate(tiny, "", 5)
