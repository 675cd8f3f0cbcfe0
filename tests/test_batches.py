"""Step 04: batches. Tokens are torch.arange(N), so every value is its own position."""

import pytest
import torch

from gpt_lesson.batches import (
    WindowDataset,
    coverage,
    epoch_loader,
    gather_windows,
    loop_batch,
    random_batch,
    random_starts,
)

N, B, T = 500, 8, 16


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --- random_batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32])
def test_random_batch_windows(dtype):
    x, y = random_batch(torch.arange(N, dtype=dtype), B, T, generator=gen())
    assert x.shape == y.shape == (B, T)
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(y[:, :-1], x[:, 1:])
    for row_x, row_y in zip(x, y):
        s = int(row_x[0])
        assert 0 <= s <= N - T - 1
        assert torch.equal(row_x, torch.arange(s, s + T))
        assert torch.equal(row_y, torch.arange(s + 1, s + T + 1))


def test_random_batch_on_real_ids():
    tokens = torch.randint(0, 50_257, (N,), generator=gen(5))
    x, y = random_batch(tokens, B, T, generator=gen(6))
    starts = random_starts(N, B, T, generator=gen(6))
    for b, s in enumerate(starts.tolist()):
        assert torch.equal(x[b], tokens[s : s + T]) and torch.equal(y[b], tokens[s + 1 : s + T + 1])


def test_gather_windows():
    x, y = gather_windows(torch.arange(100) * 10, torch.tensor([0, 7, 83]), 16)
    assert x[:, 0].tolist() == [0, 70, 830] and y[:, -1].tolist() == [160, 230, 990]


def test_gather_windows_equals_the_index_tensor_gather():
    # notebook 04 builds the (B, T+1) index tensor; the package picks rows of an unfold view instead
    tokens = torch.randint(0, 50_257, (N,), generator=gen(9))
    starts = torch.cat([random_starts(N, 64, T, generator=gen(9)), torch.tensor([0, N - T - 1])])
    window = tokens[starts[:, None] + torch.arange(T + 1)]
    x, y = gather_windows(tokens, starts, T)
    assert torch.equal(x, window[:, :-1]) and torch.equal(y, window[:, 1:])
    with pytest.raises(ValueError, match=f"got the start {N - T}"):  # a start with no full window after it
        gather_windows(tokens, torch.tensor([N - T]), T)


def test_random_batch_converts_only_the_batch_to_int64():
    tokens = torch.randint(0, 50_257, (N,), generator=gen(3), dtype=torch.int32)
    x, y = random_batch(tokens, B, T, generator=gen(4))
    x64, y64 = random_batch(tokens.long(), B, T, generator=gen(4))
    assert x.dtype == y.dtype == torch.int64
    assert torch.equal(x, x64) and torch.equal(y, y64)


def test_starts_in_bounds():
    starts = random_starts(N, 10_000, T, generator=gen())
    assert starts.dtype == torch.int64 and starts.shape == (10_000,)
    assert starts.min() >= 0 and starts.max() <= N - T - 1


def test_seeded():
    tokens = torch.arange(N)
    a, b = random_batch(tokens, B, T, generator=gen(1)), random_batch(tokens, B, T, generator=gen(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], random_batch(tokens, B, T, generator=gen(2))[0])


def test_global_rng_when_no_generator():
    with torch.random.fork_rng():  # leave the global RNG as we found it
        torch.manual_seed(3)
        a = random_batch(torch.arange(N), B, T)[0]
        torch.manual_seed(3)
        assert torch.equal(a, random_batch(torch.arange(N), B, T)[0])


@pytest.mark.parametrize("n, seq_len", [(20, 5), (6, 5)])
def test_every_start_reachable(n, seq_len):
    # (6, 5): seq_len = n - 1 leaves exactly one window, start 0
    starts = random_starts(n, 2_000, seq_len, generator=gen())
    assert set(starts.tolist()) == set(range(n - seq_len))


# chi-square critical value at p = 0.001 for 49 degrees of freedom (scipy.stats.chi2.ppf(0.999, 49))
CHI2_CRIT_DF49 = 85.35


def test_crit_value_is_right():
    p = torch.special.gammaincc(torch.tensor(49 / 2, dtype=torch.float64), torch.tensor(CHI2_CRIT_DF49 / 2))
    assert abs(p.item() - 0.001) < 1e-5


def test_starts_uniform():
    n_tokens, seq_len, draws = 60, 10, 50_000  # 50 possible starts, 1,000 expected each
    starts = random_starts(n_tokens, draws, seq_len, generator=gen(0))
    counts = torch.bincount(starts, minlength=n_tokens - seq_len).double()
    assert len(counts) == 50
    expected = draws / 50
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < CHI2_CRIT_DF49, f"chi-square {chi2:.1f} over 49 d.o.f.: starts are not uniform"


def test_allowed_restricts_starts():
    allowed = torch.tensor([3, 50, 51, N - T - 1])
    x, y = random_batch(torch.arange(N), 400, T, generator=gen(), allowed=allowed)
    assert set(x[:, 0].tolist()) == set(allowed.tolist())  # only those, and all of them
    assert torch.equal(y[:, 0], x[:, 0] + 1)


@pytest.mark.parametrize("bad", [torch.tensor([], dtype=torch.long), torch.zeros(2, 2, dtype=torch.long)])
def test_allowed_must_be_a_nonempty_vector(bad):
    with pytest.raises(ValueError, match="allowed"):
        random_starts(N, B, T, allowed=bad)


def test_device_placement():
    tokens = torch.arange(N)
    x, y = random_batch(tokens, B, T, generator=gen())
    assert x.device == y.device == tokens.device
    for device in ["cpu", torch.device("cpu")]:
        x2, y2 = random_batch(tokens, B, T, generator=gen(), device=device)
        assert x2.device.type == y2.device.type == "cpu"
        assert torch.equal(x2, x) and torch.equal(y2, y)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({"seq_len": N}, ValueError, f"seq_len={N}"),
        ({"seq_len": N + 5}, ValueError, f"seq_len={N + 5}"),
        ({"seq_len": 0}, ValueError, "seq_len must be a positive integer, got 0"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive integer, got 0"),
        ({"batch_size": -1}, ValueError, "got -1"),
        ({"batch_size": 2.0}, ValueError, "got 2.0"),
        ({"tokens": torch.arange(N).reshape(2, -1)}, ValueError, r"shape \(2, 250\)"),
        ({"tokens": torch.arange(N, dtype=torch.float32)}, TypeError, "float32"),
        ({"tokens": list(range(N))}, TypeError, "list"),
    ],
)
def test_bad_input(kwargs, error, words):
    args = {"tokens": torch.arange(N), "batch_size": B, "seq_len": T, **kwargs}
    with pytest.raises(error, match=words):
        random_batch(**args)


def test_loop_batch_matches_random_batch():
    tokens = torch.randint(0, 50_257, (N,), generator=gen(9), dtype=torch.int32)
    x, y = random_batch(tokens, B, T, generator=gen(4))
    lx, ly = loop_batch(tokens, B, T, generator=gen(4))
    assert lx.dtype == torch.int64
    assert torch.equal(x, lx) and torch.equal(y, ly)


# --- WindowDataset / epoch_loader ------------------------------------------------------------


@pytest.mark.parametrize("n, seq_len, stride", [(500, 16, None), (500, 16, 5), (17, 16, None), (100, 9, 30)])
def test_window_dataset(n, seq_len, stride):
    ds = WindowDataset(torch.arange(n), seq_len, stride)
    step = stride or seq_len
    expected = list(range(0, n - seq_len, step))  # every start with a full window of seq_len + 1
    assert len(ds) == len(expected)
    assert [ds.start(i) for i in range(len(ds))] == expected
    for i, s in enumerate(expected):
        x, y = ds[i]
        assert torch.equal(x, torch.arange(s, s + seq_len)) and torch.equal(y, x + 1)
    assert torch.equal(ds[-1][0], ds[len(ds) - 1][0])
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_window_dataset_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        WindowDataset(torch.arange(N), T, 0)


def epoch_starts(loader):
    return [s for x, y in loader for s in x[:, 0].tolist()]


def test_one_epoch_covers_every_window_once():
    loader = epoch_loader(torch.arange(N), B, T, generator=gen())
    ds = loader.dataset
    starts = epoch_starts(loader)
    assert sorted(starts) == [ds.start(i) for i in range(len(ds))]
    assert starts != sorted(starts)  # shuffled
    assert starts == epoch_starts(epoch_loader(torch.arange(N), B, T, generator=gen()))
    assert starts != epoch_starts(epoch_loader(torch.arange(N), B, T, generator=gen(1)))


def test_epoch_loader_unshuffled_and_drop_last():
    n_windows = len(WindowDataset(torch.arange(N), T))
    assert n_windows % B != 0  # so drop_last matters
    starts = epoch_starts(epoch_loader(torch.arange(N), B, T, shuffle=False))
    assert starts == sorted(starts) and len(starts) == n_windows
    dropped = epoch_starts(epoch_loader(torch.arange(N), B, T, shuffle=False, drop_last=True))
    assert len(dropped) == n_windows // B * B


def test_epoch_loader_checks_tokens_first():
    with pytest.raises(ValueError, match="1-D"):
        epoch_loader(torch.arange(N).reshape(1, -1), B, T)


# --- coverage --------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(3))
def test_coverage_matches_naive_count(seed):
    n, seq_len = 300, 20
    starts = random_starts(n, 50, seq_len, generator=gen(seed))
    naive = torch.zeros(n, dtype=torch.long)
    for s in starts.tolist():
        naive[s : s + seq_len] += 1
    cov = coverage(starts, seq_len, n)
    assert cov.dtype == torch.int64 and cov.shape == (n,)
    assert torch.equal(cov, naive)


def test_coverage_edges():
    assert coverage(torch.tensor([0, 0, 4]), 5, 10).tolist() == [2, 2, 2, 2, 3, 1, 1, 1, 1, 0]
    assert coverage(torch.tensor([], dtype=torch.long), 5, 10).tolist() == [0] * 10
    assert coverage(torch.tensor([[4], [4]]), 5, 10)[4:9].tolist() == [2] * 5  # any shape


@pytest.mark.parametrize("bad", [-1, 5])
def test_coverage_rejects_out_of_range_starts(bad):
    with pytest.raises(ValueError, match="0 … 4"):
        coverage(torch.tensor([0, bad]), 5, 10)
