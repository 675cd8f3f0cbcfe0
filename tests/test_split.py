"""Step 03: train/test splits. Tokens are torch.arange(N), so every value is its own position."""

import pytest
import torch

from gpt_lesson.split import block_split, tail_split

N, BLOCK, T = 64 * 50 + 37, 64, 16  # 50 whole blocks and a 37-token tail


def split(seed=0, tokens=None, **kwargs):
    g = torch.Generator().manual_seed(seed)
    kwargs = {"test_frac": 0.1, "block_len": BLOCK, "seq_len": T, **kwargs}
    return block_split(torch.arange(N) if tokens is None else tokens, generator=g, **kwargs)


def mask(ranges, n=N):
    m = torch.zeros(n, dtype=torch.bool)
    for a, b in ranges:
        m[max(a, 0) : b] = True
    return m


# --- tail_split ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [10, 1000, 1001, 158_153])
@pytest.mark.parametrize("frac", [0.9, 0.5, 0.75])
def test_tail_split(n, frac):
    tokens = torch.arange(n)
    train, test = tail_split(tokens, frac)
    assert len(train) == int(frac * n) and len(test) == n - int(frac * n)
    assert torch.equal(torch.cat([train, test]), tokens)
    assert test[0] == int(frac * n) and test[-1] == n - 1  # the test part is the tail


def test_tail_split_default_is_90_percent():
    train, test = tail_split(torch.arange(1000))
    assert (len(train), len(test)) == (900, 100)


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5, float("nan")])
def test_tail_split_bad_fraction(frac):
    with pytest.raises(ValueError, match=f"train_frac.*{frac}"):
        tail_split(torch.arange(100), frac)


def test_tail_split_empty_part():
    with pytest.raises(ValueError, match="empty"):
        tail_split(torch.arange(5), 0.1)


def test_tail_split_checks_tokens():
    with pytest.raises(ValueError, match="1-D"):
        tail_split(torch.arange(100).reshape(10, 10))


# --- block_split -----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("frac", [0.1, 0.3])
def test_test_part_is_whole_blocks(seed, frac):
    s = split(seed, test_frac=frac)
    starts = [a for a, _ in s.test_ranges]
    assert starts == sorted(set(starts))
    for a, b in s.test_ranges:
        assert a % BLOCK == 0 and b - a == BLOCK and b <= N
    assert len(s.test_ranges) == round(frac * N / BLOCK)
    assert abs(s.n_tokens("test") / N - frac) <= BLOCK / (2 * N)


@pytest.mark.parametrize("seed", range(100))
def test_every_tenth_of_the_text_holds_a_test_block(seed):
    # 200 blocks and test_frac 0.1: 20 test blocks, one in each stratum of 10 blocks (640 tokens); a tenth of the
    # text (1,283.7 tokens) is longer than two strata, so it holds a whole stratum, and so a whole test block.
    n = 200 * BLOCK + 37
    s = split(seed, tokens=torch.arange(n))
    assert len(s.test_ranges) == 20
    for d in range(10):
        lo, hi = d * n / 10, (d + 1) * n / 10
        assert any(lo <= a and b <= hi for a, b in s.test_ranges), f"tenth {d} holds no test block"


@pytest.mark.parametrize("n_blocks, frac", [(50, 0.1), (50, 0.3), (70, 0.1), (23, 0.25), (50, 0.9)])
@pytest.mark.parametrize("seed", range(5))
def test_one_test_block_per_stratum(n_blocks, frac, seed):
    n = n_blocks * BLOCK + 37
    s = split(seed, tokens=torch.arange(n), test_frac=frac)
    n_test = len(s.test_ranges)
    edges = [k * n_blocks // n_test for k in range(n_test + 1)]  # stratum k: blocks edges[k] .. edges[k + 1] - 1
    assert {e1 - e0 for e0, e1 in zip(edges, edges[1:])} <= {n_blocks // n_test, n_blocks // n_test + 1}
    for k, (a, _) in enumerate(s.test_ranges):
        assert edges[k] <= a // BLOCK < edges[k + 1], f"stratum {k} does not hold test block {k}"


def test_the_draw_within_a_stratum_reaches_every_block():
    # 5 strata of 10 blocks: over 200 seeds each of the 50 blocks is a test block some time, none always.
    counts = torch.zeros(50, dtype=torch.long)
    for seed in range(200):
        for a, _ in split(seed).test_ranges:
            counts[a // BLOCK] += 1
    assert (counts > 0).all() and (counts < 200).all()
    assert counts.view(5, 10).sum(dim=1).tolist() == [200] * 5  # one per stratum per seed


@pytest.mark.parametrize("seed", range(5))
def test_train_is_the_complement_minus_gaps(seed):
    s = split(seed)
    assert s.gap == T
    forbidden = mask((a - s.gap, b + s.gap) for a, b in s.test_ranges)
    # train = everything at least `gap` tokens away from every test block, in sorted disjoint ranges
    assert torch.equal(mask(s.train_ranges), ~forbidden)
    flat = [x for r in s.train_ranges for x in r]
    assert flat == sorted(flat) and all(a < b for a, b in s.train_ranges)
    for lo, hi in s.train_ranges:
        for a, b in s.test_ranges:
            assert hi <= a - s.gap or lo >= b + s.gap
    assert torch.equal(s.concat("train"), torch.arange(N)[~forbidden])
    assert torch.equal(s.concat("test"), torch.arange(N)[mask(s.test_ranges)])
    assert s.n_tokens("train") == int((~forbidden).sum())


def test_first_and_last_blocks_and_neighbours():
    # With test_frac 0.9 nearly every block is test, so first/last/adjacent blocks all occur.
    seen = set()
    for seed in range(10):
        s = split(seed, test_frac=0.9)
        forbidden = mask((a - s.gap, b + s.gap) for a, b in s.test_ranges)
        assert torch.equal(mask(s.train_ranges), ~forbidden)
        seen |= {a for a, _ in s.test_ranges}
    assert {0, 49 * BLOCK} <= seen


def test_seeded():
    assert split(1).test_ranges == split(1).test_ranges
    assert split(1).test_ranges != split(2).test_ranges


@pytest.mark.parametrize("part", ["train", "test"])
@pytest.mark.parametrize("seq_len", [T, 5])
def test_starts_give_windows_inside_one_range(part, seq_len):
    s = split(3)
    ranges = s.part(part)
    starts = s.starts(part, seq_len)
    expected = [x for a, b in ranges for x in range(a, b - seq_len)]
    assert starts.tolist() == expected  # every window that fits, once
    test = mask(s.test_ranges)
    for x in starts.tolist():
        lo, hi = x, x + seq_len + 1  # the window [s, s + T + 1)
        assert any(a <= lo and hi <= b for a, b in ranges)
        if part == "train":
            assert not test[lo:hi].any()


def test_part_name_checked():
    with pytest.raises(ValueError, match="'val'"):
        split().part("val")


def test_starts_need_a_long_enough_block():
    with pytest.raises(ValueError, match=f"seq_len={BLOCK}"):
        split().starts("test", BLOCK)


def test_block_len_too_small():
    with pytest.raises(ValueError, match="block_len=32"):
        split(block_len=32, seq_len=16)


@pytest.mark.parametrize("n, frac", [(100, 0.1), (3 * BLOCK, 0.9), (10 * BLOCK, 0.99)])
def test_too_few_blocks(n, frac):
    with pytest.raises(ValueError, match="block_len"):
        split(tokens=torch.arange(n), test_frac=frac)


@pytest.mark.parametrize("frac", [0, 1, -0.1, 1.5])
def test_block_split_bad_fraction(frac):
    with pytest.raises(ValueError, match=f"test_frac.*{frac}"):
        split(test_frac=frac)


def test_block_split_checks_tokens():
    with pytest.raises(TypeError):
        split(tokens=torch.arange(N, dtype=torch.float32))
