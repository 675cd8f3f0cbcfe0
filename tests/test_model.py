"""Model 5: size, weight tying, causality, initial loss, the config switches, chunked loss, token ids.

GPT-2's weights in Model5 (the loader, and the logits against transformers') are in test_pretrained.py."""

import math
import types

import pytest
import torch

from gpt_lesson import PRESETS, GPTConfig, Model5, preset
from gpt_lesson.loss import chunked_cross_entropy

SMALL = GPTConfig(vocab_size=97, context_length=16, n_layer=2, n_head=2, n_embd=32)


def build(cfg: GPTConfig, seed: int = 0) -> Model5:
    torch.manual_seed(seed)
    return Model5(cfg)


def tokens(shape, vocab: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def copy_weights(src: Model5, dst: Model5) -> None:
    """Copy src's weights into dst; dst may have a padded vocabulary (extra embedding rows kept)."""
    with torch.no_grad():
        dst_sd = dst.state_dict()
        for k, v in src.state_dict().items():
            dst_sd[k][: v.shape[0]].copy_(v)


def expected_params(cfg: GPTConfig) -> int:
    """GPT-2 parameter count from the architecture, counting the tied head once.

    Per block: ln_1 and ln_2 (2C each), c_attn (C x 3C + 3C), attn c_proj (C x C + C),
    c_fc (C x 4C + 4C), mlp c_proj (4C x C + C): 12 C^2 + 13 C. Plus wte (V x C), wpe (T x C), ln_f (2C).
    """
    V, T, C, L = cfg.vocab_size, cfg.context_length, cfg.n_embd, cfg.n_layer
    return V * C + T * C + L * (12 * C * C + 13 * C) + 2 * C


# ---- size and tying ----------------------------------------------------------------------------


def test_model5_parameter_count_matches_the_architecture():
    cfg = preset("model5")
    assert expected_params(cfg) == 123_849_984  # the formula, checked against the lesson's figure
    with torch.device("meta"):
        model = Model5(cfg)
    assert model.num_params() == expected_params(cfg)
    assert model.num_params(include_position=False) == expected_params(cfg) - cfg.context_length * cfg.n_embd


def test_num_params_counts_the_tied_head_once():
    with torch.device("meta"):
        model = Model5(preset("model5"))
    with_duplicates = sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False))
    wte = model.transformer.wte.weight.numel()
    assert with_duplicates == model.num_params() + wte  # the head would add V*C again if counted twice


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_has_the_formula_count(name):
    cfg = preset(name)
    with torch.device("meta"):
        model = Model5(cfg)
    assert model.num_params() == expected_params(cfg)


def test_head_and_embedding_are_one_parameter():
    model = build(SMALL)
    wte = model.transformer.wte.weight
    assert model.lm_head.weight is wte
    assert sum(p is wte for p in model.parameters()) == 1
    # The tie survives training: one optimizer step moves both names together.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x, y = tokens((2, 8), 97, 1), tokens((2, 8), 97, 2)
    before = wte.detach().clone()
    model.loss(x, y).backward()
    opt.step()
    assert model.lm_head.weight is model.transformer.wte.weight
    assert not torch.equal(before, model.lm_head.weight)


# ---- behaviour ---------------------------------------------------------------------------------


def test_causality_later_tokens_never_change_earlier_logits():
    model = build(SMALL).eval()
    T = SMALL.context_length
    x = tokens((2, T), 97, 3)
    with torch.no_grad():
        base = model(x)
        for t in (0, 5, T - 2):
            x2 = x.clone()
            x2[:, t + 1 :] = (x2[:, t + 1 :] + 1 + tokens((2, T - t - 1), 96, t)) % 97  # every later token differs
            out = model(x2)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-6)
            # the change did reach later positions
            assert not torch.allclose(out[:, t + 1 :], base[:, t + 1 :], atol=1e-3)


def test_initial_loss_with_gpt2_init_is_near_uniform():
    cfg = preset("tiny", gpt2_init=True)
    model = build(cfg).eval()
    x, y = tokens((4, 32), cfg.vocab_size, 4), tokens((4, 32), cfg.vocab_size, 5)
    with torch.no_grad():
        loss = model.loss(x, y).item()
    assert abs(loss - math.log(cfg.vocab_size)) < 0.3  # ln(50257) = 10.825


def test_initial_loss_with_the_course_init_is_far_above_uniform():
    cfg = preset("tiny")
    model = build(cfg).eval()
    x, y = tokens((4, 32), cfg.vocab_size, 4), tokens((4, 32), cfg.vocab_size, 5)
    with torch.no_grad():
        loss = model.loss(x, y).item()
    assert loss > math.log(cfg.vocab_size) + 1


def test_tiny_model_overfits_one_batch():
    cfg = GPTConfig(vocab_size=64, context_length=16, n_layer=2, n_head=2, n_embd=32)
    model = build(cfg)
    x, y = tokens((4, 16), 64, 6), tokens((4, 16), 64, 7)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(300):
        loss = model.loss(x, y)
        first = loss.item() if first is None else first
        if loss.item() < 0.5:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert first > 3.0
    assert loss.item() < 0.5


def test_forward_shape_and_loss_match_cross_entropy_of_forward():
    model = build(SMALL).eval()
    x, y = tokens((3, 10), 97, 8), tokens((3, 10), 97, 9)
    with torch.no_grad():
        logits = model(x)
        loss = model.loss(x, y)
    assert logits.shape == (3, 10, 97)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits.reshape(-1, 97), y.reshape(-1)))


def test_context_overflow_is_a_clear_error():
    model = build(SMALL)
    with pytest.raises(ValueError, match="context_length=16"):
        model(torch.zeros(1, 17, dtype=torch.long))
    with pytest.raises(ValueError, match="context_length"):
        model.loss(torch.zeros(1, 17, dtype=torch.long), torch.zeros(1, 17, dtype=torch.long))
    assert model(torch.zeros(1, 16, dtype=torch.long)).shape == (1, 16, 97)  # exactly full is fine


# ---- switches ----------------------------------------------------------------------------------


def test_log_softmax_output_returns_log_probabilities_and_keeps_the_loss():
    plain = build(SMALL).eval()
    logp_model = build(GPTConfig(**{**SMALL.to_dict(), "log_softmax_output": True})).eval()
    logp_model.load_state_dict(plain.state_dict())
    x, y = tokens((2, 12), 97, 10), tokens((2, 12), 97, 11)
    with torch.no_grad():
        logp = logp_model(x)
        logits = plain(x)
        torch.testing.assert_close(logp.exp().sum(-1), torch.ones(2, 12))
        assert (logp <= 0).all()
        torch.testing.assert_close(logp, torch.log_softmax(logits, -1))
        torch.testing.assert_close(logp_model.loss(x, y), plain.loss(x, y))


def test_scale_logits_divides_by_sqrt_n_embd():
    plain = build(SMALL).eval()
    scaled = build(GPTConfig(**{**SMALL.to_dict(), "scale_logits": True})).eval()
    scaled.load_state_dict(plain.state_dict())
    x, y = tokens((2, 12), 97, 12), tokens((2, 12), 97, 13)
    with torch.no_grad():
        a, b = plain(x), scaled(x)
        torch.testing.assert_close(b, a / math.sqrt(SMALL.n_embd))
        expected = torch.nn.functional.cross_entropy(a.reshape(-1, 97) / math.sqrt(32), y.reshape(-1))
        torch.testing.assert_close(scaled.loss(x, y), expected)


def test_dropout_is_active_in_train_mode_only():
    cfg = GPTConfig(**{**SMALL.to_dict(), "dropout": 0.3})
    model = build(cfg)
    nodrop = build(SMALL)
    nodrop.load_state_dict(model.state_dict())
    x = tokens((2, 12), 97, 14)
    with torch.no_grad():
        model.train()
        torch.manual_seed(1)
        a = model(x)
        b = model(x)
        assert not torch.allclose(a, b)
        model.eval()
        c, d = model(x), model(x)
        assert torch.equal(c, d)
        torch.testing.assert_close(c, nodrop.eval()(x))


def test_vocab_multiple_pads_rows_but_not_outputs():
    cfg = GPTConfig(**{**SMALL.to_dict(), "vocab_multiple": 64})
    padded = build(cfg, seed=1)
    assert cfg.padded_vocab == 128  # 97 rounded up to a multiple of 64
    assert padded.transformer.wte.weight.shape == (128, 32)
    plain = build(SMALL)
    copy_weights(plain, padded)
    x, y = tokens((2, 12), 97, 15), tokens((2, 12), 97, 16)
    with torch.no_grad():
        out = padded(x)
        assert out.shape == (2, 12, 97)
        torch.testing.assert_close(out, plain(x))
        torch.testing.assert_close(padded.loss(x, y), plain.loss(x, y))


@pytest.mark.parametrize(
    "extra",
    [{}, {"scale_logits": True}, {"vocab_multiple": 64}, {"scale_logits": True, "vocab_multiple": 64}],
    ids=["plain", "scaled", "padded", "scaled+padded"],
)
def test_chunked_loss_matches_the_plain_loss_and_gradients(extra):
    base = GPTConfig(**{**SMALL.to_dict(), **extra})
    a = build(base, seed=2)
    b = build(base, seed=3)
    b.load_state_dict(a.state_dict())
    x, y = tokens((3, 12), 97, 17), tokens((3, 12), 97, 18)
    la, lb = a.loss(x, y), b.loss(x, y, chunk=7)  # 3*12 = 36 rows: 5 full chunks + 1 partial
    torch.testing.assert_close(lb, la, rtol=1e-5, atol=1e-6)
    la.backward()
    lb.backward()
    ga, gb = dict(a.named_parameters()), dict(b.named_parameters())
    for name, p in ga.items():
        torch.testing.assert_close(gb[name].grad, p.grad, rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")
    if "vocab_multiple" in extra:  # padded rows take no part in the loss
        assert torch.count_nonzero(gb["transformer.wte.weight"].grad[97:]) == 0


def test_chunked_cross_entropy_scales_with_the_upstream_gradient():
    g = torch.Generator().manual_seed(19)
    h = torch.randn(10, 8, generator=g, requires_grad=True)
    w = torch.randn(13, 8, generator=g, requires_grad=True)
    t = torch.randint(0, 11, (10,), generator=g)
    ref_h, ref_w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    ref = torch.nn.functional.cross_entropy((ref_h @ ref_w[:11].t()) * 0.5, t)
    out = chunked_cross_entropy(h, w, t, vocab_size=11, scale=0.5, chunk=3)
    torch.testing.assert_close(out, ref)
    (3.0 * out).backward()
    (3.0 * ref).backward()
    torch.testing.assert_close(h.grad, ref_h.grad)
    torch.testing.assert_close(w.grad, ref_w.grad)


def test_chunked_loss_without_grad_gives_the_same_value():
    model = build(SMALL).eval()
    x, y = tokens((2, 12), 97, 20), tokens((2, 12), 97, 21)
    with_grad = model.loss(x, y, chunk=5)
    with torch.no_grad():
        no_grad = model.loss(x, y, chunk=5)
    assert not no_grad.requires_grad
    torch.testing.assert_close(no_grad, with_grad.detach())


def test_chunked_loss_without_grad_does_only_the_logit_matmuls():
    """Evaluation (no_grad) must not pay for the gradients the training path computes in its forward."""
    dispatch = pytest.importorskip("torch.utils._python_dispatch")

    class MatmulCount(dispatch.TorchDispatchMode):
        n = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if str(func).startswith(("aten.mm", "aten.addmm", "aten.matmul", "aten.bmm")):
                self.n += 1
            return func(*args, **(kwargs or {}))

    g = torch.Generator().manual_seed(24)
    h = torch.randn(10, 8, generator=g, requires_grad=True)
    w = torch.nn.Parameter(torch.randn(13, 8, generator=g))
    t = torch.randint(0, 13, (10,), generator=g)
    with torch.no_grad(), MatmulCount() as count:
        chunked_cross_entropy(h, w, t, vocab_size=13, chunk=3)
    assert count.n == 4  # one (chunk x V) logit product per chunk of 3 rows out of 10
    with MatmulCount() as count:
        chunked_cross_entropy(h, w, t, vocab_size=13, chunk=3)
    assert count.n == 12  # with gradients: logits, grad of h and grad of W per chunk


# ---- config errors -----------------------------------------------------------------------------


def test_n_embd_not_divisible_by_n_head_names_both():
    with pytest.raises(ValueError, match=r"n_embd=100.*n_head=12"):
        GPTConfig(n_embd=100, n_head=12)


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ValueError) as err:
        preset("huge")
    msg = str(err.value)
    assert "huge" in msg
    for name in PRESETS:
        assert name in msg


@pytest.mark.parametrize(
    "kwargs", [{"n_layer": 0}, {"vocab_size": -1}, {"n_head": 2.0}, {"dropout": 1.0}]
)
def test_invalid_config_values_are_refused(kwargs):
    with pytest.raises(ValueError):
        GPTConfig(**kwargs)


def test_preset_overrides_and_config_round_trip():
    cfg = preset("model5", dropout=0.1)
    assert cfg.dropout == 0.1 and PRESETS["model5"].model.dropout == 0.0  # the preset itself is untouched
    assert GPTConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown GPTConfig fields"):
        GPTConfig.from_dict({**cfg.to_dict(), "n_layers": 3})


def test_gelu_switch_and_scaled_residual_init_are_checked_and_off_by_default():
    assert GPTConfig().gelu_approximate == "none" and not GPTConfig().scaled_residual_init
    with pytest.raises(ValueError, match="gelu_approximate"):
        GPTConfig(gelu_approximate="fast")
    with pytest.raises(ValueError, match="needs gpt2_init"):
        GPTConfig(scaled_residual_init=True)


def test_scaled_residual_init_shrinks_only_the_residual_projections():
    cfg = GPTConfig(vocab_size=97, context_length=16, n_layer=8, n_head=2, n_embd=256, gpt2_init=True)
    plain = build(cfg, seed=3)
    scaled = build(GPTConfig(**{**cfg.to_dict(), "scaled_residual_init": True}), seed=3)
    target = 0.02 / math.sqrt(2 * cfg.n_layer)  # 0.005
    for a, b in zip(plain.transformer.h, scaled.transformer.h):
        for proj in ("attn.c_proj.weight", "mlp.c_proj.weight"):
            assert abs(a.get_parameter(proj).std().item() - 0.02) < 0.002
            assert abs(b.get_parameter(proj).std().item() - target) < 0.0005
        torch.testing.assert_close(b.attn.c_attn.weight, a.attn.c_attn.weight, rtol=0, atol=0)  # the rest as before
    torch.testing.assert_close(scaled.transformer.wte.weight, plain.transformer.wte.weight, rtol=0, atol=0)


# ---- token ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad, word", [(97, "to 97 lie outside"), (-1, "from -1 to"), (1000, "to 1000 lie outside")])
def test_an_id_outside_the_vocabulary_names_the_id_the_size_and_the_fix(bad, word):
    model = build(SMALL)
    x = tokens((2, 8), 97, 26)
    x[1, 3] = bad
    for call in (lambda: model(x), lambda: model.loss(x, x.clamp(0, 96))):
        with pytest.raises(ValueError) as err:
            call()
        msg = str(err.value)
        assert word in msg and "vocab_size=97" in msg and "gpt_lesson.encode" in msg


@pytest.mark.parametrize("bad, error, word", [
    (torch.zeros(2, 8), TypeError, ".long()"),
    (torch.zeros(8, dtype=torch.long), ValueError, "ids[None]"),
    ([[1, 2]], TypeError, "gpt_lesson.encode"),
])
def test_ids_of_the_wrong_kind_say_how_to_fix_them(bad, error, word):
    with pytest.raises(error) as err:
        build(SMALL)(bad)
    assert word in str(err.value)


def test_chunked_loss_is_used_only_when_asked_and_refused_under_autocast(monkeypatch):
    """The loss path is explicit: chunk > 0 takes the chunked fp32 path, and under autocast that is an error."""
    import gpt_lesson.model as model_mod

    calls = []
    real = model_mod.chunked_cross_entropy
    monkeypatch.setattr(model_mod, "chunked_cross_entropy", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = build(GPTConfig(vocab_size=97, context_length=8, n_layer=1, n_head=2, n_embd=16))
    x, y = tokens((2, 8), 97, 11), tokens((2, 8), 97, 12)
    model.loss(x, y)
    assert calls == []
    model.loss(x, y, chunk=5)
    assert calls == [1]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.isfinite(model.loss(x, y))
        with pytest.raises(ValueError, match="chunk=0"):
            model.loss(x, y, chunk=5)
    assert calls == [1]


# ---- torch versions (gpt_lesson.compat) --------------------------------------------------------


def test_compat_gives_the_same_answers_through_the_older_torch_apis(monkeypatch):
    """Outside and inside autocast, with today's API and with the torch < 2.4 / < 2.3 ones `compat` falls back to."""
    from gpt_lesson import compat

    cpu, real = torch.device("cpu"), torch.is_autocast_enabled

    def no_device_type(*args):  # torch < 2.4: the CUDA flag, and no argument
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments but 1 was given")
        return real("cuda")

    def answers(old: bool) -> tuple[bool, bool]:
        with monkeypatch.context() as m:
            if old:
                m.setattr(torch, "is_autocast_enabled", no_device_type)
                m.setattr(torch, "is_autocast_cpu_enabled", lambda: real("cpu"), raising=False)
                # torch < 2.3: no torch.compiler.is_compiling, only torch._dynamo's (which today calls the other)
                m.setattr(torch._dynamo, "is_compiling", torch.compiler.is_compiling)
                m.setattr(torch, "compiler", types.SimpleNamespace())
            return compat.autocast_enabled(cpu), compat.compiling()

    for old in (False, True):
        assert answers(old) == (False, False)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # torch.autocast itself calls is_autocast_enabled
            assert answers(old) == (True, False)


@pytest.mark.slow
def test_compat_compiling_is_true_while_torch_compile_traces():
    from gpt_lesson import compat

    traced = torch.compile(lambda x: x + compat.compiling(), backend="eager")
    assert traced(torch.zeros(())).item() == 1 and not compat.compiling()
