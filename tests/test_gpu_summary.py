"""scripts/gpu_summary.py: the benchmark table from the JSON a GPU check leaves, and what it says is missing."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("gpu_summary", ROOT / "scripts" / "gpu_summary.py")
gpu_summary = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_summary)

HEAD = ["benchmark (python -m gpt_lesson.bench): one training step (forward+backward+AdamW) and one forward pass;",
        "  vs HF = HuggingFace GPT2LMHeadModel's step time / this one (above 1: faster than HF)"]
EAGER = {"device": "NVIDIA H200", "torch": "2.5.1", "dtype": "bfloat16", "batch_size": 8, "seq_len": 256,
         "ours": {"step_s": 0.0123, "step_tokens_per_s": 166504.1, "step_mfu": 0.412, "forward_s": 0.0041,
                  "forward_mfu": 0.405},
         "hf": {"step_s": 0.0150, "step_tokens_per_s": 136533.3, "step_mfu": None, "forward_s": 0.005},
         "ours_over_hf_step": 1.2195, "hf_over_hf_step": "n/a",
         "lesson_run": {"steps": 200, "wall_s": 12.34, "tokens_per_s": 98765.4},
         "generation_tokens_per_s": {"cache": 812.3, "no_cache": 301.9},
         "matmul_tflops": {"bf16": 612.345, "fp32": 48.9},
         "profile": {"matmul_share": 0.634, "total_s": 0.0211},
         "sweep": [{"batch_size": 4, "step_s": 0.007, "step_tokens_per_s": 146285.7, "step_mfu": 0.36},
                   {"batch_size": 32, "step_s": 0.041}]}


def test_bench_table_of_one_run_and_the_failed_other(tmp_path):
    (tmp_path / "bench-gpu-eager.json").write_text(json.dumps(EAGER), encoding="utf-8")
    (tmp_path / "bench-gpu-compile.txt").write_text("compiling...\nRuntimeError: " + "x" * 200 + "\n",
                                                    encoding="utf-8")
    assert gpu_summary.bench(tmp_path) == HEAD + [
        "  NVIDIA H200  torch 2.5.1  bfloat16  B=8 T=256",
        "  run      model               step ms     tok/s    MFU  fwd ms fwd MFU  vs HF",
        "  eager    ours                   12.3   166,504  41.2%     4.1   40.5%  1.22x",
        "  eager    hf                     15.0   136,533 -%     5.0 -%      -",
        "  eager    lesson 200 batches: 12.3 s, 98,765 tok/s; generation 812 tok/s cached vs 302; "
        "matmul ceiling bf16 612 TFLOP/s, fp32 48.9 TFLOP/s; profile: matmuls 63% of 0.021 s",
        "  eager    sweep B=4    step 7.0 ms, 146,286 tok/s, MFU 36.0%",
        "  eager    sweep B=32   step 41.0 ms, - tok/s, MFU -%",
        "  compile: no JSON (the run failed or timed out); last line: RuntimeError: " + "x" * (150 - 14),
    ]


def test_bench_two_runs_rows_before_extras(tmp_path):
    bare = {k: v for k, v in EAGER.items() if k not in ("lesson_run", "generation_tokens_per_s", "matmul_tflops",
                                                        "profile", "sweep", "hf", "hf_over_hf_step")}
    for name in ("eager", "compile"):
        (tmp_path / f"bench-gpu-{name}.json").write_text(json.dumps(bare), encoding="utf-8")
    lines = gpu_summary.bench(tmp_path)
    assert [ln[:20] for ln in lines[4:]] == ["  eager    ours     ", "  compile  ours     ",
                                             "  eager    no lesson", "  compile  no lesson"]
    assert lines[-1] == "  compile  no lesson run"


def test_bench_and_main_when_nothing_ran(tmp_path, capsys):
    (tmp_path / "bench-gpu-compile.txt").write_text("", encoding="utf-8")
    assert gpu_summary.bench(tmp_path) == HEAD + ["  eager: not run",
                                                  "  compile: no JSON (the run failed or timed out); last line: -"]
    assert gpu_summary.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "notebooks: no notebooks-report.json" in out and out.rstrip().endswith("steps: no steps.tsv")
