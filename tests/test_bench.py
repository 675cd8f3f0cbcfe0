"""The benchmark runs end to end at tiny sizes and its figures are consistent with each other.

No timing is asserted: speed goals are read from the benchmark's output, not tested."""

import argparse
import dataclasses
import importlib.util
import json
import math
import re
from pathlib import Path

import pytest
import torch

from gpt_lesson import bench
from gpt_lesson.config import TrainConfig, add_flags
from gpt_lesson.model import GPTConfig, forward_flops

_spec = importlib.util.spec_from_file_location("lint", Path(__file__).resolve().parents[1] / "scripts" / "lint.py")
lint = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lint)


@pytest.fixture(scope="module")
def result():
    cfg = GPTConfig(vocab_size=512, context_length=32, n_layer=1, n_head=2, n_embd=32)
    lines = []
    opts = bench.BenchOptions(train=TrainConfig(batch_size=2, seq_len=16), repeats=2, sweep=(1, 4), hf=True,
                              gen_tokens=8, lesson_steps=3, matmul_n=64, chunk_variant=7, n_tokens=1000, profile=True,
                              vocab_variant=7)  # 1000 tokens: one DataLoader epoch is shorter than the repeats
    res = bench.run(torch.device("cpu"), cfg, opts, log=lines.append)
    return res, lines


def res_cfg(res) -> GPTConfig:
    return GPTConfig.from_dict(res["config"])


def test_every_section_is_measured(result):
    res, lines = result
    for key in ("matmul_tflops", "ours", "ours_chunked", "ours_padded", "sweep", "sampler", "generation_tokens_per_s",
                "lesson_run", "profile"):
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


@pytest.mark.slow  # ~15 s: the tiny preset measured end to end
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
    assert opts.train.loss_chunk == 1024 and opts.train.batch_size == 16 and opts.sweep == ()
    args = ["--preset", "model5", "--loss-chunk", "0", "--sweep", "4,8"]
    _, opts = bench.options_from_args(bench._parser().parse_args(args))
    assert opts.train.loss_chunk == 0 and opts.sweep == (4, 8)
    _, opts = bench.options_from_args(bench._parser().parse_args(["--preset", "experiment"]))
    assert opts.train == bench.train_config("experiment", batch_size=16, seq_len=256)  # its loss_chunk, 16x256


def test_no_option_redeclares_a_training_setting():
    """BenchOptions holds a TrainConfig instead of copies of its fields: one default per setting."""
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for cls in (bench.BenchOptions, bench.CommandOptions):
        assert not {f.name for f in dataclasses.fields(cls)} & train_fields, cls.__name__
    assert set(bench.TRAIN_FLAGS) <= train_fields
    with pytest.raises(TypeError, match="BenchOptions.train must be a TrainConfig"):
        bench.BenchOptions(train={"batch_size": 2})


def test_only_the_train_flags_of_train_config_are_flags():
    listed = set(re.findall(r"--[a-z][a-z-]*", bench._parser().format_help()))
    assert {"--batch-size", "--seq-len", "--loss-chunk", "--compile"} <= listed
    assert not {"--steps", "--lr", "--seed", "--amp", "--grad-accum"} & listed  # not read by the bench
    with pytest.raises(ValueError, match=r"include names \['batch_sise'\], which TrainConfig has no field for"):
        add_flags(argparse.ArgumentParser(), TrainConfig, include=("batch_sise",))


# Every flag of the parser that was written by hand before the flags were made from BenchOptions, CommandOptions
# and TrainConfig, with a value and the field value it meant then: (command line, field, value).
OLD_FLAGS = [
    (["--device", "cpu"], "device", "cpu"),
    (["--preset", "tiny"], "preset", "tiny"),
    (["--batch-size", "8"], "batch_size", 8),
    (["--seq-len", "128"], "seq_len", 128),
    (["--repeats", "5"], "repeats", 5),
    (["--sweep", "4,8,32"], "sweep", (4, 8, 32)),
    (["--sweep", ""], "sweep", ()),
    (["--loss-chunk", "0"], "loss_chunk", 0),
    (["--vocab-multiple", "64"], "vocab_multiple", 64),
    (["--compile"], "compile", True),
    (["--vocab-variant", "0"], "vocab_variant", 0),
    (["--chunk-variant", "0"], "chunk_variant", 0),
    (["--fused-adamw", "auto"], "fused_adamw", None),
    (["--fused-adamw", "on"], "fused_adamw", True),
    (["--fused-adamw", "off"], "fused_adamw", False),
    (["--no-hf"], "hf", False),
    (["--profile"], "profile", True),
    (["--gen-tokens", "50"], "gen_tokens", 50),
    (["--lesson-steps", "500"], "lesson_steps", 500),
    (["--threads", "2"], "threads", 2),
    (["--json", "out/bench.json"], "json", "out/bench.json"),
]


def test_every_old_flag_is_accepted_with_its_old_meaning():
    """A test and a lint: scripts/lint.py's bench_flags_kept (run by .ci/run before the tests) checks, without
    running a benchmark, that ``--help`` still lists every old flag (its list is the one compared here); this test
    checks what each one means."""
    assert {argv[0] for argv, _, _ in OLD_FLAGS} == lint.OLD_BENCH_FLAGS
    for argv, name, value in OLD_FLAGS:
        assert getattr(bench._parser().parse_args(argv), name) == value, argv


def test_no_flag_gives_what_the_old_command_line_gave():
    cfg, opts = bench.options_from_args(bench._parser().parse_args([]))
    old = TrainConfig(batch_size=16, seq_len=256, loss_chunk=1024, compile=False)
    assert opts == bench.BenchOptions(train=old, repeats=3, sweep=(), hf=True, fused_adamw=None, gen_tokens=200,
                                      lesson_steps=0, matmul_n=4096, profile=False, chunk_variant=1024,
                                      vocab_variant=64, n_tokens=200_000)
    assert opts == bench.BenchOptions()  # what the command line measures is what run() measures by default
    assert cfg == bench.preset("model5")
    cfg, opts = bench.options_from_args(bench._parser().parse_args(["--preset", "cpu"]))
    assert (opts.train.batch_size, opts.train.seq_len) == (16, 256) and cfg.context_length == 256  # not its 8x128


def test_flags_that_change_the_model_config():
    argv = ["--preset", "tiny", "--seq-len", "64", "--vocab-multiple", "64", "--loss-chunk", "5"]
    cfg, opts = bench.options_from_args(bench._parser().parse_args(argv))
    assert cfg == bench.preset("tiny", context_length=64, vocab_multiple=64)  # the context grows to --seq-len
    assert opts.train.loss_chunk == 5 and opts.train.seq_len == 64
    cfg, opts = bench.options_from_args(bench._parser().parse_args(["--preset", "tiny", "--seq-len", "none"]))
    assert cfg == bench.preset("tiny") and opts.train.seq_len is None  # none: the model's context


def test_run_takes_the_train_configs_settings():
    cfg = GPTConfig(vocab_size=64, context_length=8, n_layer=1, n_head=1, n_embd=8)
    b = bench.Bench.create(torch.device("cpu"), cfg, bench.BenchOptions(train=TrainConfig(batch_size=1), n_tokens=100),
                           log=lambda _: None)
    assert b.loss_chunk == 0 and b.res["loss_chunk"] == 0  # TrainConfig's
    assert b.seq_len == 8 and b.x.shape == (1, 8)  # seq_len none: the model's context
    too_long = bench.BenchOptions(train=TrainConfig(batch_size=1, seq_len=9), n_tokens=100)
    with pytest.raises(ValueError, match="seq_len=9 exceeds the model's context_length=8"):
        bench.Bench.create(torch.device("cpu"), cfg, too_long, log=lambda _: None)


def flag_fields() -> list[tuple[type, dataclasses.Field]]:
    """(class, field) of every flag: BenchOptions' and CommandOptions' fields with help, TrainConfig's TRAIN_FLAGS."""
    own = [(cls, f) for cls in (bench.BenchOptions, bench.CommandOptions) for f in dataclasses.fields(cls)
           if f.name != "train"]
    return own + [(TrainConfig, f) for f in dataclasses.fields(TrainConfig) if f.name in bench.TRAIN_FLAGS]


def test_one_source_every_flag_defaults_to_its_field():
    args = bench._parser().parse_args([])
    for cls, f in flag_fields():
        assert f.metadata.get("help"), f"{cls.__name__}.{f.name} has no help text, so no flag"
        if cls is TrainConfig:  # not given: not set, so the preset's TrainConfig keeps its value
            assert not hasattr(args, f.name), f.name
        else:
            assert getattr(args, f.name) == f.default, f.name


def test_help_lists_every_field_with_its_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal's width
    with pytest.raises(SystemExit) as e:
        bench._parser().parse_args(["--help"])
    assert e.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for _, f in flag_fields():
        assert f"--{f.name.replace('_', '-')}" in text, f.name
        assert " ".join(f.metadata["help"].split()) in text, f.name


@pytest.mark.parametrize("argv", [["--fused-adamw", "maybe"], ["--sweep", "a,b"], ["--batch-size", "x"],
                                  ["--preset", "huge"], ["--threads", "two"]])
def test_a_bad_value_is_an_argparse_error_naming_its_flag(argv, capsys):
    with pytest.raises(SystemExit) as e:
        bench._parser().parse_args(argv)
    assert e.value.code == 2
    assert f"argument {argv[0]}" in capsys.readouterr().err


@pytest.mark.parametrize("argv, field", [(["--batch-size", "0"], "batch_size"), (["--loss-chunk", "-1"], "loss_chunk")])
def test_a_setting_that_train_config_refuses_is_a_usage_error_before_any_work(argv, field, capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--preset", "tiny", *argv])
    assert e.value.code == 2
    captured = capsys.readouterr()
    assert f"TrainConfig.{field} must be" in captured.err and captured.out == ""
