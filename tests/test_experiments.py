"""gpt_lesson.experiments: the compact vocabulary, the corpus, runs in stretches, the registry, run_all, the CLI."""

import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson import experiments as ex

MICRO = ex.Setup(
    model=gl.GPTConfig(context_length=16, n_layer=1, n_head=2, n_embd=16, gpt2_init=True),
    train=gl.TrainConfig(batch_size=4, seq_len=16),
    epochs=0.002, evals_per_epoch=1000, seeds=(0, 1), one_batch_draws=8,
)


@pytest.fixture(scope="module")
def raw():
    return gl.load_book(offline=True, verbose=False).text


@pytest.fixture(scope="module")
def corpus(raw):
    return ex.gulliver(raw, 16)


def test_vocab_round_trip_and_a_missing_id_names_the_fix():
    v = ex.Vocab.of(torch.tensor([50, 7, 7, 300]), torch.tensor([9]))
    assert v.ids.tolist() == [7, 9, 50, 300] and len(v) == 4
    t = torch.tensor([300, 7, 9, 50, 7])
    assert v.encode(t).tolist() == [3, 0, 1, 2, 0]
    assert torch.equal(v.decode(v.encode(t)), t)
    with pytest.raises(ValueError, match=r"1 tokens are not in this vocabulary .*Vocab.of"):
        v.encode(torch.tensor([7, 8]))


def test_the_corpus_is_the_books_tokens_split_as_the_lesson(corpus, raw):
    gpt2 = gl.encode(gl.clean_text(raw))
    assert torch.equal(corpus.vocab.decode(corpus.tokens), gpt2)
    assert corpus.tail_n == len(gl.tail_split(gpt2, 0.9)[0])
    assert corpus.part4 == 103_622  # notebook 03's count
    licence = gl.decode(corpus.vocab.decode(corpus.course_licence))
    assert licence.startswith("*** END OF THE PROJECT GUTENBERG EBOOK") and "\r" not in licence
    n_raw = len(gl.encode(raw))
    assert abs(len(corpus.course_book) + len(corpus.course_licence) - (n_raw - int(0.9 * n_raw))) < 0.1 * n_raw * 0.1
    assert len(corpus.vocab) < 11_000  # of GPT-2's 50,257


def test_setup_sizes_runs_by_tokens():
    s = ex.Setup(epochs=2.0, evals_per_epoch=4)
    assert s.batch_tokens == 16 * 64
    assert s.steps_for(102_400) == 200
    assert s.eval_steps(102_400) == [25, 50, 75, 100, 125, 150, 175, 200]
    assert s.with_vocab(123).model.vocab_size == 123 and s.model.vocab_size == 50257
    assert ex.setup(quick=True).seeds == (0, 1) and len(ex.setup().seeds) >= 3


def test_a_run_in_stretches_is_one_unbroken_run(corpus):
    s = MICRO.with_vocab(len(corpus.vocab))
    test = gl.EvalSet.windows(corpus.tokens[-2000:], 16, name="t")
    run = ex.train_run(corpus.tokens[:20_000], [test], s, name="x", seed=3, eval_steps=[2, 3, 6], sampler="epoch",
                       keep_windows=True)
    torch.manual_seed(3)
    model = gl.Model5(s.model)
    gl.train(model, corpus.tokens[:20_000], None, s.train.with_overrides(steps=6, seed=3, sampler="epoch"),
             progress=False)
    for a, b in zip(model.state_dict().values(), run.model.state_dict().values()):
        assert torch.equal(a, b)
    assert run.steps == [2, 3, 6] and run.tokens == [128, 192, 384] and len(run.windows["t"]) == 3
    assert run.loss["t"][-1] == pytest.approx(gl.window_losses(model, test).mean().item(), abs=1e-6)


def test_difference_and_its_seed_spread():
    d = ex.difference([1.0, 2.0, 3.0], [0.0, 1.5, 2.0], paired=True)
    assert d.difference == pytest.approx(2.5 / 3)
    assert d.spread == pytest.approx(torch.tensor([1.0, 0.5, 1.0]).std().item())
    u = ex.difference([1.0, 2.0], [5.0, 5.0], paired=False)
    assert u.difference == -3.5 and u.spread == pytest.approx(torch.tensor([1.0, 2.0]).std().item())
    assert u.beyond_noise and not ex.difference([1.0, 2.0], [1.1, 2.2], paired=False).beyond_noise
    assert "no finding" in str(ex.difference([1.0, 2.0], [1.1, 2.2], paired=False)) and "beyond" in str(u)


def _shortened(raw: str) -> str:
    """The raw file with most of each part and of the licence cut out (header, Part IV heading, end marker kept)."""
    part4 = re.search(r"^PART IV\. A VOYAGE", raw, re.MULTILINE).start()
    end = gl.book.END_RE.search(raw).start()
    return raw[:40_000] + "\r\n\r\n" + raw[part4 : part4 + 40_000] + "\r\n\r\n" + raw[end - 40_000 : end + 3_000]


def test_run_all_reports_facts_and_writes_a_run_folder(raw, tmp_path):
    micro = dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200)  # ~4 steps of the shortened book
    results = ex.run_all(micro, raw_text=_shortened(raw), book=str(tmp_path / "missing.txt"), progress=None)
    facts = results.facts()
    assert set(facts) == set(ex.EXPERIMENTS) == {"samplers", "one_batch", "splits", "licence", "shift", "practice"}
    assert all(line.endswith((": True", ": False")) for lines in facts.values() for line in lines)
    assert results.other.startswith("book ")
    runs = results["samplers"].runs
    assert len(runs["epoch"]) == 2 and len(runs["random"][0].steps) >= 2
    assert {r.steps[-1] for rs in runs.values() for r in rs} == {results["splits"].block_runs[0].steps[-1]}
    assert 0 < results["licence"].licence_share < 0.5
    one = results["one_batch"]  # the course's batch, 16 x 256 tokens, from stretches of consecutive test windows
    assert one.course_batch == (16, 256) and one.course_batch_tokens == 4096 and len(one.report()) == 2
    assert one.sqrt_rule == pytest.approx(one.one_batch_std / 8) and one.course_std < one.one_batch_std  # 4x16 tokens
    practice = results["practice"]
    assert set(practice.vs_course) == {"warmup + cosine", "clip at 1.0", "decay on matrices only", "all three"}
    assert len(practice.runs) == 4 * len(micro.seeds) and all(line.endswith(": True") for line in practice.facts())
    assert practice.final["course"] == results["samplers"].final["random"]  # the course's runs are the samplers'
    assert practice.runs[0].lr[0] < max(practice.runs[0].lr)  # warmup + cosine: its lr was recorded step by step
    folder = results.write(tmp_path / "run")
    data = json.loads((folder / "results.json").read_text())
    assert data["samplers"]["final"].keys() == {"random", "epoch", "without_replacement"}
    assert data["splits"]["bias"].keys() == {"difference", "spread", "seeds", "beyond_noise"}
    assert "tail bias" in (folder / "table.md").read_text()
    assert all((folder / f"{n}.png").stat().st_size > 1000 for n in ("samplers", "one_batch", "differences"))
    est = ex.t4_estimate(results.all_runs(), results.seconds, ex.train_flops(results.all_runs(), results.setup))
    assert est["t4_s"] > 0 and est["steps"] == sum(r.steps[-1] for r in results.all_runs())


def test_an_experiment_needs_what_it_reads():
    with pytest.raises(ValueError, match=r"one_batch needs the results of \['samplers'\]"):
        ex.measure("one_batch", None, {})
    with pytest.raises(ValueError, match="unknown experiment 'nope'; registered: samplers"):
        ex.measure("nope", None, {})


def test_adding_an_experiment_is_one_registered_class():
    """A new question: one class with @register; run_all, the report, the facts and the JSON pick it up."""
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass
    class Budget(ex.Experiment):
        name: ClassVar[str] = "budget_test"
        needs: ClassVar[tuple[str, ...]] = ("samplers",)
        steps: int

        @classmethod
        def measure(cls, ctx, done):
            return cls(done["samplers"].runs["random"][0].steps[-1])

        def report(self):
            return [f"steps per run: {self.steps}"]

        def facts(self):
            return [f"runs take at least one step: {self.steps >= 1}"]

    ex.register(Budget)
    try:
        ctx = ex.context(_shortened(gl.load_book(offline=True, verbose=False).text),
                         dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200))
        done = {}
        ex.measure("samplers", ctx, done)
        budget = ex.measure("budget_test", ctx, done)
        assert budget.facts() == ["runs take at least one step: True"] and budget.to_dict() == {"steps": budget.steps}
    finally:
        del ex.EXPERIMENTS["budget_test"]


def test_t4_estimate_speeds_up_training_only():
    runs = [ex.Run("r", "random", 0, steps=[100], tokens=[6400], loss={}, train_seconds=50.0)]
    flop_bound = ex.t4_estimate(runs, 80.0, 1e12, step_overhead_s=0.01, t4_flops=1e12, efficiency=0.5)  # 2 s > 1 s
    assert flop_bound["t4_s"] == pytest.approx(2.0 + 30.0)  # the 30 s outside training stay as measured
    assert flop_bound["cpu_flops_per_s"] == pytest.approx(1e12 / 50.0)
    overhead_bound = ex.t4_estimate(runs, 80.0, 1e12, step_overhead_s=0.05, t4_flops=1e12, efficiency=0.5)  # 5 s > 2 s
    assert overhead_bound["t4_train_s"] == pytest.approx(5.0) and overhead_bound["other_s"] == pytest.approx(30.0)


def test_importing_the_package_does_not_import_matplotlib():
    code = "import sys, gpt_lesson, gpt_lesson.experiments; print('matplotlib' in sys.modules)"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "False"


def test_the_command_line_writes_a_run_folder(raw, tmp_path, monkeypatch, capsys):
    import gpt_lesson.experiments.__main__ as cli

    micro = dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200)
    monkeypatch.setattr(cli, "setup", lambda quick, device: micro)
    monkeypatch.setattr(ex, "load_book", lambda *a, **k: type("B", (), {"text": _shortened(raw)})())
    cli.main(["--out", str(tmp_path / "cli"), "--quick"])
    out = capsys.readouterr().out
    assert "[samplers]" in out and "tail bias" in out and out.rstrip().endswith("cli")
    assert (tmp_path / "cli" / "results.json").is_file()
    with pytest.raises(SystemExit):
        cli.main(["--quick"])  # no --out
    assert "--out FOLDER is required" in capsys.readouterr().err
