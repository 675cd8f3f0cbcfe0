"""copied(): the share of generated n-grams found verbatim in a reference, and the longest copied span."""

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson.memorization import _hashes, copied


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
