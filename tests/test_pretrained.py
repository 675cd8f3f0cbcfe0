"""GPT-2's weights in Model5 (the yardstick of notebook 07), tested offline with small random HuggingFace models:
the same logits as transformers', and every mismatch the loader refuses, by name."""

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson import GPTConfig, Model5, load_gpt2_state_dict

transformers = pytest.importorskip("transformers")


def _hf(activation: str = "gelu_new"):
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4,
                                  activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(cfg).eval()


@pytest.mark.parametrize("activation, approximate", [("gelu_new", "tanh"), ("gelu", "none")])
def test_from_hf_computes_what_the_hf_model_computes(activation, approximate):
    hf = _hf(activation)
    ours = gl.from_hf(hf).eval()
    assert ours.config.gelu_approximate == approximate and ours.config.context_length == 32
    x = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, rtol=0, atol=1e-4)


def test_the_yardstick_is_the_same_evaluation_as_ours(monkeypatch):
    """pretrained_gpt2 through the same loading code (from_pretrained replaced by a small random model), then the
    package's one evaluation: the same loss HuggingFace's logits give."""
    hf = _hf()
    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", classmethod(lambda cls, name: hf))
    model, line = gl.pretrained_gpt2(offline=False)
    assert model is not None and "from HuggingFace" in line and not model.training
    tokens = torch.randint(0, 97, (500,), generator=torch.Generator().manual_seed(2))
    test = gl.EvalSet.windows(tokens, 16)
    ours = gl.mean_loss(model, test)
    theirs = gl.mean_loss(hf, test, loss_fn=gl.logits_loss(lambda x: hf(input_ids=x).logits))
    assert ours == pytest.approx(theirs, rel=1e-5)


def test_offline_or_without_a_network_it_says_why_in_one_line(monkeypatch):
    model, line = gl.pretrained_gpt2(offline=True)
    assert model is None and line.startswith("skipped: offline") and "\n" not in line
    monkeypatch.setenv("GPT_LESSON_OFFLINE", "1")
    assert gl.pretrained_gpt2()[0] is None

    def no_network(cls, name):
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", classmethod(no_network))
    model, line = gl.pretrained_gpt2(offline=False)
    assert model is None and line.startswith("skipped: could not download 'gpt2' (OSError") and "\n" not in line


# ---- load_gpt2_state_dict: random GPT-2s of the small shape, with larger weights than HF's init ----------------

from test_model import SMALL, build, tokens  # noqa: E402  the model tests' small shape and helpers


def _hf_gpt2(cfg: GPTConfig, seed: int = 0, activation: str = "gelu", tied: bool = True):
    hf_cfg = transformers.GPT2Config(
        n_positions=cfg.context_length, n_embd=cfg.n_embd, n_layer=cfg.n_layer, n_head=cfg.n_head,
        vocab_size=cfg.vocab_size, activation_function=activation, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        layer_norm_epsilon=1e-5, tie_word_embeddings=tied, bos_token_id=0, eos_token_id=0,
    )
    torch.manual_seed(seed)
    hf = transformers.GPT2LMHeadModel(hf_cfg).eval()
    with torch.no_grad():  # larger random weights than HF's init (LayerNorms and biases too), so mistakes show
        for p in hf.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return hf


def test_gpt2_weights_give_the_same_logits_as_transformers():
    hf = _hf_gpt2(SMALL)
    model = load_gpt2_state_dict(build(SMALL, seed=5), hf.state_dict()).eval()
    x = tokens((2, 16), 97, 22)
    with torch.no_grad():
        ref = hf(x).logits
        out = model(x)
    assert ref.abs().max() > 1  # the weights are not trivially small
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-4)


def test_tanh_gelu_gives_the_logits_of_real_gpt2s_activation():
    """Real GPT-2 uses the tanh GELU ("gelu_new"): with gelu_approximate="tanh" the logits match exactly;
    the exact GELU (the default) does not."""
    hf = _hf_gpt2(SMALL, seed=2, activation="gelu_new")
    tanh = load_gpt2_state_dict(build(GPTConfig(**{**SMALL.to_dict(), "gelu_approximate": "tanh"})), hf.state_dict())
    exact = load_gpt2_state_dict(build(SMALL), hf.state_dict())
    x = tokens((2, 16), 97, 24)
    with torch.no_grad():
        ref = hf(x).logits
        torch.testing.assert_close(tanh.eval()(x), ref, rtol=0, atol=1e-4)
        assert (exact.eval()(x) - ref).abs().max() > 1e-3  # the switch matters


def test_gpt2_weights_fit_a_padded_vocabulary():
    hf = _hf_gpt2(SMALL, seed=1)
    model = load_gpt2_state_dict(build(GPTConfig(**{**SMALL.to_dict(), "vocab_multiple": 64})), hf.state_dict())
    x = tokens((1, 16), 97, 23)
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), hf(x).logits, rtol=0, atol=1e-4)


def test_gpt2_state_dict_of_another_depth_is_refused():
    hf = _hf_gpt2(GPTConfig(**{**SMALL.to_dict(), "n_layer": 3}))
    with pytest.raises(ValueError, match="n_layer"):
        load_gpt2_state_dict(build(SMALL), hf.state_dict())


def test_gpt2_state_dict_of_another_width_is_refused():
    hf = _hf_gpt2(GPTConfig(**{**SMALL.to_dict(), "n_embd": 48}))
    with pytest.raises(ValueError, match=r"n_embd: the GPT-2 weights have 48 .*the model n_embd=32"):
        load_gpt2_state_dict(build(SMALL), hf.state_dict())


TANH = GPTConfig(**{**SMALL.to_dict(), "gelu_approximate": "tanh"})


@pytest.mark.parametrize("give", ["state_dict", "model"])
def test_an_untied_gpt2_head_is_refused_naming_both_tensors(give):
    """Model5's head is its embedding: an untied HF head used to overwrite it, and the logits then differed."""
    hf = _hf_gpt2(TANH, seed=3, activation="gelu_new", tied=False)
    sd = hf.state_dict()
    assert not torch.equal(sd["lm_head.weight"], sd["transformer.wte.weight"])
    with pytest.raises(ValueError, match=r"lm_head\.weight differs from transformer\.wte\.weight.*tie_word_embeddings"):
        load_gpt2_state_dict(build(TANH), sd if give == "state_dict" else hf)


@pytest.mark.parametrize("field, value", [("vocab_size", 98), ("context_length", 8), ("n_layer", 3), ("n_embd", 64)])
@pytest.mark.parametrize("give", ["state_dict", "model"])
def test_a_size_mismatch_names_the_field_both_values_and_the_fix(field, value, give):
    hf = _hf_gpt2(TANH, activation="gelu_new")
    model = build(GPTConfig(**{**TANH.to_dict(), field: value}))
    with pytest.raises(ValueError) as err:
        load_gpt2_state_dict(model, hf.state_dict() if give == "state_dict" else hf)
    msg = str(err.value)
    assert msg.startswith(f"{field}:") and f"{field}={value}" in msg
    assert f"gl.GPTConfig(..., {field}={getattr(TANH, field)})" in msg


def test_n_head_is_checked_when_the_config_is_given():
    hf = _hf_gpt2(TANH, activation="gelu_new")
    with pytest.raises(ValueError, match=r"n_head: the GPT-2 weights have n_head=2, the model n_head=4"):
        load_gpt2_state_dict(build(GPTConfig(**{**TANH.to_dict(), "n_head": 4})), hf)


@pytest.mark.parametrize("give", ["model", "config"])
def test_a_gelu_or_eps_mismatch_is_refused_when_the_hf_config_is_known(give):
    hf = _hf_gpt2(TANH, activation="gelu_new")

    def load(cfg: GPTConfig) -> Model5:
        if give == "model":
            return load_gpt2_state_dict(build(cfg), hf)
        return load_gpt2_state_dict(build(cfg), hf.state_dict(), config=hf.config)

    with pytest.raises(ValueError) as err:
        load(SMALL)  # the exact GELU, GPT-2's is the tanh one
    assert str(err.value) == ("gelu_approximate: GPT-2 uses 'tanh' (activation_function='gelu_new'), the model "
                              "'none'; build it with gl.GPTConfig(..., gelu_approximate='tanh')")
    with pytest.raises(ValueError, match=r"ln_eps: GPT-2 uses layer_norm_epsilon=1e-05, the model ln_eps=1e-06"):
        load(GPTConfig(**{**TANH.to_dict(), "ln_eps": 1e-6}))
    exact = _hf_gpt2(SMALL, activation="gelu")  # "gelu" is the exact GELU: the default model fits
    load_gpt2_state_dict(build(SMALL), exact)
    with pytest.raises(ValueError, match="gelu_approximate='none'"):
        load_gpt2_state_dict(build(TANH), exact)
    with pytest.raises(ValueError, match="activation_function='relu'"):
        load_gpt2_state_dict(build(TANH), hf.state_dict(), config=type(hf.config)(**{**hf.config.to_dict(),
                                                                                    "activation_function": "relu"}))


@pytest.mark.parametrize("switch", ["scale_logits", "log_softmax_output"])
def test_course_switches_that_change_the_output_are_refused(switch):
    hf = _hf_gpt2(TANH, activation="gelu_new")
    with pytest.raises(ValueError, match=rf"^{switch}: .*{switch}=False"):
        load_gpt2_state_dict(build(GPTConfig(**{**TANH.to_dict(), switch: True})), hf.state_dict())


def test_the_hf_model_itself_loads_and_gives_its_logits():
    hf = _hf_gpt2(TANH, seed=4, activation="gelu_new")
    model = load_gpt2_state_dict(build(TANH, seed=6), hf).eval()
    x = tokens((2, 16), 97, 25)
    with torch.no_grad():
        torch.testing.assert_close(model(x), hf(x).logits, rtol=0, atol=1e-4)
    sd = {k: v for k, v in hf.state_dict().items() if k != "lm_head.weight"}  # saved without the tied head
    again = load_gpt2_state_dict(build(TANH, seed=7), sd).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x), rtol=0, atol=0)
