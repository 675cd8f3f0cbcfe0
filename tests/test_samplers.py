"""The start table of a run (`batch_starts`) for each sampler, and `train`'s sampler and allowed starts."""

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson import training as train_mod
from gpt_lesson.batches import SAMPLERS, batch_starts, epoch_windows

N, T, B = 1000, 16, 8


def _epochs(table: torch.Tensor, per_epoch: int) -> list[torch.Tensor]:
    flat = table.reshape(-1)
    return [flat[i : i + per_epoch] for i in range(0, len(flat) - per_epoch + 1, per_epoch)]


def test_random_is_the_lessons_draw_bit_for_bit():
    g = torch.Generator().manual_seed(5)
    expected = gl.random_starts(N, 40 * B, T, generator=g).view(40, B)
    assert torch.equal(batch_starts(N, 40, B, T, seed=5), expected)
    assert torch.equal(batch_starts(N, 40, B, T, seed=5, sampler="random"), expected)


def test_random_is_uniform_with_replacement():
    table = batch_starts(N, 2000, B, T, seed=0)  # 16,000 draws over 984 starts
    counts = torch.bincount(table.reshape(-1), minlength=N - T)
    assert len(counts) == N - T  # the last valid start, N - T - 1, is reachable and nothing beyond it
    expected = table.numel() / (N - T)
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert abs(chi2 - (N - T - 1)) < 5 * (2 * (N - T - 1)) ** 0.5  # chi-square with N - T - 1 degrees of freedom
    first_epoch = table.reshape(-1)[: N - T]
    assert len(first_epoch.unique()) < N - T  # as many draws as starts: with replacement, some repeat


def test_epoch_visits_each_window_exactly_once_per_epoch_in_a_new_order():
    windows = epoch_windows(N, T)
    dataset = gl.WindowDataset(torch.zeros(N, dtype=torch.long), T)
    assert torch.equal(windows, torch.tensor([dataset.start(i) for i in range(len(dataset))]))
    table = batch_starts(N, 40, B, T, seed=1, sampler="epoch")  # 320 draws = 5 epochs of 62 windows (+10)
    epochs = _epochs(table, len(windows))
    assert len(epochs) == 5
    for e in epochs:
        assert torch.equal(e.sort().values, windows)
    assert not torch.equal(epochs[0], epochs[1])  # reshuffled every epoch
    assert ((windows[1:] - windows[:-1]) >= T).all()  # non-overlapping inputs


def test_without_replacement_repeats_no_start_within_an_epoch():
    n_starts = N - T
    table = batch_starts(N, 250, B, T, seed=2, sampler="without_replacement")  # 2,000 draws: 2 epochs + 32
    epochs = _epochs(table, n_starts)
    assert len(epochs) == 2
    for e in epochs:
        assert torch.equal(e.sort().values, torch.arange(n_starts))
    assert not torch.equal(epochs[0], epochs[1])


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_table_and_a_longer_run_begins_like_a_shorter(sampler):
    a = batch_starts(N, 30, B, T, seed=3, sampler=sampler)
    assert torch.equal(a, batch_starts(N, 30, B, T, seed=3, sampler=sampler))
    assert not torch.equal(a, batch_starts(N, 30, B, T, seed=4, sampler=sampler))
    assert torch.equal(batch_starts(N, 200, B, T, seed=3, sampler=sampler)[:30], a)
    assert a.dtype == torch.long and a.shape == (30, B)


def test_allowed_starts_of_a_block_split_for_every_sampler():
    tokens = torch.arange(4000) % 50
    split = gl.block_split(tokens, 0.2, block_len=200, seq_len=T, generator=torch.Generator().manual_seed(0))
    allowed = split.starts("train", T)
    for sampler in SAMPLERS:
        table = batch_starts(len(tokens), 100, B, T, seed=0, sampler=sampler, allowed=allowed)
        assert torch.isin(table, allowed).all(), sampler
    windows = epoch_windows(len(tokens), T, allowed=allowed)
    assert torch.isin(windows, allowed).all()
    for a, b in split.train_ranges:  # each training range is cut into windows T apart from its first start
        inside = windows[(windows >= a) & (windows < b)]
        assert torch.equal(inside, torch.arange(a, b - T, T))
    wr = batch_starts(len(tokens), 2 * len(allowed) // B, B, T, seed=0, sampler="without_replacement", allowed=allowed)
    assert torch.equal(wr.reshape(-1)[: len(allowed)].sort().values, allowed.sort().values)


def test_bad_sampler_and_allowed_starts_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="sampler must be one of"):
        batch_starts(N, 3, B, T, seed=0, sampler="shuffle")
    with pytest.raises(ValueError, match=r"allowed starts must lie in 0 … 983"):
        batch_starts(N, 3, B, T, seed=0, allowed=torch.tensor([0, 984]))
    with pytest.raises(ValueError, match="non-empty 1-D integer"):
        batch_starts(N, 3, B, T, seed=0, allowed=torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="TrainConfig.sampler must be one of 'random', 'epoch'"):
        gl.TrainConfig(sampler="epochs")


# ---- through train --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tokens():
    return gl.encode(gl.clean_text(gl.load_book(offline=True).text))[:20_000]


def _tiny():
    torch.manual_seed(0)
    return gl.Model5(gl.preset("tiny"))


@pytest.mark.parametrize("sampler", ["epoch", "without_replacement"])
def test_a_resumed_run_sees_the_batches_of_an_unbroken_one(tokens, tmp_path, sampler):
    cfg = gl.TrainConfig(steps=6, batch_size=4, seq_len=32, eval_every=3, eval_batches=1, sampler=sampler)
    whole = gl.train(_tiny(), tokens, None, cfg, progress=False)
    ckpt = tmp_path / "run.pt"
    model = _tiny()
    gl.train(model, tokens, None, cfg, progress=False, checkpoint_path=ckpt, stop_after=2)
    resumed = gl.train(model, tokens, None, cfg, progress=False, resume_from=ckpt)
    assert resumed.train_loss == whole.train_loss
    other = gl.train(_tiny(), tokens, None, cfg.with_overrides(sampler="random"), progress=False)
    assert other.train_loss != whole.train_loss  # the sampler reaches the batches
    with pytest.raises(ValueError, match="sampler: checkpoint"):
        gl.train(_tiny(), tokens, None, cfg.with_overrides(sampler="random"), progress=False, resume_from=ckpt)


def test_train_draws_only_the_allowed_starts(tokens, monkeypatch):
    seen = []
    real = train_mod.gather_windows

    def spy(tok, starts, seq_len):
        seen.append(starts.clone())
        return real(tok, starts, seq_len)

    monkeypatch.setattr(train_mod, "gather_windows", spy)
    allowed = torch.arange(5000, 6000)
    for sampler in SAMPLERS:
        seen.clear()
        gl.train(_tiny(), tokens, None, gl.TrainConfig(steps=5, batch_size=4, seq_len=32, sampler=sampler),
                 progress=False, allowed=allowed)
        assert len(seen) == 5 and torch.isin(torch.cat(seen), allowed).all(), sampler
