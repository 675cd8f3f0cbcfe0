"""train(): the history it keeps, learning, exact stop-and-resume, checkpoints, divergence."""

import math

import pytest
import torch

from gpt_lesson import (
    GPTConfig,
    History,
    Model5,
    NonFiniteWeights,
    TrainConfig,
    TrainingDiverged,
    checkpoint_config,
    evaluate,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
    train,
)

CFG = GPTConfig(vocab_size=64, context_length=16, n_layer=1, n_head=2, n_embd=16)
import gpt_lesson.checkpoints as ckpt_mod  # noqa: E402
import gpt_lesson.step as step_mod  # noqa: E402
import gpt_lesson.training as train_mod  # noqa: E402

RUN = dict(batch_size=2, seq_len=8, progress=False, amp=False)  # common train() arguments


def build(cfg: GPTConfig = CFG, seed: int = 0) -> Model5:
    torch.manual_seed(seed)
    return Model5(cfg)


def random_tokens(n: int, seed: int, vocab: int = 64) -> torch.Tensor:
    return torch.randint(0, vocab, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def data():
    return random_tokens(400, 1), random_tokens(200, 2)


def weights(model: Model5) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# ---- history -----------------------------------------------------------------------------------


def test_history_records_every_step_and_the_evaluations(data):
    train_tokens, test_tokens = data
    h = train(build(), train_tokens, test_tokens, steps=5, eval_every=2, eval_batches=2, **RUN)
    assert isinstance(h, History)
    assert len(h.train_loss) == 5
    assert all(math.isfinite(v) for v in h.train_loss)
    assert h.eval_steps == [0, 2, 4, 5]  # step 0, every eval_every, and the end
    assert len(h.test_loss) == 4 and all(math.isfinite(v) for v in h.test_loss)
    assert h.tokens_seen == 5 * 2 * 8
    assert h.to_dict()["tokens_per_s"] == h.tokens_per_s
    assert History.from_dict(h.to_dict()) == h


def test_end_is_not_evaluated_twice(data):
    h = train(build(), *data, steps=4, eval_every=2, eval_batches=1, **RUN)
    assert h.eval_steps == [0, 2, 4]


def test_no_test_tokens_means_no_evaluation(data):
    h = train(build(), data[0], None, steps=3, eval_every=1, **RUN)
    assert h.eval_steps == [] and h.test_loss == [] and len(h.train_loss) == 3


def test_test_loss_is_the_mean_over_eval_batches(data, monkeypatch):
    """In eval mode every token's loss of the n-th batch is n: an evaluation of k batches must report (k + 1) / 2."""
    model = build()
    real_loss = model.loss
    calls = {"n": 0}

    def loss(x, y, *, reduction="mean"):
        if model.training:
            return real_loss(x, y, reduction=reduction)
        calls["n"] += 1
        return torch.full(y.shape, float(calls["n"]))

    monkeypatch.setattr(model, "loss", loss)
    calls["n"] = 0
    assert evaluate(model, data[1], batch_size=2, seq_len=8, n_batches=4) == pytest.approx(2.5)
    assert model.training  # evaluate put the model back in train mode

    def reset_then_evaluate(*args, **kwargs):
        calls["n"] = 0
        return real_mean_loss(*args, **kwargs)

    real_mean_loss = train_mod._mean_loss
    monkeypatch.setattr(train_mod, "_mean_loss", reset_then_evaluate)
    h = train(model, *data, steps=2, eval_every=1, eval_batches=5, **RUN)
    assert h.test_loss == [pytest.approx(3.0)] * 3


def test_the_same_test_batches_at_every_evaluation(data):
    """With lr = 0 the weights never change, so every evaluation must give exactly the same number."""
    h = train(build(), *data, steps=4, eval_every=1, eval_batches=3, lr=0.0, weight_decay=0.0, **RUN)
    assert len(h.test_loss) == 5
    assert len(set(h.test_loss)) == 1
    assert len(set(h.train_loss)) > 1  # while the training batches are new random ones


def test_evaluate_is_the_mean_of_the_batch_losses(data):
    model = build().eval()
    test = data[1]
    g = torch.Generator().manual_seed(7)
    from gpt_lesson import random_batch

    with torch.no_grad():
        expected = sum(model.loss(*random_batch(test, 2, 8, generator=g)).item() for _ in range(3)) / 3
    assert evaluate(model, test, batch_size=2, seq_len=8, n_batches=3, seed=7) == pytest.approx(expected, rel=1e-6)
    assert not model.training  # the mode is restored (it was eval)


def test_loss_falls_on_a_repetitive_sequence():
    tokens = torch.arange(16).repeat(40)  # 0 1 2 ... 15 0 1 2 ...: the next token is always predictable
    h = train(build(seed=3), tokens, steps=60, lr=1e-2, batch_size=4, seq_len=8, progress=False, amp=False)
    first, last = h.train_loss[0], sum(h.train_loss[-10:]) / 10
    assert first > 3.0  # about ln(64) or more at the start
    assert last < 0.5


def test_train_leaves_the_global_rng_alone(data):
    model = build()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    train(model, data[0], steps=2, **RUN)
    assert torch.equal(torch.get_rng_state(), state)


def test_bad_arguments_are_refused(data):
    model = build()
    with pytest.raises(ValueError, match="context_length"):
        train(model, data[0], steps=1, batch_size=2, seq_len=17, progress=False)
    with pytest.raises(ValueError, match="steps"):
        train(model, data[0], steps=0, **RUN)
    with pytest.raises(ValueError, match="eval_every"):
        train(model, data[0], steps=1, eval_every=0, **RUN)
    with pytest.raises(ValueError, match="1-D"):
        train(model, data[0][None], steps=1, **RUN)


# ---- stop and resume ---------------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [0.0, 0.2], ids=["no-dropout", "dropout"])
def test_stop_and_resume_equals_an_unbroken_run(data, tmp_path, dropout):
    cfg = GPTConfig(**{**CFG.to_dict(), "dropout": dropout})
    kw = dict(steps=6, eval_every=2, eval_batches=2, seed=11, **RUN)

    model_a = build(cfg, seed=0)
    hist_a = train(model_a, *data, checkpoint_path=tmp_path / "a.pt", **kw)

    model_b = build(cfg, seed=0)
    part = train(model_b, *data, checkpoint_path=tmp_path / "b.pt", stop_after=3, **kw)
    assert len(part.train_loss) == 3
    assert read_checkpoint(tmp_path / "b.pt")["step"] == 3

    fresh = build(cfg, seed=99)  # another initialisation: everything must come from the checkpoint
    hist_b = train(fresh, *data, checkpoint_path=tmp_path / "b.pt", resume_from=tmp_path / "b.pt", **kw)

    assert hist_b.train_loss == hist_a.train_loss  # exactly, step by step
    assert hist_b.train_loss[:3] == part.train_loss
    assert hist_b.eval_steps == hist_a.eval_steps == [0, 2, 4, 6]
    assert hist_b.test_loss == hist_a.test_loss
    assert hist_b.tokens_seen == hist_a.tokens_seen
    assert_same_weights(weights(fresh), weights(model_a))
    assert read_checkpoint(tmp_path / "b.pt")["step"] == 6


def test_resume_from_a_periodic_checkpoint(data, tmp_path, monkeypatch):
    kw = dict(steps=6, eval_every=3, eval_batches=1, seed=5, **RUN)
    model_a = build()
    hist_a = train(model_a, *data, **kw)

    saved = []
    real_save = train_mod.save_checkpoint  # training's own reference

    def save_and_keep(path, *args, **kwargs):
        out = real_save(path, *args, **kwargs)
        saved.append(args[2])  # the step
        if args[2] == 4:
            (tmp_path / "at4.pt").write_bytes(path.read_bytes())
        return out

    monkeypatch.setattr(train_mod, "save_checkpoint", save_and_keep)
    train(build(), *data, checkpoint_path=tmp_path / "ck.pt", checkpoint_every=2, **kw)
    assert saved == [2, 4, 6]
    monkeypatch.undo()

    fresh = build(seed=42)
    hist = train(fresh, *data, resume_from=tmp_path / "at4.pt", **kw)
    assert hist.train_loss == hist_a.train_loss
    assert hist.test_loss == hist_a.test_loss
    assert_same_weights(weights(fresh), weights(model_a))


def test_resume_past_the_requested_steps_is_a_clear_error(data, tmp_path):
    train(build(), *data, steps=4, checkpoint_path=tmp_path / "c.pt", **RUN)
    with pytest.raises(ValueError, match="step 4"):
        train(build(), *data, steps=2, resume_from=tmp_path / "c.pt", **RUN)


# ---- checkpoints -------------------------------------------------------------------------------


def test_checkpoint_round_trip_and_weights_only_loading(data, tmp_path):
    model = build()
    opt = torch.optim.AdamW(model.parameters())
    model.loss(*[t[None, :8] for t in (data[0][:8], data[0][1:9])]).backward()
    opt.step()
    path = save_checkpoint(tmp_path / "sub" / "m.pt", model, opt, 7, History(train_loss=[1.0, 2.0]))
    assert path.is_file()
    raw = torch.load(path, weights_only=True)  # nothing in it needs unpickling arbitrary objects
    assert raw["step"] == 7
    ckpt = read_checkpoint(path)
    assert ckpt["history"]["train_loss"] == [1.0, 2.0]
    assert checkpoint_config(path) == CFG

    other = build(seed=9)
    other_opt = torch.optim.AdamW(other.parameters())
    load_checkpoint(path, other, other_opt)
    assert_same_weights(weights(other), weights(model))
    assert other.lm_head.weight is other.transformer.wte.weight  # still tied after loading
    assert other_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    path = save_checkpoint(tmp_path / "m.pt", build(), None, 0)
    bigger = build(GPTConfig(**{**CFG.to_dict(), "n_embd": 32}))
    with pytest.raises(ValueError, match="checkpoint_config") as err:
        load_checkpoint(path, bigger)
    assert "n_embd" in str(err.value)
    # A switch that changes no shape still loads (e.g. dropout).
    load_checkpoint(path, build(GPTConfig(**{**CFG.to_dict(), "dropout": 0.1})))


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello, I am not a checkpoint\n")
    with pytest.raises(ValueError, match="not a gpt_lesson checkpoint"):
        read_checkpoint(path)
    with pytest.raises(ValueError, match="not a gpt_lesson checkpoint"):
        load_checkpoint(path, build())


def test_plain_torch_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "state.pt"
    torch.save({"model": build().state_dict(), "step": 3}, path)
    with pytest.raises(ValueError, match="not a gpt_lesson checkpoint"):
        read_checkpoint(path)
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="not a gpt_lesson checkpoint"):
        checkpoint_config(path)


def test_missing_checkpoint_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError):
        train(build(), random_tokens(100, 3), steps=1, resume_from=tmp_path / "nope.pt", **RUN)


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = build()
    path = save_checkpoint(tmp_path / "ck.pt", model, None, 1)
    good = path.read_bytes()

    def broken_save(obj, f, *args, **kwargs):
        partial = good[: len(good) // 3]  # a partial file, then the disk is full
        if hasattr(f, "write"):
            f.write(partial)
        else:
            with open(f, "wb") as fh:
                fh.write(partial)
        raise OSError("No space left on device")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with torch.no_grad():
        model.transformer.wte.weight.add_(1.0)  # something new to save
    with pytest.raises(OSError, match="No space"):
        save_checkpoint(path, model, None, 2)
    with pytest.raises(OSError, match="No space"):
        train(model, random_tokens(100, 4), steps=1, checkpoint_path=path, **RUN)
    monkeypatch.undo()

    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.pt"]  # no *.part left behind
    assert read_checkpoint(path)["step"] == 1


# ---- divergence and clipping -------------------------------------------------------------------


def test_nan_loss_stops_training_with_advice(data, monkeypatch):
    model = build()
    real_loss = model.loss
    calls = {"n": 0}

    def loss(x, y):
        calls["n"] += 1
        out = real_loss(x, y)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(model, "loss", loss)
    with pytest.raises(TrainingDiverged) as err:
        train(model, data[0], steps=10, **RUN)
    msg = str(err.value)
    assert "step 2" in msg
    assert "lower learning rate" in msg and "grad_clip" in msg
    assert calls["n"] == 3  # it stopped at once, on CPU


def test_huge_learning_rate_diverges():
    model = build(seed=1)
    with pytest.raises(TrainingDiverged, match="lr=1e"):
        train(model, random_tokens(300, 5), steps=30, lr=1e30, weight_decay=0.0, **RUN)


def test_grad_clip_runs_and_stays_finite(data, monkeypatch):
    norms = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    h = train(build(), *data, steps=3, grad_clip=0.5, **RUN)
    assert norms == [0.5] * 3
    assert all(math.isfinite(v) for v in h.train_loss + h.test_loss)


def test_fused_adamw_matches_the_multi_tensor_one():
    """The fused kernel is a fast path: same losses as the plain AdamW up to float rounding."""
    tokens = torch.arange(400) % 64
    runs = {}
    for fused in (True, False):
        torch.manual_seed(0)
        model = Model5(CFG)
        runs[fused] = train(model, tokens, steps=8, seed=3, fused=fused, eval_every=100, **RUN).train_loss
    assert runs[True] != [] and len(runs[True]) == 8
    torch.testing.assert_close(torch.tensor(runs[True]), torch.tensor(runs[False]), rtol=1e-4, atol=1e-5)


def test_make_adamw_falls_back_where_fused_is_missing(monkeypatch):
    real = torch.optim.AdamW

    def no_fused(params, **kw):
        if kw.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be floating point Tensors of supported "
                               "devices: ['cuda']")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    opt = step_mod.make_adamw(Model5(CFG), lr=1e-3, weight_decay=0.01)
    assert isinstance(opt, real) and not opt.defaults.get("fused")
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["weight_decay"] == 0.01


@pytest.mark.slow
@pytest.mark.parametrize("loss_chunk", [0, 5])  # full logits (the GPU's path), chunked head + loss (the CPU's)
def test_compiled_training_matches_eager(data, loss_chunk):
    """torch.compile is a fast path: the same losses as eager up to float rounding (compiles on the CPU: ~30 s)."""
    losses = {}
    for compile in (False, True):
        torch.manual_seed(0)
        model = Model5(CFG)
        h = train(model, data[0], data[1], steps=4, seed=5, eval_every=2, compile=compile, loss_chunk=loss_chunk, **RUN)
        losses[compile] = h.train_loss + h.test_loss
    assert len(losses[True]) == 4 + 3  # every step, and evaluations at 0, 2, 4
    torch.testing.assert_close(torch.tensor(losses[True]), torch.tensor(losses[False]), rtol=1e-4, atol=1e-5)


# ---- TrainConfig -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [("batch_size", 0), ("steps", 0), ("eval_batches", 0), ("eval_every", -1), ("seq_len", 0), ("grad_clip", -1.0),
     ("grad_clip", 0.0), ("lr", -1e-3), ("lr", float("nan")), ("weight_decay", -0.1), ("loss_chunk", -1),
     ("checkpoint_every", 0), ("batch_size", 2.0), ("batch_size", True), ("amp", 1), ("seed", -1)],
)
def test_train_config_refuses_bad_values_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**{field: value})


def test_train_config_round_trips_and_lists_the_fields_on_a_typo():
    tc = TrainConfig(steps=7, grad_clip=1.0, seq_len=64)
    assert TrainConfig.from_dict(tc.to_dict()) == tc
    with pytest.raises(TypeError, match="batch_size"):
        tc.with_overrides(batchsize=4)
    with pytest.raises(TypeError, match="unknown training setting"):
        train(build(), torch.arange(100) % 64, stepz=3, **RUN)


def test_train_takes_a_config_and_records_it_in_the_checkpoint(data, tmp_path):
    tc = TrainConfig(steps=3, batch_size=2, seq_len=8, eval_every=2, eval_batches=1, seed=4, amp=False)
    a = train(build(), *data, tc, progress=False, checkpoint_path=tmp_path / "c.pt")
    b = train(build(), *data, steps=3, eval_every=2, eval_batches=1, seed=4, **RUN)
    assert a.train_loss == b.train_loss and a.test_loss == b.test_loss  # keywords are the same as a config
    assert TrainConfig.from_dict(read_checkpoint(tmp_path / "c.pt")["train_config"]) == tc


def test_batch_starts_are_the_samplers_draws_in_order():
    """The table the training loop reads (its plan's) is what random_starts draws, call after call, from the seed."""
    from gpt_lesson import RunPlan, batch_starts, random_starts

    plan = RunPlan.build(GPTConfig(vocab_size=64, context_length=8, n_layer=1, n_head=2, n_embd=8),
                         TrainConfig(steps=6, batch_size=4, seq_len=8, seed=9), torch.arange(500) % 64)
    table = plan.starts
    g = torch.Generator().manual_seed(9)
    assert torch.equal(table, torch.stack([random_starts(500, 4, 8, generator=g) for _ in range(6)]))
    assert torch.equal(batch_starts(500, 3, 4, 8, seed=9), table[:3])  # a longer run starts like a shorter one


def test_resume_with_other_batch_settings_is_refused_and_new_lr_is_applied(data, tmp_path):
    kw = dict(steps=4, eval_every=2, eval_batches=1, seed=5, **RUN)
    train(build(), *data, checkpoint_path=tmp_path / "c.pt", stop_after=2, **kw)
    with pytest.raises(ValueError, match="seed: checkpoint 5 vs now 6"):
        train(build(), *data, resume_from=tmp_path / "c.pt", **{**kw, "seed": 6})
    with pytest.raises(ValueError, match="batch_size"):
        train(build(), *data, resume_from=tmp_path / "c.pt", **{**kw, "batch_size": 3})
    model = build()
    train(model, *data, resume_from=tmp_path / "c.pt", checkpoint_path=tmp_path / "d.pt", **{**kw, "lr": 0.0})
    ckpt = read_checkpoint(tmp_path / "d.pt")
    assert ckpt["train_config"]["lr"] == 0.0
    assert all(g["lr"] == 0.0 for g in ckpt["optimizer"]["param_groups"])


def test_checkpoint_holds_no_device_specific_sampler_state(data, tmp_path):
    """The batches follow from (seed, step): nothing in the checkpoint ties the resume to the saving device."""
    train(build(), *data, steps=2, checkpoint_path=tmp_path / "c.pt", **RUN)
    ckpt = read_checkpoint(tmp_path / "c.pt")
    assert "sampler" not in ckpt["rng"] and set(ckpt["rng"]) == {"torch"}


def test_weights_with_nan_are_never_saved_over_a_good_checkpoint(tmp_path):
    model = build()
    path = save_checkpoint(tmp_path / "ck.pt", model, None, 1)
    good = path.read_bytes()
    with torch.no_grad():
        model.transformer.h[0].mlp.c_fc.weight[0, 0] = float("nan")
    with pytest.raises(NonFiniteWeights, match="mlp.c_fc.weight"):
        save_checkpoint(path, model, None, 2)
    assert path.read_bytes() == good


def test_one_training_step_is_written_once():
    """train(), the timer and the benchmark share TrainStep: no other module of the package (subpackages
    included) calls backward or steps the optimizer or the gradient scaler.

    A lint as well as a test: scripts/lint.py's one_training_step (run by .ci/run before the tests, where it names
    the file and line) is this check; it stays a test so that ``python -m pytest`` alone guards it too.
    tests/test_lint.py checks that it finds a violation planted in a subpackage."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "lint.py"
    spec = importlib.util.spec_from_file_location("lint", path)
    lint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lint)
    assert lint.one_training_step() == []
    assert lint.training_step_calls(pathlib.Path(step_mod.__file__).read_text(encoding="utf-8")), \
        "the detector no longer finds the step that step.py writes"


# ---- the T4 path (fp16 autocast + gradient scaler), exercised on the CPU -------------------------


@pytest.fixture
def fp16_everywhere(monkeypatch):
    """Make train() choose float16 autocast, as it does on a T4 (compute capability 7.5), on this CPU."""
    monkeypatch.setattr(train_mod, "autocast_dtype", lambda device: torch.float16)


def test_fp16_training_uses_the_scaler_and_learns(data, tmp_path, fp16_everywhere):
    tokens = torch.arange(16).repeat(40)
    h = train(build(seed=3), tokens, steps=40, lr=1e-2, batch_size=4, seq_len=8, progress=False,
              checkpoint_path=tmp_path / "c.pt")
    assert sum(h.train_loss[-5:]) / 5 < h.train_loss[0] - 1.0
    ckpt = read_checkpoint(tmp_path / "c.pt")
    assert ckpt["scaler"]["scale"] > 0  # the scaler's state is saved with the run


def test_fp16_stop_and_resume_equals_an_unbroken_run(data, tmp_path, fp16_everywhere):
    kw = dict(steps=6, eval_every=3, eval_batches=1, seed=2, batch_size=2, seq_len=8, progress=False)
    full = train(build(), *data, **kw)
    train(build(), *data, checkpoint_path=tmp_path / "c.pt", stop_after=3, **kw)
    resumed = train(build(seed=5), *data, resume_from=tmp_path / "c.pt", **kw)
    assert resumed.train_loss == full.train_loss and resumed.test_loss == full.test_loss


def test_clipping_sees_the_unscaled_gradients_under_fp16(monkeypatch):
    """With a scaler, gradients are multiplied by 65,536 until unscaled: clipping must come after unscaling."""
    seen = []
    real_clip = torch.nn.utils.clip_grad_norm_

    def clip(params, max_norm, *args, **kwargs):
        params = list(params)
        seen.append(torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item())
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    x, y = torch.randint(0, 64, (2, 8)), torch.randint(0, 64, (2, 8))
    plain = build()
    plain.loss(x, y).backward()
    true_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in plain.parameters()])).item()
    model = build()
    step = step_mod.TrainStep(model, step_mod.make_adamw(model, lr=1e-3, weight_decay=0.0), dtype=torch.float16,
                              grad_clip=1e9)
    assert step.scaler.is_enabled() and step.scaler.get_scale() > 1000
    step(x, y)
    assert seen[0] == pytest.approx(true_norm, rel=0.05)  # fp16 rounding, not a factor of 65,536


def test_a_checkpoint_written_on_a_gpu_resumes_on_the_cpu(data, tmp_path):
    """A GPU run's checkpoint has a CUDA RNG state and a scaler state; on the CPU both are left aside."""
    kw = dict(steps=4, eval_every=2, eval_batches=1, seed=8, **RUN)
    full = train(build(), *data, **kw)
    train(build(), *data, checkpoint_path=tmp_path / "c.pt", stop_after=2, **kw)
    ckpt = torch.load(tmp_path / "c.pt", weights_only=True)
    ckpt["rng"]["cuda"] = torch.zeros(16, dtype=torch.uint8)  # what torch.cuda.get_rng_state() gives
    ckpt["scaler"] = {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2000,
                      "_growth_tracker": 0}
    torch.save(ckpt, tmp_path / "gpu.pt")
    resumed = train(build(seed=1), *data, resume_from=tmp_path / "gpu.pt", **kw)
    assert resumed.train_loss == full.train_loss


def test_ctrl_c_saves_the_steps_done_and_the_run_resumes_exactly(data, tmp_path):
    from gpt_lesson import TrainingInterrupted

    kw = dict(steps=6, eval_every=2, eval_batches=1, seed=4, **RUN)
    full = train(build(), *data, **kw)
    model = build()
    real_loss, calls = model.loss, {"n": 0}

    def loss(x, y, **k):
        if model.training:
            calls["n"] += 1
            if calls["n"] == 4:  # Ctrl-C during the fourth step: three are done
                raise KeyboardInterrupt
        return real_loss(x, y, **k)

    model.loss = loss
    with pytest.raises(TrainingInterrupted, match="step 3") as err:
        train(model, *data, checkpoint_path=tmp_path / "c.pt", **kw)
    assert isinstance(err.value, KeyboardInterrupt) and err.value.step == 3
    assert read_checkpoint(tmp_path / "c.pt")["step"] == 3
    resumed = train(build(seed=7), *data, resume_from=tmp_path / "c.pt", **kw)
    assert resumed.train_loss == full.train_loss and resumed.test_loss == full.test_loss


def test_token_ids_outside_the_vocabulary_fail_before_training(data):
    bad = data[0].clone()
    bad[17] = 64  # CFG's vocabulary is 0..63
    with pytest.raises(ValueError, match="train_tokens: ids from 0 to 64 lie outside"):
        train(build(), bad, steps=1, **RUN)
    with pytest.raises(ValueError, match="test_tokens"):
        train(build(), data[0], -data[1], steps=1, **RUN)


def test_evaluate_refuses_zero_batches(data):
    with pytest.raises(ValueError, match="n_batches must be a positive integer"):
        evaluate(build(), data[1], batch_size=2, seq_len=8, n_batches=0)


# ---- the Trainer: stretches and callbacks -----------------------------------------------------------------------


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_trainer_run_in_stretches_equals_an_unbroken_run(data, dropout):
    """run_to(2), an evaluation of our own, run_to(5): the losses and weights of one unbroken run (dropout
    included: its random stream continues across stretches)."""
    from gpt_lesson import EvalSet, RunPlan, Trainer, mean_loss

    cfg = GPTConfig(**{**CFG.to_dict(), "dropout": dropout})
    config = TrainConfig(steps=5, eval_every=2, eval_batches=2, batch_size=2, seq_len=8, amp=False)
    unbroken_model = build(cfg)
    unbroken = train(unbroken_model, *data, config, progress=False)
    model = build(cfg)
    trainer = Trainer(RunPlan.build(cfg, config, *data), model, *data, progress=False)
    trainer.run_to(2)
    extra = mean_loss(model, EvalSet.windows(data[1], 8))  # in between, without touching the run
    assert trainer.step == 2 and math.isfinite(extra) and model.training
    h = trainer.run_to(5)
    assert h.train_loss == unbroken.train_loss and h.test_loss == unbroken.test_loss
    assert h.eval_steps == unbroken.eval_steps == [0, 2, 4, 5]
    assert_same_weights(weights(model), weights(unbroken_model))


def test_the_trainer_calls_back_at_evaluations_and_saves(data, tmp_path):
    from gpt_lesson import RunPlan, Trainer

    seen = []
    config = TrainConfig(steps=5, eval_every=2, eval_batches=1, checkpoint_every=2, batch_size=2, seq_len=8, amp=False)
    trainer = Trainer(RunPlan.build(CFG, config, *data), build(), *data, progress=False,
                      checkpoint_path=tmp_path / "c.pt",
                      on_eval=lambda t, step, loss: seen.append(("eval", step, loss == t.history.test_loss[-1])),
                      on_save=lambda t, step, path: seen.append(("save", step, path.is_file())))
    trainer.run()
    assert seen == [("eval", 0, True), ("save", 2, True), ("eval", 2, True), ("save", 4, True), ("eval", 4, True),
                    ("eval", 5, True), ("save", 5, True)]


def test_run_to_refuses_a_step_behind_or_past_the_run(data):
    from gpt_lesson import RunPlan, Trainer

    plan = RunPlan.build(CFG, TrainConfig(steps=4, batch_size=2, seq_len=8, amp=False), *data)
    trainer = Trainer(plan, build(), *data, progress=False)
    trainer.run_to(3)
    for bad in (2, 5, 3.5):
        with pytest.raises(ValueError, match=r"run_to\(.*\): give a step from the current step 3 to steps=4"):
            trainer.run_to(bad)


def test_stop_after_must_be_a_positive_number_of_steps(data):
    with pytest.raises(ValueError,
                       match=r"stop_after must be a positive number of steps \(or None: run to the end\), got -1"):
        train(build(), *data, steps=3, stop_after=-1, **RUN)


# ---- training practice: warmup, cosine decay, decay on matrices only (all off by default) --------------------------


def test_the_default_schedule_is_the_courses_constant_lr():
    c = TrainConfig(lr=1e-3)
    assert [c.lr_at(s) for s in (0, 1, 250, 499)] == [1e-3] * 4
    assert (c.warmup_steps, c.schedule, c.decay_matrices_only, c.grad_clip) == (0, "constant", False, None)


def test_warmup_climbs_linearly_and_cosine_ends_at_its_floor():
    c = TrainConfig(steps=100, lr=1e-3, warmup_steps=10, schedule="cosine", min_lr_ratio=0.1)
    assert c.lr_at(0) == pytest.approx(1e-4) and c.lr_at(4) == pytest.approx(5e-4) and c.lr_at(9) == pytest.approx(1e-3)
    assert c.lr_at(10) == pytest.approx(1e-3) and c.lr_at(99) == pytest.approx(1e-4)
    lrs = [c.lr_at(s) for s in range(10, 100)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))  # only down after warmup
    assert c.lr_at(10 + 89 // 2) == pytest.approx(0.55e-3, rel=0.02)  # halfway: half-way between peak and floor


@pytest.mark.parametrize("field, value", [("warmup_steps", -1), ("warmup_steps", 600), ("schedule", "linear"),
                                          ("min_lr_ratio", 1.5), ("min_lr_ratio", -0.1), ("decay_matrices_only", 1)])
def test_bad_schedule_settings_are_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=rf"TrainConfig\.{field} must be"):
        TrainConfig(**{field: value})


def test_decay_on_matrices_only_leaves_one_dimensional_parameters_undecayed():
    from gpt_lesson.step import make_adamw

    model = build()
    opt = make_adamw(model, lr=1e-3, weight_decay=0.1, decay_matrices_only=True)
    decayed, plain = opt.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in plain["params"])
    assert len(decayed["params"]) + len(plain["params"]) == len(list(model.parameters()))
    # With zero gradients only the decay moves a weight: matrices shrink, biases and LayerNorm gains stay.
    before = weights(model)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for name, p in model.named_parameters():
        moved = not torch.equal(p, before[name])
        assert moved == (p.dim() >= 2), name


MODERN = dict(warmup_steps=2, schedule="cosine", min_lr_ratio=0.1, grad_clip=1.0, decay_matrices_only=True)


def test_the_history_records_the_lr_of_every_step(data):
    h = train(build(), *data, steps=6, eval_every=3, **MODERN, **RUN)
    c = TrainConfig(steps=6, **MODERN)
    assert h.lr == [c.lr_at(s) for s in range(6)] and len(h.lr) == len(h.train_loss)
    assert h.lr[0] < h.lr[1] == max(h.lr) and h.lr[-1] == pytest.approx(1e-4)


def test_every_modern_switch_survives_a_resume_bit_identically(data, tmp_path):
    config = TrainConfig(steps=6, eval_every=2, eval_batches=2, batch_size=2, seq_len=8, amp=False, **MODERN)
    unbroken_model = build()
    unbroken = train(unbroken_model, *data, config, progress=False)
    model = build()
    ckpt = tmp_path / "c.pt"
    train(model, *data, config, progress=False, checkpoint_path=ckpt, stop_after=3)
    resumed_model = build(seed=9)  # other weights: everything must come from the checkpoint
    resumed = train(resumed_model, *data, config, progress=False, resume_from=ckpt)
    assert resumed.train_loss == unbroken.train_loss and resumed.lr == unbroken.lr
    assert resumed.test_loss == unbroken.test_loss
    assert_same_weights(weights(resumed_model), weights(unbroken_model))
    saved = read_checkpoint(ckpt)["train_config"]
    assert {k: saved[k] for k in MODERN} == MODERN


def test_a_resume_with_other_parameter_groups_is_refused(data, tmp_path):
    ckpt = tmp_path / "c.pt"
    train(build(), *data, steps=4, checkpoint_path=ckpt, stop_after=2, **RUN)
    with pytest.raises(ValueError, match="decay_matrices_only: checkpoint False vs now True"):
        train(build(), *data, steps=4, resume_from=ckpt, decay_matrices_only=True, **RUN)
    h = train(build(), *data, steps=4, resume_from=ckpt, warmup_steps=1, schedule="cosine", **RUN)  # allowed
    assert len(h.lr) == 4 and h.lr[2:] == [TrainConfig(steps=4, warmup_steps=1, schedule="cosine").lr_at(s)
                                          for s in (2, 3)]
