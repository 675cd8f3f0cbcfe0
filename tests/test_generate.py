"""Generation: the KV cache gives the recomputed tokens past the context, the window policy, sampling options,
prompt handling, timing."""

import pytest
import torch

from gpt_lesson import LESSON_PROMPT, GPTConfig, Model5, generate, generate_tokens, preset, time_generation, window_keep

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


def record_inputs(model):
    """A forward hook that records every input the model sees."""
    inputs = []
    handle = model.register_forward_hook(lambda m, args, out: inputs.append(args[0].clone()))
    return inputs, handle


def run(model, idx, n_new, opts, use_cache, **kw):
    """generate_tokens with a fresh seeded generator, and the inputs the model saw."""
    inputs, handle = record_inputs(model)
    try:
        out = generate_tokens(model, idx, n_new, generator=torch.Generator().manual_seed(1), use_cache=use_cache,
                              **opts, **kw)
    finally:
        handle.remove()
    return out, inputs


OPTS = [dict(temperature=1.0, top_k=10), dict(temperature=0.7), dict(greedy=True)]


@pytest.mark.parametrize("opts", OPTS, ids=["top_k", "temp", "greedy"])
def test_kv_cache_gives_the_recomputed_tokens_far_past_the_context(model64, opts):
    idx = prompt(5)
    n_new = 60  # 5 + 60 tokens with a context of 16: the window restarts six times
    cached, _ = run(model64, idx, n_new, opts, use_cache=True)
    full, _ = run(model64, idx, n_new, opts, use_cache=False)
    assert cached.shape == (2, 5 + n_new)
    assert torch.equal(cached[:, :5], idx)
    assert torch.equal(cached, full)


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no_cache"])
def test_a_full_window_restarts_from_its_last_half(model64, use_cache):
    idx = prompt(5)
    out, inputs = run(model64, idx, 30, dict(greedy=True), use_cache=use_cache)
    lengths = [x.shape[1] for x in inputs]
    # Context 16, keep 8: the prompt (5), then the window grows to 16; the 17th token restarts it from the last 8
    # (tokens 9..16), which grow to 16 again, and so on: a refill every 16 - 8 + 1 = 9 new tokens.
    if use_cache:
        assert lengths == [5] + [1] * 11 + [8] + [1] * 8 + [8] + [1] * 8
    else:
        assert lengths == list(range(5, 17)) + list(range(8, 17)) * 2
    refill = inputs[12]  # the step after the window held 16 tokens
    assert torch.equal(refill, out[:, 17 - 8 : 17])


def test_keep_the_whole_context_slides_by_one(model64):
    idx = prompt(5, seed=8)
    expected = idx
    with torch.no_grad():
        for _ in range(25):
            nxt = model64(expected[:, -16:])[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], dim=1)
    for use_cache in (True, False):
        assert torch.equal(generate_tokens(model64, idx, 25, greedy=True, use_cache=use_cache, keep=16), expected)
    # The default policy sees less context past the window, so it is another generation.
    assert window_keep(16) == 8
    with pytest.raises(ValueError, match="keep"):
        generate_tokens(model64, idx, 3, keep=0)
    with pytest.raises(ValueError, match="keep"):
        generate_tokens(model64, idx, 3, keep=17)


def test_time_generation_times_both_paths(model64):
    times = time_generation(model64, prompt(4)[0], [3, 20], repeats=2, warmup=0)
    assert [t.new_tokens for t in times] == [3, 20]
    for t in times:
        assert len(t.cache.times) == len(t.no_cache.times) == 2
        assert t.speedup == pytest.approx(t.no_cache.median / t.cache.median)
        assert t.verdict().measured and "no-cache / cache time" in str(t.verdict())
    with pytest.raises(ValueError, match="lengths"):
        time_generation(model64, prompt(4)[0], [])
    with pytest.raises(ValueError, match="lengths"):
        time_generation(model64, prompt(4)[0], [0])


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
