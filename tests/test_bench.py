"""The benchmark runs end to end at tiny sizes and its figures are consistent with each other.

No timing is asserted: speed goals are read from the benchmark's output, not tested."""

import ast
import json
import math

import pytest
import torch

from gpt_lesson import bench
from gpt_lesson.model import GPTConfig, forward_flops


@pytest.fixture(scope="module")
def result():
    cfg = GPTConfig(vocab_size=512, context_length=32, n_layer=1, n_head=2, n_embd=32)
    lines = []
    opts = bench.BenchOptions(batch_size=2, seq_len=16, repeats=2, sweep=(1, 4), hf=True, gen_tokens=8,
                              lesson_steps=3, matmul_n=64, chunk_variant=7, n_tokens=1000, profile=True,
                              vocab_variant=7)  # 1000 tokens: one DataLoader epoch is shorter than the repeats
    res = bench.run(torch.device("cpu"), cfg, opts, log=lines.append)
    return res, lines


def res_cfg(res) -> GPTConfig:
    return GPTConfig.from_dict(res["config"])


def test_every_section_is_measured(result):
    res, lines = result
    for key in ("matmul_tflops", "ours", "ours_chunked", "ours_padded", "sweep", "sampler", "generation_tokens_per_s", "lesson_run",
                "profile"):
        assert key in res, key
    assert [s["batch_size"] for s in res["sweep"]] == [1, 4]
    assert res["lesson_run"]["steps"] == 3
    assert res["dtype"] == "float32" and res["torch"] == torch.__version__
    assert res["loss_chunk"] == 0 and "loss_chunk" not in res["config"]  # a training setting, not the model's
    assert len(lines) >= 6  # one printed line per measurement


def test_figures_are_consistent(result):
    res, _ = result
    ours = res["ours"]
    assert ours["step_tokens_per_s"] == pytest.approx(2 * 16 / ours["step_s"])
    assert ours["step_range_s"][0] <= ours["step_s"] <= ours["step_range_s"][1]
    assert 0 < ours["step_mfu"] and math.isfinite(ours["step_mfu"])
    s = res["sampler"]
    assert s["speedup_vs_loop"] == pytest.approx(s["loop_s"] / s["random_batch_s"])
    assert [r["batch_size"] for r in s["sizes"]] == [2, 64, 256] and s["sizes"][0]["loop_s"] == s["loop_s"]
    assert s["share_of_step"] == pytest.approx(s["random_batch_s"] / ours["step_s"])
    # MFU is taken against the higher of the two ceilings, measured before and after the models
    before, after = res["matmul_tflops_before_after"]["float32"]
    assert res["matmul_tflops"]["float32"] == max(before, after)
    assert ours["step_mfu"] == pytest.approx(3 * forward_flops(res_cfg(res), 2, 16) / ours["step_s"]
                                             / (1e12 * max(before, after)))
    prof = res["profile"]
    assert 0 < prof["matmul_share"] <= 1 and prof["top"]
    assert all(a["seconds"] >= b["seconds"] for a, b in zip(prof["top"], prof["top"][1:]))
    g = res["generation_tokens_per_s"]
    assert g["speedup"] == pytest.approx(g["cache"] / g["no_cache"]) and g["new_tokens"] == 8


def test_hf_comparison_or_clear_skip(result):
    res, lines = result
    try:
        import transformers  # noqa: F401
    except ImportError:
        assert any("transformers is not installed" in line for line in lines)
    else:
        assert res["ours_over_hf_step"] == pytest.approx(res["hf"]["step_s"] / res["ours"]["step_s"])
        assert len(res["ours_over_hf_step_per_round"]) == 2  # one ratio per round of turns


def test_cli_writes_json(tmp_path, capsys):
    out = tmp_path / "bench.json"
    rc = bench.main(["--preset", "tiny", "--batch-size", "2", "--seq-len", "16", "--repeats", "1", "--no-hf",
                     "--gen-tokens", "4", "--loss-chunk", "5", "--vocab-variant", "0", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert data["batch_size"] == 2 and data["seq_len"] == 16 and "hf" not in data
    assert data["loss_chunk"] == 5  # overrides the preset's TrainConfig, not the model config
    assert "ours_full_logits" in data and "ours_chunked" not in data  # ours chunks, so the variant is the plain path
    assert "ours_padded" not in data
    printed = capsys.readouterr().out
    assert "torch " + torch.__version__ in printed and "MFU" in printed


def test_cli_takes_the_presets_loss_chunk():
    _, opts = bench.options_from_args(bench._parser().parse_args(["--preset", "model5"]))
    assert opts.loss_chunk == 1024 and opts.batch_size == 16 and opts.sweep == ()
    _, opts = bench.options_from_args(bench._parser().parse_args(["--preset", "model5", "--loss-chunk", "0", "--sweep", "4,8"]))
    assert opts.loss_chunk == 0 and opts.sweep == (4, 8)


def test_no_function_in_the_package_is_longer_than_80_lines():
    import pathlib

    lengths = {}
    for path in pathlib.Path(bench.__file__).parent.glob("*.py"):
        for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lengths[f"{path.name}:{n.name}"] = n.end_lineno - n.lineno + 1
    assert len(lengths) > 100  # the whole package was read
    assert max(lengths.values()) <= 80, sorted(lengths.items(), key=lambda kv: -kv[1])[:3]
