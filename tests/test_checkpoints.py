"""The checkpoint format: today's layout, the upgrade of stored files of older layouts, the checksum, config checks."""

from pathlib import Path

import pytest
import torch

import gpt_lesson as gl
import gpt_lesson.checkpoints as ck

OLD = Path(__file__).parent / "data" / "checkpoints"  # written by older versions: see its README.md
OLD_FILES = ["v0.1.0.pt", "before-sampler.pt", "format1.pt"]
CFG = gl.GPTConfig(vocab_size=64, context_length=8, n_layer=1, n_head=2, n_embd=8)
TOKENS = torch.arange(200) % 64  # what the stored runs trained on
RECORDED_TRAIN = [7.645633697509766, 8.840755462646484, 7.849430561065674]  # their losses (README.md)


def _run_config(**kw) -> gl.TrainConfig:
    return gl.TrainConfig(**{**dict(steps=3, batch_size=2, seq_len=8, eval_every=2, eval_batches=1, seed=5,
                                    loss_chunk=4), **kw})


@pytest.mark.parametrize("name", OLD_FILES)
def test_an_old_layout_is_upgraded_on_reading(name):
    raw = torch.load(OLD / name, weights_only=True)
    assert raw["format"] == "gpt_lesson-checkpoint-1"
    ckpt = gl.read_checkpoint(OLD / name)
    assert ckpt["format"] == ck.CHECKPOINT_FORMAT and ckpt["model_sha256"] is None
    assert gl.GPTConfig.from_dict(ckpt["config"]) == CFG
    assert "sampler" not in ckpt["rng"]
    if name == "v0.1.0.pt":
        assert "loss_chunk" in raw["config"] and ckpt["train_config"] is None
    else:
        assert gl.TrainConfig.from_dict(ckpt["train_config"]) == _run_config()
    assert ckpt["history"]["train_loss"] == RECORDED_TRAIN


@pytest.mark.parametrize("name", OLD_FILES)
def test_an_old_checkpoint_loads_its_weights_and_resumes(name, tmp_path):
    raw = torch.load(OLD / name, weights_only=True)
    model = gl.Model5(gl.checkpoint_config(OLD / name))
    gl.load_checkpoint(OLD / name, model)
    for k, v in raw["model"].items():
        assert torch.equal(model.state_dict()[k], v), k
    h = gl.train(model, TOKENS, TOKENS[:50], _run_config(steps=5), progress=False, resume_from=OLD / name,
                 checkpoint_path=tmp_path / "now.pt")
    assert h.train_loss[:3] == RECORDED_TRAIN and len(h.train_loss) == 5
    assert gl.read_checkpoint(tmp_path / "now.pt")["format"] == ck.CHECKPOINT_FORMAT  # saved again in today's layout


def test_a_resumed_format1_run_continues_as_an_unbroken_run_of_today():
    """The stored run drew the batches today's code draws (the start table follows from the seed): resumed to step 5,
    it gives the losses of an unbroken run. Another CPU sums in another order, hence the tolerance."""
    model = gl.Model5(CFG)
    resumed = gl.train(model, TOKENS, TOKENS[:50], _run_config(steps=5), progress=False,
                       resume_from=OLD / "format1.pt")
    torch.manual_seed(0)
    unbroken = gl.train(gl.Model5(CFG), TOKENS, TOKENS[:50], _run_config(steps=5), progress=False)
    assert resumed.train_loss == pytest.approx(unbroken.train_loss, rel=1e-5)


def test_a_format2_checkpoint_is_upgraded_keeps_its_checksum_and_resumes(tmp_path):
    """Format 2 (before the run's plan was recorded): read with its checksum verified, ``plan`` None, and resumed
    like an unbroken run of today's code."""
    raw = torch.load(OLD / "format2.pt", weights_only=True)
    assert raw["format"] == "gpt_lesson-checkpoint-2" and "plan" not in raw
    ckpt = gl.read_checkpoint(OLD / "format2.pt")
    assert ckpt["format"] == ck.CHECKPOINT_FORMAT and ckpt["plan"] is None
    assert ckpt["model_sha256"] == raw["model_sha256"] == ck.weights_sha256(ckpt["model"])
    assert ckpt["history"]["train_loss"] == RECORDED_TRAIN
    resumed = gl.train(gl.Model5(CFG), TOKENS, TOKENS[:50], _run_config(steps=5), progress=False,
                       resume_from=OLD / "format2.pt", checkpoint_path=tmp_path / "now.pt")
    torch.manual_seed(0)
    unbroken = gl.train(gl.Model5(CFG), TOKENS, TOKENS[:50], _run_config(steps=5), progress=False)
    assert resumed.train_loss == pytest.approx(unbroken.train_loss, rel=1e-5)
    assert gl.read_checkpoint(tmp_path / "now.pt")["plan"]["start_step"] == 3


def test_an_unknown_format_is_refused(tmp_path):
    torch.save({"format": "gpt_lesson-checkpoint-99", "config": {}}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="not a gpt_lesson checkpoint"):
        gl.read_checkpoint(tmp_path / "future.pt")
    with pytest.raises(ValueError, match="unknown checkpoint format"):
        ck.upgrade({"format": "gpt_lesson-checkpoint-99"})


def _saved(tmp_path, cfg: gl.GPTConfig = CFG) -> Path:
    torch.manual_seed(0)
    return gl.save_checkpoint(tmp_path / "m.pt", gl.Model5(cfg), None, 0)


def test_a_checkpoint_carries_the_checksum_of_its_weights(tmp_path):
    ckpt = gl.read_checkpoint(_saved(tmp_path))
    assert ckpt["model_sha256"] == ck.weights_sha256(ckpt["model"]) and len(ckpt["model_sha256"]) == 64
    changed = {k: v.clone() for k, v in ckpt["model"].items()}
    changed["transformer.wpe.weight"][0, 0] += 1e-3
    assert ck.weights_sha256(changed) != ckpt["model_sha256"]


def test_one_flipped_byte_inside_a_tensor_is_an_error_naming_the_file(tmp_path):
    path = _saved(tmp_path)
    weights = gl.read_checkpoint(path)["model"]["transformer.wpe.weight"]
    data = bytearray(path.read_bytes())
    at = data.find(weights.numpy().tobytes())  # the tensor's bytes are stored as they are (zip, no compression)
    assert at > 0
    data[at + 17] ^= 0x01
    path.write_bytes(bytes(data))
    torch.load(path, weights_only=True)  # torch itself notices nothing
    with pytest.raises(ValueError, match=r"m\.pt' is damaged"):
        gl.read_checkpoint(path)
    with pytest.raises(ValueError, match="damaged"):
        gl.load_checkpoint(path, gl.Model5(CFG))


def test_a_config_that_changes_the_output_is_refused_naming_the_field(tmp_path):
    path = _saved(tmp_path)
    for field, value in [("scale_logits", True), ("log_softmax_output", True), ("gelu_approximate", "tanh"),
                         ("ln_eps", 1e-6), ("n_head", 4)]:
        other = gl.Model5(gl.GPTConfig(**{**CFG.to_dict(), field: value}))
        with pytest.raises(ValueError, match=rf"{field}: checkpoint .* vs model {value!r}"):
            gl.load_checkpoint(path, other)


def test_dropout_or_init_differences_load_with_one_line(tmp_path, capsys):
    path = _saved(tmp_path)
    model = gl.Model5(gl.GPTConfig(**{**CFG.to_dict(), "dropout": 0.1, "gpt2_init": True}))
    gl.load_checkpoint(path, model)
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "dropout=0.1 (checkpoint: 0.0)" in out[0] and "gpt2_init=True" in out[0]
    gl.load_checkpoint(path, model, verbose=False)
    assert capsys.readouterr().out == ""
    gl.load_checkpoint(path, gl.Model5(CFG))  # the same config: nothing to say
    assert capsys.readouterr().out == ""


def test_global_switches_are_restored_after_training_scope():
    matmul = torch.backends.cuda.matmul
    before = matmul.allow_tf32
    with gl.tf32_matmuls(torch.device("cuda")):  # the flags can be set without a GPU
        assert matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert matmul.allow_tf32 == before
    with gl.tf32_matmuls("cpu"):
        assert matmul.allow_tf32 == before  # nothing on a CPU
