"""Counting baselines: unigram and bigram losses, smoothing chosen on held-out training text, no V×V table."""

import math

import pytest
import torch

from gpt_lesson import bigram_loss, choose_alpha, choose_beta, held_out_split, unigram_loss, unigram_probs

V = 50257


def chain(n: int, vocab: int, seed: int, noise: float = 0.0) -> torch.Tensor:
    """A text where the next token is a fixed function of the previous one (with probability 1 - noise)."""
    g = torch.Generator().manual_seed(seed)
    step = torch.randperm(vocab, generator=g)  # next = step[prev]
    out = torch.empty(n, dtype=torch.long)
    out[0] = 0
    jumps = torch.rand(n, generator=g) < noise
    random = torch.randint(0, vocab, (n,), generator=g)
    for i in range(1, n):
        out[i] = random[i] if jumps[i] else step[out[i - 1]]
    return out


def test_unigram_matches_the_formula():
    train = torch.tensor([0, 0, 1, 2, 2, 2])
    test = torch.tensor([2, 3])
    p = unigram_probs(train, 5, 0.5)
    assert p.sum().item() == pytest.approx(1.0)
    expected = -(math.log((3 + 0.5) / (6 + 2.5)) + math.log(0.5 / (6 + 2.5))) / 2
    assert unigram_loss(train, test, 5, 0.5) == pytest.approx(expected)


def test_bigram_is_far_below_unigram_when_the_previous_token_decides():
    tokens = chain(6000, 200, seed=0, noise=0.05)
    train, test = tokens[:5000], tokens[5000:]
    alpha = choose_alpha(train, 200).value
    beta = choose_beta(train, 200, alpha).value
    uni = unigram_loss(train, test, 200, alpha)
    bi = bigram_loss(train, test, 200, alpha=alpha, beta=beta)
    assert math.isfinite(uni) and math.isfinite(bi)
    assert uni > math.log(200) - 0.3  # the tokens are near-uniform: frequencies say little
    assert bi < 0.3 * uni


def test_bigram_formula_on_a_small_case():
    train = torch.tensor([0, 1, 0, 1, 0, 2])  # pairs (0,1) (1,0) (0,1) (1,0) (0,2)
    test = torch.tensor([0, 1, 1])
    uni = unigram_probs(train, 4, 1.0)
    beta = 2.0
    p_first = uni[0]
    p_01 = (2 + beta * uni[1]) / (3 + beta)  # count(0,1) = 2, count(0 as context) = 3
    p_11 = (0 + beta * uni[1]) / (2 + beta)  # (1,1) never seen
    expected = -(p_first.log() + p_01.log() + p_11.log()).item() / 3
    assert bigram_loss(train, test, 4, alpha=1.0, beta=beta) == pytest.approx(expected)


def test_no_pair_is_counted_across_pieces():
    a, b = torch.tensor([5, 6, 7]), torch.tensor([8, 9])
    joined = bigram_loss(torch.cat([a, b]), torch.tensor([7, 8]), 10, alpha=0.1, beta=0.5)
    pieces = bigram_loss([a, b], torch.tensor([7, 8]), 10, alpha=0.1, beta=0.5)
    assert pieces > joined  # (7, 8) exists only across the seam


def test_smaller_alpha_wins_when_most_of_the_vocabulary_is_unseen():
    g = torch.Generator().manual_seed(1)
    tokens = torch.randint(0, 300, (20_000,), generator=g)  # 300 of V = 50,257 ids ever occur
    choice = choose_alpha(tokens, V, (1.0, 0.1, 0.01))
    assert choice.value < 1.0
    assert choice.losses[1.0] > choice.losses[0.1]
    assert choice.loss == min(choice.losses.values())
    train, test = tokens[:18_000], tokens[18_000:]
    assert unigram_loss(train, test, V, 0.1) < unigram_loss(train, test, V, 1.0)


def test_held_out_is_the_end_of_the_training_text():
    pieces = [torch.arange(0, 60), torch.arange(60, 100)]
    fit, check = held_out_split(pieces, 100, 0.25)
    assert torch.equal(torch.cat(fit), torch.arange(0, 75)) and torch.equal(torch.cat(check), torch.arange(75, 100))
    assert [len(p) for p in fit] == [60, 15]


def test_full_vocabulary_needs_no_dense_table():
    resource = pytest.importorskip("resource")
    g = torch.Generator().manual_seed(2)
    train = torch.randint(0, V, (130_000,), generator=g)
    test = torch.randint(0, V, (14_000,), generator=g)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    loss = bigram_loss(train, test, V, alpha=0.1, beta=10.0)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024  # KiB on Linux
    assert math.isfinite(loss)
    assert grown_mb < 200  # a dense V×V table would be 10 GB (float32) or 20 GB (float64)


def test_bad_arguments():
    tokens = torch.tensor([1, 2, 3, 4])
    with pytest.raises(ValueError, match="alpha"):
        unigram_loss(tokens, tokens, 10, 0.0)
    with pytest.raises(ValueError, match="beta"):
        bigram_loss(tokens, tokens, 10, alpha=0.1, beta=-1.0)
    with pytest.raises(ValueError, match="vocabulary"):
        unigram_loss(tokens, torch.tensor([12]), 10, 0.1)
    with pytest.raises(TypeError, match="integer"):
        unigram_loss(tokens.float(), tokens, 10, 0.1)
    with pytest.raises(ValueError, match="held_out"):
        choose_alpha(tokens, 10, held_out=1.5)
    with pytest.raises(ValueError, match="at least one"):
        choose_alpha(tokens, 10, ())
    with pytest.raises(ValueError, match="too few"):
        choose_alpha(tokens, 10)
