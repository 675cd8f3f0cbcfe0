"""GPT-2's weights in Model5 (the yardstick of notebook 07), tested offline with a small random HuggingFace model."""

import pytest
import torch

import gpt_lesson as gl

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
