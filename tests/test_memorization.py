"""copied(): the share of generated n-grams found verbatim in a reference, and the longest copied span."""

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson.memorization import _hashes, copied, extraction


@pytest.fixture(scope="module")
def book():
    tokens = gl.encode(gl.clean_text(gl.load_book(offline=True, verbose=False).text))
    return gl.tail_split(tokens)


def _random_ids(n: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 50257, (n,), generator=torch.Generator().manual_seed(seed))


def test_hashes_are_the_polynomial_of_each_window():
    ids = _random_ids(40, 0)
    for n in (1, 2, 5, 8, 13, 33):
        expected = []
        for i in range(len(ids) - n + 1):
            h = 0
            for v in ids[i : i + n].tolist():
                h = (h * 1_000_003 + v) % 2**64
            expected.append(h - 2**64 if h >= 2**63 else h)
        assert _hashes(ids, n).tolist() == expected, n


def test_copied_text_is_all_found(book):
    train, _ = book
    c = copied(train[5000:5300], train)
    assert c.share == 1.0 and c.ngrams == 293 and c.longest == 300 and (c.start, c.ref_start) == (0, 5000)
    assert c.text == gl.decode(train[5000:5300])


def test_random_ids_are_not_found(book):
    c = copied(_random_ids(300, 1), book[0])
    assert c.share == 0.0 and c.longest <= 2


def test_a_planted_span_is_found_where_it_was_planted(book):
    train, _ = book
    planted = torch.cat([_random_ids(100, 2), train[777:817], _random_ids(100, 3)])
    c = copied(planted, train, n=8)
    assert (c.longest, c.start, c.ref_start) == (40, 100, 777)
    assert c.share == pytest.approx((40 - 8 + 1) / (240 - 8 + 1))
    assert copied(planted, train, n=41).share == 0.0  # no 41-gram was copied


def test_the_test_part_as_a_control_shares_only_common_phrases(book):
    """The test text was never trained on: what of it "occurs" in the training text is chance and set phrases."""
    train, test = book
    c = copied(test[:1000], train)
    assert c.share < 0.1 and 8 <= c.longest < 40


def test_bad_inputs_name_the_fix():
    with pytest.raises(ValueError, match="n must be a positive number of tokens"):
        copied(torch.arange(10), torch.arange(20), n=0)
    with pytest.raises(ValueError, match=r"n=8 is longer than the generated ids \(5\)"):
        copied(torch.arange(5), torch.arange(20))
    with pytest.raises(TypeError, match="generated must hold integer ids"):
        copied(torch.zeros(10), torch.arange(20))


# extraction(): prompted with a window's start, does the model continue it word for word?


@pytest.fixture(scope="module")
def reciter(book):
    """A small model trained to recite 600 tokens of the book (in compact ids: its vocabulary is the ~300 ids they
    use, which keeps the run at a few seconds), and those tokens."""
    _, compact = torch.unique(book[0][10_000:10_600], return_inverse=True)
    torch.manual_seed(0)
    model = gl.Model5(gl.GPTConfig(vocab_size=int(compact.max()) + 1, context_length=32, n_layer=2, n_head=2,
                                   n_embd=64, gpt2_init=True))
    untrained = extraction(model, compact, n=32, prompt_len=16, continuation=16)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    offsets = torch.arange(33)
    for _ in range(150):
        rows = compact[torch.randint(0, len(compact) - 32, (16,), generator=g)[:, None] + offsets]
        loss = model.loss(rows[:, :-1], rows[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, compact, untrained


def test_a_model_that_memorized_its_text_recites_it(reciter):
    model, text, untrained = reciter
    control = torch.randint(0, model.config.vocab_size, (600,), generator=torch.Generator().manual_seed(5))
    e = extraction(model, text, n=32, prompt_len=16, continuation=16)
    c = extraction(model, control, n=32, prompt_len=16, continuation=16)
    assert e.starts == c.starts  # same length, sizes and seed: the same windows for the control
    assert e.mean >= 4 * c.mean and e.mean >= 8 and c.mean < 1 and untrained.mean < 1
    assert e.mean == pytest.approx(sum(e.matches) / 32) and e.full_share == sum(m == 16 for m in e.matches) / 32
    assert e.longest == max(e.matches) and e.longest_start == e.starts[e.matches.index(e.longest)]
    # the longest window, reproduced: the model's tokens equal the text's for `longest` tokens after the prompt
    after = text[e.longest_start + 16 : e.longest_start + 32].tolist()
    assert list(e.longest_generated[: e.longest]) == after[: e.longest]
    assert e.longest == 16 or e.longest_generated[e.longest] != after[e.longest]
    d = e.to_dict()
    assert (d["mean"], d["matches"], d["longest_start"]) == (e.mean, list(e.matches), e.longest_start)
    assert "reproduced on average" in str(e)


def test_extraction_does_not_depend_on_the_batch_size_or_the_global_rng(reciter):
    model, text, _ = reciter
    state = torch.get_rng_state()
    one = extraction(model, text, n=9, prompt_len=8, continuation=24, seed=3, batch_size=1)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(123)
    eight = extraction(model, text, n=9, prompt_len=8, continuation=24, seed=3, batch_size=8)
    assert one == eight
    assert extraction(model, text, n=9, prompt_len=8, continuation=24, seed=4).starts != one.starts


def test_match_lengths_count_up_to_the_first_mismatch():
    from gpt_lesson.memorization import match_lengths

    truth = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 4], [1, 2, 3, 4]])
    generated = torch.tensor([[1, 2, 3, 4], [1, 9, 3, 4], [0, 2, 3, 4]])
    assert match_lengths(generated, truth).tolist() == [4, 1, 0]


def test_extraction_bad_sizes_name_the_fix():
    model = gl.Model5(gl.preset("tiny"))  # context 32
    tokens = torch.arange(100)
    with pytest.raises(ValueError, match=r"32 \+ 64 = 96 tokens do not fit the model's context of 32 tokens"):
        extraction(model, tokens)
    with pytest.raises(ValueError, match=r"window of prompt_len \+ continuation = 24 tokens does not fit in the "
                                         r"token vector of 20 tokens"):
        extraction(model, tokens[:20], prompt_len=8, continuation=16)
    for bad in ({"n": 0}, {"prompt_len": -1}, {"continuation": 2.0}, {"batch_size": True}):
        with pytest.raises(ValueError, match=f"{next(iter(bad))} must be a positive integer"):
            extraction(model, tokens, **{"prompt_len": 8, "continuation": 8, **bad})
    with pytest.raises(TypeError, match="seed must be an integer"):
        extraction(model, tokens, prompt_len=8, continuation=8, seed=None)
    with pytest.raises(TypeError, match="tokens must hold integer ids"):
        extraction(model, tokens.float(), prompt_len=8, continuation=8)
