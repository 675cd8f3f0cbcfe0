"""``python -m gpt_lesson``: help, a whole tiny run, resuming it, and clear errors for bad input.

Every run passes ``--out`` inside tmp_path (the default would be ``runs/<date-time>``).
"""

import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
import torch  # noqa: E402

from gpt_lesson import LESSON_PROMPT, checkpoint_config, preset, read_checkpoint, train_config  # noqa: E402
from gpt_lesson.cli import main  # noqa: E402

FAST = ["--offline", "--no-progress", "--sample-tokens", "5", "--eval-batches", "1"]


def metrics(run_dir):
    return json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))


def test_help_runs_as_a_module():
    proc = subprocess.run([sys.executable, "-m", "gpt_lesson", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    for flag in ("--preset", "--resume", "--steps", "--offline", "--out"):
        assert flag in proc.stdout


def test_tiny_run_end_to_end_then_resume(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--eval-every", "2", "--batch-size", "2", "--out", str(run), *FAST]
    assert main([*args, "--steps", "4"]) == 0
    out = capsys.readouterr().out
    assert "preset: tiny" in out and "float32" in out

    m = metrics(run)
    assert m["preset"] == "tiny" and m["batch_size"] == 2 and m["seq_len"] == preset("tiny").context_length
    assert len(m["history"]["train_loss"]) == 4
    assert m["history"]["eval_steps"] == [0, 2, 4]
    assert (run / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    samples = (run / "samples.txt").read_text(encoding="utf-8")
    assert "--- before training ---" in samples and "--- after training ---" in samples
    assert samples.count(LESSON_PROMPT) == 2
    assert read_checkpoint(run / "checkpoint.pt")["step"] == 4
    assert checkpoint_config(run / "checkpoint.pt") == preset("tiny")
    first = m["history"]["train_loss"]

    # Continue the same run to 6 steps.
    assert main([*args, "--resume", str(run / "checkpoint.pt"), "--steps", "6"]) == 0
    capsys.readouterr()
    m = metrics(run)
    assert len(m["history"]["train_loss"]) == 6
    assert m["history"]["train_loss"][:4] == first
    assert m["history"]["eval_steps"] == [0, 2, 4, 6]
    assert read_checkpoint(run / "checkpoint.pt")["step"] == 6
    assert "before training" not in (run / "samples.txt").read_text(encoding="utf-8")

    # Resuming to fewer steps than the checkpoint has done is an input error, not a traceback.
    assert main([*args, "--resume", str(run / "checkpoint.pt"), "--steps", "5"]) == 2
    assert "step 6" in capsys.readouterr().err


def test_ctrl_c_saves_the_run_and_prints_the_command_that_continues_it(tmp_path, capsys, monkeypatch):
    from gpt_lesson import TrainStep

    args = ["--preset", "tiny", "--eval-every", "2", "--batch-size", "2", *FAST]
    assert main([*args, "--steps", "5", "--out", str(tmp_path / "whole")]) == 0
    whole = metrics(tmp_path / "whole")["history"]

    real, calls = TrainStep.__call__, []

    def interrupted(self, x, y):
        calls.append(1)
        if len(calls) == 4:  # Ctrl-C during the fourth step: three are done
            raise KeyboardInterrupt
        return real(self, x, y)

    monkeypatch.setattr(TrainStep, "__call__", interrupted)
    run = tmp_path / "run"
    capsys.readouterr()
    assert main([*args, "--steps", "5", "--out", str(run)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"interrupted at step 3; continue with: python -m gpt_lesson --resume {run / 'checkpoint.pt'}"
    assert read_checkpoint(run / "checkpoint.pt")["step"] == 3 and not (run / "metrics.json").exists()

    monkeypatch.setattr(TrainStep, "__call__", real)
    assert main([*args, "--resume", err[-1].split("--resume ")[1], "--steps", "5", "--out", str(run)]) == 0
    capsys.readouterr()
    resumed = metrics(run)["history"]
    assert resumed["train_loss"] == whole["train_loss"] and resumed["test_loss"] == whole["test_loss"]


def test_resume_keeps_the_presets_batch_shape(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--eval-every", "100", "--out", str(run), *FAST]
    assert main(["--preset", "tiny", "--steps", "2", *args]) == 0
    before = metrics(run)
    assert before["batch_size"] == train_config("tiny").batch_size
    assert before["train_config"] == train_config("tiny", steps=2, eval_every=100, eval_batches=1).to_dict()
    assert main(["--resume", str(run / "checkpoint.pt"), "--steps", "3", *args]) == 0
    capsys.readouterr()
    after = metrics(run)
    assert (after["batch_size"], after["seq_len"]) == (before["batch_size"], before["seq_len"])
    assert after["history"]["tokens_seen"] == 3 * before["batch_size"] * before["seq_len"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without a GPU")
def test_cuda_without_a_gpu_is_an_input_error(tmp_path, capsys):
    assert main(["--device", "cuda", "--preset", "tiny", "--out", str(tmp_path / "run"), *FAST]) == 2
    err = capsys.readouterr().err
    assert "no CUDA GPU" in err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_resume_from_a_file_that_is_not_a_checkpoint(tmp_path, capsys):
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    assert main(["--resume", str(bogus), "--out", str(tmp_path / "run"), *FAST]) == 2
    assert "not a gpt_lesson checkpoint" in capsys.readouterr().err
    assert main(["--resume", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "run"), *FAST]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_zero_steps_is_an_input_error(tmp_path, capsys):
    assert main(["--preset", "tiny", "--steps", "0", "--out", str(tmp_path / "run"), *FAST]) == 2
    assert "steps" in capsys.readouterr().err


def test_unknown_preset_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--preset", "huge", "--out", str(tmp_path / "run")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "huge" in err and "tiny" in err


@pytest.mark.parametrize(
    "bad, words",
    [(["--batch-size", "0"], "batch_size"), (["--seq-len", "0"], "seq_len"), (["--eval-batches", "0"], "eval_batches"),
     (["--grad-clip", "-1"], "grad_clip"), (["--lr", "nan"], "lr"), (["--seq-len", "33"], "context_length"),
     (["--sample-tokens", "-1"], "sample-tokens")],
)
def test_bad_numbers_end_in_one_line_before_any_work(tmp_path, capsys, bad, words):
    assert main(["--preset", "tiny", "--out", str(tmp_path / "run"), *FAST, *bad]) == 2
    captured = capsys.readouterr()
    assert words in captured.err and captured.err.startswith("error: ") and captured.err.count("\n") == 1
    assert captured.out == ""  # nothing was loaded or built: the book line never printed
    assert not (tmp_path / "run").exists()


def test_bad_out_folders_are_refused(tmp_path, capsys):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert main(["--preset", "tiny", "--out", str(a_file), *FAST]) == 2
    assert "is a file" in capsys.readouterr().err
    assert main(["--preset", "tiny", "--out", str(a_file / "run"), *FAST]) == 2
    assert "under a file" in capsys.readouterr().err


def test_an_existing_run_is_not_replaced_without_resume_or_overwrite(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--steps", "1", "--out", str(run), *FAST]
    assert main(args) == 0
    before = (run / "checkpoint.pt").read_bytes()
    capsys.readouterr()
    assert main(args) == 2
    assert "--resume" in capsys.readouterr().err
    assert (run / "checkpoint.pt").read_bytes() == before
    assert main([*args, "--overwrite", "--seed", "2"]) == 0
    assert (run / "checkpoint.pt").read_bytes() != before


def test_resume_with_another_seed_is_one_line_and_a_new_lr_is_recorded(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--eval-every", "100", "--out", str(run), *FAST]
    assert main([*args, "--steps", "2"]) == 0
    capsys.readouterr()
    assert main([*args, "--resume", str(run / "checkpoint.pt"), "--steps", "3", "--seed", "5"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot resume") and "seed: checkpoint 1337 vs now 5" in err and err.count("\n") == 1
    assert main([*args, "--resume", str(run / "checkpoint.pt"), "--steps", "3", "--lr", "0.0005"]) == 0
    assert metrics(run)["train_config"]["lr"] == 0.0005
    assert read_checkpoint(run / "checkpoint.pt")["train_config"]["lr"] == 0.0005


def test_every_train_config_field_is_a_flag_with_its_help_and_default():
    """One source: the flags are made from TrainConfig's fields, with the field's help and default."""
    import dataclasses

    from gpt_lesson import TrainConfig
    from gpt_lesson.cli import build_parser

    text = build_parser().format_help().replace("\n", " ")
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        assert flag in text, flag
        first_words = " ".join(f.metadata["help"].split()[:3])
        assert first_words in " ".join(text.split()), (flag, first_words)


def test_the_training_practice_switches_are_settable_and_recorded(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--steps", "4", "--eval-every", "2", "--out", str(run), *FAST,
            "--warmup-steps", "2", "--schedule", "cosine", "--min-lr-ratio", "0.2", "--decay-matrices-only",
            "--grad-clip", "1.0", "--sampler", "epoch", "--loss-chunk", "16", "--no-amp"]
    assert main(args) == 0
    capsys.readouterr()
    tc = metrics(run)["train_config"]
    switches = (tc["warmup_steps"], tc["schedule"], tc["min_lr_ratio"], tc["decay_matrices_only"])
    assert switches == (2, "cosine", 0.2, True)
    assert (tc["grad_clip"], tc["sampler"], tc["loss_chunk"], tc["amp"]) == (1.0, "epoch", 16, False)
    lr = metrics(run)["history"]["lr"]
    assert len(lr) == 4 and lr[0] < lr[1] and lr[-1] == pytest.approx(0.2 * tc["lr"])
    assert read_checkpoint(run / "checkpoint.pt")["train_config"] == tc


def test_the_run_says_how_much_of_its_sample_was_copied(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--preset", "tiny", "--steps", "2", "--eval-every", "2", "--out", str(run), *FAST,
                 "--sample-tokens", "40"]) == 0
    out = capsys.readouterr().out
    m = metrics(run)["memorization"]
    assert m["n"] == 8 and 0 <= m["train"]["share"] <= 1 and 0 <= m["test"]["share"] <= 1
    assert "copied from the training part" in out and m["summary"] in (run / "samples.txt").read_text(encoding="utf-8")
    assert main(["--preset", "tiny", "--steps", "2", "--out", str(tmp_path / "r2"), *FAST, "--sample-tokens", "3"]) == 0
    assert metrics(tmp_path / "r2")["memorization"] is None  # a sample shorter than 8 tokens has no 8-gram


def test_every_flag_of_the_old_hand_written_parser_is_still_accepted():
    """The flags made from the fields keep every flag the hand-written parser had (issue 19), with its meaning.

    A test and a lint: scripts/lint.py's cli_flags_kept (run by .ci/run before the tests) checks that ``--help``
    still lists each old flag, from the list compared here; this test checks what each one means."""
    import importlib.util
    from pathlib import Path

    from gpt_lesson.cli import build_parser

    spec = importlib.util.spec_from_file_location("lint", Path(__file__).resolve().parents[1] / "scripts" / "lint.py")
    lint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lint)
    old = ["--preset", "tiny", "--device", "cpu", "--steps", "7", "--batch-size", "4", "--grad-accum", "2",
           "--seq-len", "16", "--lr", "0.002", "--weight-decay", "0.1", "--eval-every", "3", "--eval-batches", "2",
           "--grad-clip", "0.5", "--seed", "3", "--checkpoint-every", "5", "--book", "829", "--raw", "--offline",
           "--out", "x", "--overwrite", "--resume", "c.pt", "--sample-tokens", "9", "--compile", "--no-progress"]
    assert {a for a in old if a.startswith("--")} == lint.OLD_CLI_FLAGS
    a = build_parser().parse_args(old)
    assert (a.preset, a.device, a.book, a.raw, a.offline, a.out, a.overwrite, a.resume, a.sample_tokens,
            a.progress) == ("tiny", "cpu", "829", True, True, "x", True, "c.pt", 9, False)
    assert (a.steps, a.batch_size, a.grad_accum, a.seq_len, a.lr, a.weight_decay, a.eval_every, a.eval_batches,
            a.grad_clip, a.seed, a.checkpoint_every, a.compile) == (7, 4, 2, 16, 0.002, 0.1, 3, 2, 0.5, 3, 5, True)
    given = build_parser().parse_args(["--steps", "7"])
    assert not hasattr(given, "batch_size")  # a flag not given keeps the preset's or the checkpoint's value
