"""Watching a run learn: the shape of a sample and the extraction probe, recorded by the Trainer at every evaluation."""

import json

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson.cli import main

CFG = gl.GPTConfig(context_length=32, n_layer=1, n_head=2, n_embd=32)


@pytest.fixture(scope="module")
def book():
    tokens = gl.encode(gl.clean_text(gl.load_book(offline=True, verbose=False).text))[:20_000]
    return gl.tail_split(tokens, 0.9)


def _watch(book, **kw):
    return gl.Watch.of(*book, context_length=CFG.context_length, sample_tokens=20, n=4, **kw)


def _config(**kw):
    return gl.train_config("tiny", steps=4, eval_every=2, eval_batches=1, **kw)


def test_a_watch_records_at_every_evaluation_and_leaves_training_alone(book):
    torch.manual_seed(0)
    plain = gl.train(gl.Model5(CFG), *book, _config(), progress=False)
    torch.manual_seed(0)
    watched = gl.train(gl.Model5(CFG), *book, _config(), progress=False, watch=_watch(book))
    assert watched.train_loss == plain.train_loss and watched.test_loss == plain.test_loss
    assert [r["step"] for r in watched.learning] == watched.eval_steps == [0, 2, 4]
    r = watched.learning[-1]
    assert 0 <= r["greedy"]["likeness"] <= 1 and 0 <= r["sampled"]["likeness"] <= 1
    assert 0 <= r["reproduced_train"] <= 16 and 0 <= r["reproduced_test"] <= 16  # a quarter / a half of 32
    assert plain.learning == []


def test_a_resumed_run_records_what_an_unbroken_run_records(book, tmp_path):
    torch.manual_seed(0)
    unbroken = gl.train(gl.Model5(CFG), *book, _config(), progress=False,
                        watch=_watch(book))
    torch.manual_seed(0)
    gl.train(gl.Model5(CFG), *book, _config(), progress=False, watch=_watch(book), stop_after=2,
             checkpoint_path=tmp_path / "c.pt")
    resumed = gl.train(gl.Model5(CFG), *book, _config(), progress=False, watch=_watch(book),
                       resume_from=tmp_path / "c.pt")
    assert resumed.learning == unbroken.learning


def test_the_summary_line_reads_the_last_record():
    records = [{"step": 500, "greedy": {"likeness": 0.5}, "sampled": {"likeness": 0.81}, "reproduced_train": 3.21,
                "reproduced_test": 1.06}]
    assert gl.learning_summary(records) == ("after 500 steps: the sample's shape is 0.81 of the book's (greedy: 0.50); "
                                            "training text reproduced for 3.2 tokens on average, test text for 1.1")
    assert gl.learning_summary([]) == ""


def test_the_command_line_plots_what_it_watched_and_says_it_in_one_line(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--steps", "2", "--eval-every", "1", "--out", str(run), "--offline", "--no-progress",
            "--sample-tokens", "0", "--eval-batches", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1].startswith("after 2 steps: the sample's shape is ")
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert [r["step"] for r in metrics["history"]["learning"]] == [0, 1, 2]
    assert (run / "learning.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--no-watch", "--out", str(tmp_path / "plain")]) == 0
    assert not (tmp_path / "plain" / "learning.png").exists()
