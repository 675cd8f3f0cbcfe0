"""The run plan: every setting resolved once, every input checked once, the checkpoint read once."""

import json

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson.cli import main

CFG = gl.GPTConfig(vocab_size=64, context_length=16, n_layer=1, n_head=2, n_embd=16)
TOKENS = torch.arange(400) % 64


def _config(**kw) -> gl.TrainConfig:
    return gl.TrainConfig(**{**dict(steps=6, batch_size=4, eval_every=4, eval_batches=1, seed=3), **kw})


def test_the_plan_resolves_every_setting_of_the_run():
    c = _config(warmup_steps=2, schedule="cosine", grad_accum=2)
    plan = gl.RunPlan.build(CFG, c, TOKENS, TOKENS[:100], world_size=2, rank=1)
    assert plan.seq_len == CFG.context_length  # seq_len None: the model's context
    assert plan.lrs == tuple(c.lr_at(s) for s in range(6)) and plan.lrs[0] < plan.lrs[1]
    assert plan.eval_steps == (0, 4, 6)
    assert (plan.micro_batches, plan.micro_rows) == (2, 1) and plan.rows == slice(2, 4)
    assert plan.starts.shape == (6, 4)
    assert torch.equal(plan.starts, gl.batch_starts(400, 6, 4, 16, seed=3))  # the sampler's own table
    d = plan.to_dict()
    assert json.loads(json.dumps(d)) == d and d["micro_rows"] == 1 and d["eval_steps"] == [0, 4, 6]


def test_without_test_tokens_nothing_is_evaluated():
    assert gl.RunPlan.build(CFG, _config(), TOKENS).eval_steps == ()


@pytest.mark.parametrize("kw, build, words", [
    (dict(seq_len=17), {}, "context_length=16"),
    ({}, dict(world_size=3), "multiple of 3"),
    ({}, dict(world_size=2, rank=2), "rank must be in 0 … 1"),
    (dict(batch_size=4), dict(train_tokens=TOKENS[:10]), "train_tokens holds 10"),
])
def test_bad_inputs_are_refused_once_with_the_fix(kw, build, words):
    tokens = build.pop("train_tokens", TOKENS)
    with pytest.raises(ValueError, match=words):
        gl.RunPlan.build(CFG, _config(**kw), tokens, **build)


def test_ids_outside_the_vocabulary_are_refused_by_the_plan():
    with pytest.raises(ValueError, match="test_tokens: ids from 0 to 99"):
        gl.RunPlan.build(CFG, _config(), TOKENS, torch.arange(100))


def test_a_trainer_refuses_the_plan_of_another_model():
    plan = gl.RunPlan.build(CFG, _config(), TOKENS)
    other = gl.Model5(gl.GPTConfig(vocab_size=64, context_length=16, n_layer=2, n_head=2, n_embd=16))
    with pytest.raises(AssertionError, match="plan of this run"):
        gl.Trainer(plan, other, TOKENS)


def test_the_history_records_the_learning_rate_the_optimizer_used():
    c = _config(warmup_steps=3, schedule="cosine", min_lr_ratio=0.2)
    plan = gl.RunPlan.build(CFG, c, TOKENS)
    torch.manual_seed(0)
    trainer = gl.Trainer(plan, gl.Model5(CFG), TOKENS, progress=False)
    used = []
    trainer.step_fn.optimizer.register_step_pre_hook(lambda opt, *_: used.append(opt.param_groups[0]["lr"]))
    history = trainer.run()
    assert history.lr == used == list(plan.lrs)


def test_a_resume_reads_its_checkpoint_once(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    args = ["--preset", "tiny", "--eval-every", "2", "--batch-size", "2", "--out", str(run), "--offline",
            "--no-progress", "--sample-tokens", "0", "--eval-batches", "1"]
    assert main([*args, "--steps", "2"]) == 0
    loads = []
    real = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(a[0]) or real(*a, **kw))
    assert main([*args, "--steps", "3", "--resume", str(run / "checkpoint.pt")]) == 0
    assert len(loads) == 1
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["plan"]["start_step"] == 2 and metrics["plan"]["resumed_from"] == str(run / "checkpoint.pt")
    assert gl.read_checkpoint(run / "checkpoint.pt")["plan"]["steps"] == 3


def test_a_plan_refuses_a_checkpoint_of_another_config_before_any_work(tmp_path):
    torch.manual_seed(0)
    path = gl.save_checkpoint(tmp_path / "m.pt", gl.Model5(CFG), None, 0)
    other = gl.GPTConfig(vocab_size=64, context_length=16, n_layer=2, n_head=2, n_embd=16)
    with pytest.raises(ValueError, match="n_layer: checkpoint 1 vs model 2"):
        gl.RunPlan.build(other, _config(), TOKENS, checkpoint=path)
