"""Device choice, the autocast dtype per GPU generation, the runtime line."""

import pytest
import torch

from gpt_lesson import autocast_dtype, choose_preset, describe_runtime, in_colab, pick_device

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")


@no_gpu
def test_auto_is_cpu_without_a_gpu():
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device(None) == torch.device("cpu")


def test_explicit_cpu():
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device(torch.device("cpu")) == torch.device("cpu")


@no_gpu
@pytest.mark.parametrize("name", ["cuda", "cuda:0"])
def test_cuda_without_a_gpu_explains_the_runtime_switch(name):
    with pytest.raises(RuntimeError) as err:
        pick_device(name)
    msg = str(err.value)
    assert "no CUDA GPU" in msg
    assert "Change runtime type" in msg


def test_auto_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")


def test_missing_gpu_index_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match="1 GPU"):
        pick_device("cuda:3")


def test_cpu_trains_in_fp32():
    assert autocast_dtype("cpu") is None
    assert autocast_dtype(torch.device("cpu")) is None


@pytest.mark.parametrize(
    "capability,dtype",
    [((7, 5), torch.float16), ((6, 0), torch.float16), ((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16)],
    ids=["T4", "P100", "A100", "H100"],
)
def test_gpu_dtype_follows_compute_capability(monkeypatch, capability, dtype):
    seen = []

    def capability_of(device=None):
        seen.append(device)
        return capability

    monkeypatch.setattr(torch.cuda, "get_device_capability", capability_of)
    assert autocast_dtype(torch.device("cuda")) == dtype
    assert seen  # it asked the GPU, not a guess


def test_describe_runtime_on_cpu_mentions_float32():
    line = describe_runtime("cpu")
    assert "float32" in line
    assert "CPU" in line


def test_colab_is_detected_from_the_environment(monkeypatch):
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "google.colab", raising=False)
    assert not in_colab()
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab-20250101")
    assert in_colab()
    assert "Change runtime type" in describe_runtime("cpu")  # the hint is shown in Colab only


def test_choose_preset_by_device():
    assert choose_preset("cpu")[0] == "cpu"
    assert choose_preset(torch.device("cuda"))[0] == "model5"
