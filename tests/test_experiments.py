"""gpt_lesson.experiments: the compact vocabulary, the corpus, runs in stretches, the registry (and the docs' list of
it), typed hand-offs between experiments, run_all, the CLI."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson import experiments as ex

DOCS = Path(__file__).resolve().parents[1] / "docs" / "experiments.md"
MICRO = ex.RunSpec(
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


def test_the_run_spec_sizes_runs_by_tokens():
    s = ex.RunSpec(epochs=2.0, evals_per_epoch=4)
    assert s.batch_tokens == 16 * 64
    assert s.steps_for(102_400) == 200
    assert s.eval_steps(102_400) == [25, 50, 75, 100, 125, 150, 175, 200]
    assert s.with_vocab(123).model.vocab_size == 123 and s.model.vocab_size == 50257
    assert ex.setup(quick=True).seeds == (0, 1) and len(ex.setup().seeds) >= 3
    changed = s.with_train(lr=5e-4)
    assert changed.train.lr == 5e-4 and changed.train.batch_size == s.train.batch_size and s.train.lr == 1e-3
    with pytest.raises(TypeError, match="unknown training setting"):
        s.with_train(learning_rate=5e-4)


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
    assert (run.sampler, run.seed, run.config.steps) == ("epoch", 3, 6)  # what it trained with, from its config
    assert run.loss["t"][-1] == pytest.approx(gl.window_losses(model, test).mean().item(), abs=1e-6)


def test_compare_is_the_verdict_helper_paired_by_seed():
    """The experiments' one rule is gl.verdict's: paired by seed, beyond when |mean d| > 2 std(d) (ddof 1), the same
    numbers as the seed spread the experiments printed before (torch's std of the per-seed differences)."""
    d = ex.compare("a - b", [1.0, 2.0, 3.0], [0.0, 1.5, 2.0], above="a is higher", below="a is lower")
    assert isinstance(d, gl.Verdict) and d.difference == pytest.approx(2.5 / 3) and d.n == 3
    assert d.noise == pytest.approx(torch.tensor([1.0, 0.5, 1.0], dtype=torch.float64).std().item())
    assert d.beyond and d.sign == 1  # |0.833| > 2 × 0.289
    assert str(d) == "a - b: +0.833 ± 0.289 nats (3 seeds): beyond the noise: a is higher"
    within = ex.compare("x - y", [1.0, 2.0, 3.0], [0.5, 2.2, 2.9], above="x is higher", below="x is lower")
    assert not within.beyond and within.sign == 0 and str(within).endswith("within the noise: no finding")
    assert ex.verdict_dict(d)["beyond"] is True and ex.verdict_dict(d)["sentence"] == str(d)
    with pytest.raises(ValueError, match="stand-in"):
        ex.compare("a - b", [1.0, float("nan")], [1.0, 2.0], above="up", below="down")


def test_every_experiment_answers_with_verdicts_and_states_no_direction_as_a_fact(micro_results):
    """Verdicts (report, differences) for what depends on the budget; facts only for what holds at any budget: no
    checked line states a direction."""
    results, _ = micro_results
    for name, e in results.experiments.items():
        for label, v in e.differences():
            assert isinstance(v, gl.Verdict) and v.measured, (name, label)
        sentences = [line for line in e.report() if re.search(r": (beyond|within) the noise: ", line)]
        assert sentences, f"{name} prints no verdict"
        for line in e.facts():
            assert line.endswith((": True", ": False")) and not re.search(
                r"\b(higher|lower|harder|easier|better|worse|raises|narrows|widens)\b", line), (name, line)


def _shortened(raw: str) -> str:
    """The raw file with most of each part and of the licence cut out (header, Part IV heading, end marker kept)."""
    part4 = re.search(r"^PART IV\. A VOYAGE", raw, re.MULTILINE).start()
    end = gl.book.END_RE.search(raw).start()
    return raw[:40_000] + "\r\n\r\n" + raw[part4 : part4 + 40_000] + "\r\n\r\n" + raw[end - 40_000 : end + 3_000]


MICRO_RUN = dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200)  # ~4 steps of the shortened book


@pytest.fixture(scope="module")
def micro_results(raw, tmp_path_factory):
    """run_all at the micro budget on the shortened book, with another "book" (a local file, no network)."""
    other = tmp_path_factory.mktemp("other") / "other.txt"
    other.write_text(raw[:50_000] + "\r\n\r\n" + raw[gl.book.END_RE.search(raw).start() :], encoding="utf-8")
    said = []
    results = ex.run_all(MICRO_RUN, raw_text=_shortened(raw), book=str(other), progress=said.append)
    return results, {"other": other, "said": said}


def test_run_all_measures_every_registered_experiment_and_writes_a_run_folder(micro_results, tmp_path):
    results, made = micro_results
    micro, other, said = MICRO_RUN, made["other"], made["said"]
    assert list(results.experiments) == list(ex.EXPERIMENTS)  # every registered one, in the registry's order
    for name, cls in ex.EXPERIMENTS.items():
        assert type(results[cls]) is cls and results[cls] is results.experiments[name] and results[cls].report()
    facts = results.facts()
    assert set(facts) == set(ex.EXPERIMENTS)
    assert all(line.endswith((": True", ": False")) for lines in facts.values() for line in lines)
    # other_book: Shift on the other book's own vocabulary, with the spec and the progress line but no corpus
    assert isinstance(results.other_book, ex.Shift) and results.other_book.book == str(other)
    assert results.other_book.report()[0].startswith(f"book {other}: first three quarters held out")
    assert said[-1] == f"shift: first three quarters -> last quarter, seed {micro.seeds[-1]}"
    runs = results[ex.Samplers].runs
    assert len(runs["epoch"]) == 2 and len(runs["random"][0].steps) >= 2
    assert {r.steps[-1] for rs in runs.values() for r in rs} == {results[ex.Splits].block_runs[0].steps[-1]}
    assert 0 < results[ex.Licence].licence_share < 0.5
    one = results[ex.OneBatch]  # the course's batch, 16 x 256 tokens, from stretches of consecutive test windows
    assert one.course_batch == (16, 256) and one.course_batch_tokens == 4096 and len(one.report()) == 3
    assert one.course_vs_ours.measured and one.course_vs_ours.n == sum(len(rows) for rows in one.bands)
    assert one.facts() == ["both batch shapes' spreads were measured at every evaluation of every seed: True"]
    licence = results[ex.Licence]
    assert licence.facts()[-1].endswith(": True")  # the whole part is its pieces' token-weighted mean
    assert one.sqrt_rule == pytest.approx(one.one_batch_std / 8) and one.course_std < one.one_batch_std  # 4x16 tokens
    practice = results[ex.Practice]
    assert set(practice.vs_course) == {"warmup + cosine", "clip at 1.0", "decay on matrices only", "all three"}
    assert len(practice.runs) == 4 * len(micro.seeds) and all(line.endswith(": True") for line in practice.facts())
    assert practice.final["course"] == results[ex.Samplers].final["random"]  # the course's runs are the samplers'
    assert practice.runs[0].lr[0] < max(practice.runs[0].lr)  # warmup + cosine: its lr was recorded step by step
    folder = results.write(tmp_path / "run")
    data = json.loads((folder / "results.json").read_text())
    assert {*ex.EXPERIMENTS, "setup", "vocab", "tail_n", "part4", "other_book"} <= data.keys()
    assert data["vocab"] == results.spec.model.vocab_size == len(results.corpus.vocab)
    assert data["samplers"]["final"].keys() == {"random", "epoch", "without_replacement"}
    assert data["splits"]["bias"].keys() == {"what", "difference", "noise", "n", "kind", "direction", "beyond",
                                             "sentence"}
    assert data["dropout"]["gap_vs_course"].keys() == {"dropout 0.1", "dropout 0.2"}
    assert data["other_book"]["book"] == str(other)
    assert "tail split on its test - block split on its test" in (folder / "table.md").read_text()
    assert all((folder / f"{n}.png").stat().st_size > 1000 for n in ("samplers", "one_batch", "differences"))
    est = ex.t4_estimate(results.all_runs(), results.seconds, ex.train_flops(results.all_runs(), results.spec))
    assert est["t4_s"] > 0 and est["steps"] == sum(r.steps[-1] for r in results.all_runs())
    with pytest.raises(KeyError, match="no Experiment result here"):
        results[ex.Experiment]


def test_other_book_gives_one_line_for_a_book_it_cannot_use(tmp_path):
    assert ex.other_book(str(tmp_path / "missing.txt"), MICRO).startswith(f"book {tmp_path / 'missing.txt'} skipped: ")
    plain = tmp_path / "plain.txt"  # no Project Gutenberg markers: clean_text cannot find the book in it
    plain.write_text("Just some text.\n" * 200, encoding="utf-8")
    why = ex.other_book(str(plain), MICRO)  # a str, not an exception: run_all calls it after every other run
    assert why.startswith(f"book {plain} skipped: ") and "marker" in why and "\n" not in why


def test_the_samplers_course_runs_are_found_by_their_sampler():
    """The runs the other experiments reuse are the random sampler's, picked by each run's own config."""
    def run(sampler, seed, loss):
        return ex.Run(f"x/{sampler}", gl.TrainConfig(sampler=sampler, seed=seed), [1], [64], {ex.TAIL_TEST: [loss]})

    # keyed by hand under the wrong names: the runs' configs, not the keys, say which sampler trained them
    runs = {"epoch": [run("random", 0, 3.0), run("random", 1, 3.5)], "random": [run("epoch", 0, 4.0)]}
    samplers = ex.Samplers(runs, {}, 1000, 100)
    assert [(r.sampler, r.seed) for r in samplers.course_runs] == [("random", 0), ("random", 1)]
    assert samplers.course_final == [3.0, 3.5]


def test_the_registry_is_in_run_order_and_each_experiment_says_its_question():
    seen = []
    for name, cls in ex.EXPERIMENTS.items():
        assert cls.name == name and issubclass(cls, ex.Experiment) and dataclasses.is_dataclass(cls)
        assert cls.question.strip() and "\n" not in cls.question
        assert all(kind.name in seen for kind in cls.needs().values()), f"{name} needs one registered after it"
        seen.append(name)
    assert ex.OneBatch.needs() == {"samplers": ex.Samplers} and ex.Samplers.needs() == {}


def test_the_docs_list_the_registered_experiments():
    section = ex.registry_section(DOCS.read_text(encoding="utf-8"))
    assert section == ex.registry_table(), (
        f"docs/experiments.md's list of experiments is out of date; refresh it from the repository root with:\n"
        f"{ex.REFRESH_DOCS}")
    for cls in ex.EXPERIMENTS.values():
        assert f"| `{cls.name}` | `{cls.__name__}` |" in section


def test_write_registry_docs_rewrites_only_its_section(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\nbefore\n{ex.REGISTRY_START}\nstale list\n{ex.REGISTRY_END}\nafter\n", encoding="utf-8")
    assert ex.write_registry_docs(page) is True
    text = page.read_text(encoding="utf-8")
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{ex.REGISTRY_END}\nafter\n")
    assert "stale list" not in text and ex.registry_section(text) == ex.registry_table()
    assert ex.write_registry_docs(page) is False  # up to date: nothing to write
    page.write_text("# no markers\n", encoding="utf-8")
    with pytest.raises(ValueError, match="registry:start"):
        ex.write_registry_docs(page)


def test_an_experiment_needs_what_it_reads():
    with pytest.raises(ValueError, match=r"one_batch needs the results of \['samplers'\]"):
        ex.measure("one_batch", None, {})
    with pytest.raises(ValueError, match=r"practice needs the results of \['samplers'\]"):
        ex.measure(ex.Practice, None, {"samplers": object()})  # found by type: the name alone is not enough
    with pytest.raises(ValueError, match="unknown experiment 'nope'; registered: samplers"):
        ex.measure("nope", None, {})


def test_adding_an_experiment_is_one_registered_class(raw):
    """A new question: one class with @register; what it reuses is a typed parameter of its measure; run_all, the
    report, the facts, the JSON and the docs' list pick it up."""
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass
    class Budget(ex.Experiment):
        name: ClassVar[str] = "budget_test"
        question: ClassVar[str] = "How many steps does a run take?"
        steps: int

        @classmethod
        def measure(cls, workbench: ex.Workbench, samplers: ex.Samplers) -> "Budget":
            return cls(samplers.course_runs[0].steps[-1])

        def report(self):
            return [f"steps per run: {self.steps}"]

        def facts(self):
            return [f"runs take at least one step: {self.steps >= 1}"]

    ex.register(Budget)
    try:
        assert Budget.needs() == {"samplers": ex.Samplers}
        assert "| `budget_test` | `Budget` | How many steps does a run take? | `samplers` |" in ex.registry_table()
        workbench = ex.context(_shortened(raw), dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200))
        assert workbench.setup is workbench.spec  # notebook 08's name: corpus, S = ctx.corpus, ctx.setup
        done = {}
        samplers = ex.measure("samplers", workbench, done)
        budget = ex.measure(Budget, workbench, done)
        assert list(done) == ["samplers", "budget_test"] and done["budget_test"] is budget
        assert budget.steps == samplers.runs["random"][0].steps[-1]
        assert budget.facts() == ["runs take at least one step: True"] and budget.to_dict() == {"steps": budget.steps}
    finally:
        del ex.EXPERIMENTS["budget_test"]


def test_register_refuses_an_experiment_it_cannot_run_or_list():
    from dataclasses import dataclass
    from typing import ClassVar

    @dataclass
    class Later(ex.Experiment):  # never registered
        name: ClassVar[str] = "later_test"
        question: ClassVar[str] = "Registered?"

        @classmethod
        def measure(cls, workbench):
            return cls()

    @dataclass
    class NeedsLater(ex.Experiment):
        name: ClassVar[str] = "needs_later_test"
        question: ClassVar[str] = "Does it run after what it needs?"

        @classmethod
        def measure(cls, workbench, later: Later):
            return cls()

    @dataclass
    class NoQuestion(Later):
        name: ClassVar[str] = "no_question_test"
        question: ClassVar[str] = "two\nlines"

    @dataclass
    class SameName(Later):
        name: ClassVar[str] = "samplers"

    with pytest.raises(ValueError, match=r"needs_later_test needs \['later_test'\]: register those first"):
        ex.register(NeedsLater)
    with pytest.raises(TypeError, match="question must be one line"):
        ex.register(NoQuestion)
    with pytest.raises(ValueError, match="named 'samplers' is registered already"):
        ex.register(SameName)
    assert not {"later_test", "needs_later_test", "no_question_test"} & set(ex.EXPERIMENTS)


def test_t4_estimate_speeds_up_training_only():
    runs = [ex.Run("r", gl.TrainConfig(), steps=[100], tokens=[6400], loss={}, train_seconds=50.0)]
    flop_bound = ex.t4_estimate(runs, 80.0, 1e12, step_overhead_s=0.01, t4_flops=1e12, efficiency=0.5)  # 2 s > 1 s
    assert flop_bound["t4_s"] == pytest.approx(2.0 + 30.0)  # the 30 s outside training stay as measured
    assert flop_bound["cpu_flops_per_s"] == pytest.approx(1e12 / 50.0)
    overhead_bound = ex.t4_estimate(runs, 80.0, 1e12, step_overhead_s=0.05, t4_flops=1e12, efficiency=0.5)  # 5 s > 2 s
    assert overhead_bound["t4_train_s"] == pytest.approx(5.0) and overhead_bound["other_s"] == pytest.approx(30.0)
    longer = ex.t4_estimate(runs, 80.0, 1e12, scale=8.0, step_overhead_s=0.05, t4_flops=1e12, efficiency=0.5)
    assert longer["t4_steps"] == 800 and longer["t4_train_s"] == pytest.approx(40.0)  # 8x the steps, 8x the FLOPs
    assert longer["other_s"] == pytest.approx(30.0) and longer["cpu_flops_per_s"] == flop_bound["cpu_flops_per_s"]


def test_the_command_line_writes_a_run_folder(raw, tmp_path, monkeypatch, capsys):
    import gpt_lesson.experiments.__main__ as cli

    micro = dataclasses.replace(MICRO, epochs=0.01, evals_per_epoch=200)
    monkeypatch.setattr(cli, "setup", lambda quick, device: micro)
    monkeypatch.setattr(ex, "load_book", lambda *a, **k: type("B", (), {"text": _shortened(raw)})())
    cli.main(["--out", str(tmp_path / "cli"), "--quick"])
    out = capsys.readouterr().out
    assert "[samplers]" in out and "[dropout]" in out and "tail split on its test" in out
    assert out.rstrip().endswith("cli")
    assert (tmp_path / "cli" / "results.json").is_file()
    with pytest.raises(SystemExit):
        cli.main(["--quick"])  # no --out
    assert "--out FOLDER is required" in capsys.readouterr().err


def test_the_commands_training_flags_are_trainconfigs(capsys):
    """The command's Options redeclare no TrainConfig field; the training flags it has come from TrainConfig and
    change every run's settings; those each run sets itself or an experiment varies have no flag."""
    import gpt_lesson.experiments.__main__ as cli

    train_fields = {f.name for f in dataclasses.fields(gl.TrainConfig)}
    assert not {f.name for f in dataclasses.fields(cli.Options)} & train_fields
    opts, spec = cli.parse(["--out", "o", "--quick", "--lr", "2e-3", "--no-fused", "--weight-decay", "0"])
    assert (opts.out, opts.quick) == ("o", True) and spec.seeds == ex.setup(quick=True).seeds
    assert (spec.train.lr, spec.train.fused, spec.train.weight_decay) == (2e-3, False, 0.0)
    assert spec.train.batch_size == ex.setup().train.batch_size  # a flag not given keeps the preset's value
    assert cli.parse(["--out", "o"])[1] == ex.setup()
    for flag in ("--steps", "--seed", "--sampler", "--grad-clip", "--warmup-steps", "--seq-len"):
        with pytest.raises(SystemExit):
            cli.parse(["--out", "o", flag, "1"])
        assert "unrecognized arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.parse(["--out", "o", "--lr", "-1"])
    assert "TrainConfig.lr must be a number >= 0" in capsys.readouterr().err


def test_the_gpu_budget_is_longer_and_the_quick_one_is_the_same_on_every_device():
    gpu, cpu = ex.setup(device="cuda"), ex.setup()
    assert gpu.epochs == ex.GPU_EPOCHS > cpu.epochs == 1.0 and gpu.seeds == cpu.seeds and gpu.device == "cuda"
    assert gpu.model == cpu.model and gpu.train == cpu.train  # the same runs, only longer
    quick_gpu = ex.setup(quick=True, device=torch.device("cuda"))
    assert dataclasses.replace(quick_gpu, device="cpu") == ex.setup(quick=True)


def test_the_regime_is_read_from_two_verdicts_against_the_baselines(micro_results):
    results, _ = micro_results
    r, c = results[ex.Regime], results.corpus
    train, test, v = c.tokens[: c.tail_n], c.tokens[c.tail_n :], len(c.vocab)
    assert r.alpha == gl.choose_alpha(train, v).value and r.beta == gl.choose_beta(train, v, r.alpha).value
    assert r.unigram == gl.unigram_loss(train, test, v, r.alpha)
    assert r.bigram == gl.bigram_loss(train, test, v, alpha=r.alpha, beta=r.beta)
    assert r.final == results[ex.Samplers].course_final and r.vocab == v
    assert r.lines == {"unigram line": r.unigram, "bigram line": r.bigram}

    def regime(final):
        return ex.Regime(1.0, 100.0, 6.5, 5.4, final, 1.0, 1000)

    assert regime([6.30, 6.35, 6.32]).regime.startswith("between the unigram and the bigram lines")
    assert regime([5.00, 5.10, 5.05]).regime.startswith("past the bigram line")
    assert regime([6.60, 6.40, 6.50]).regime.startswith("on the unigram line")  # within the noise of it
    assert regime([8.40, 8.39, 8.38]).regime.startswith("above the unigram line")
    assert regime([5.50, 5.30, 5.40]).regime.startswith("on the bigram line")
    assert regime([5.40, 5.40, 5.40]).way_to_bigram == pytest.approx(1.0)
    assert regime([6.30, 6.35, 6.32]).vs_unigram.sign == -1 and not regime([6.6, 6.4, 6.5]).vs_unigram.beyond


def test_dropout_reuses_the_course_runs_and_measures_train_and_test_alike(micro_results):
    results, _ = micro_results
    d, samplers, c, s = results[ex.Dropout], results[ex.Samplers], results.corpus, results.spec
    assert d.arms == ["course", "dropout 0.1", "dropout 0.2"] and len(d.runs) == 2 * len(s.seeds)
    assert d.same_budget and d.weights_changed and all(line.endswith(": True") for line in d.facts())
    assert d.probe["prompt_len"] + d.probe["continuation"] == s.model.context_length
    # the dropout-0 arm is the samplers' course runs: a run trained here with dropout 0 is the same model
    course = samplers.course_runs[0]
    again = ex.train_run(c.tokens[: c.tail_n], [c.tail_test], s.with_model(dropout=0.0), name="again",
                         seed=course.seed, eval_steps=[d.steps])
    assert all(torch.equal(a, b.cpu()) for a, b in zip(again.model.state_dict().values(),
                                                       course.model.state_dict().values()))
    assert d.test_loss["course"] == pytest.approx(samplers.course_final, abs=1e-6)
    # training and test losses: the mean over every window of each part, the same measurement
    model = d.runs[0].model
    assert d.train_loss["dropout 0.1"][0] == pytest.approx(gl.window_losses(model, c.train_part).mean().item())
    assert d.test_loss["dropout 0.1"][0] == pytest.approx(d.runs[0].final(ex.TAIL_TEST), abs=1e-6)
    assert d.gap["course"] == pytest.approx([te - tr for te, tr in zip(d.test_loss["course"], d.train_loss["course"])])
    probe = gl.extraction(model, c.tokens[c.tail_n :], seed=s.seeds[0], **d.probe)  # each run's own seed
    assert d.extracted["dropout 0.1"]["test"][0] == probe.mean
    assert d.runs[0].model.config.dropout == 0.1 and d.runs[-1].model.config.dropout == 0.2
    # the answers: verdicts, paired by seed
    assert set(d.gap_vs_course) == set(d.test_vs_course) == {"dropout 0.1", "dropout 0.2"}
    v = d.gap_vs_course["dropout 0.2"]
    assert v.difference == pytest.approx(sum(d.gap["dropout 0.2"]) / 2 - sum(d.gap["course"]) / 2)
    assert d.recitation["course"].unit == "tokens" and [lbl for lbl, _ in d.differences()] == [
        "course test - training loss", "dropout 0.1 gap - course gap", "dropout 0.2 gap - course gap",
        "dropout 0.1 test loss - course", "dropout 0.2 test loss - course"]  # every answer in nats
    assert all(v.unit == "nats" for _, v in d.differences())


def test_licence_fact_fails_when_the_whole_part_is_not_its_pieces_weighted_mean():
    """The licence's fact can fail: scores of the pieces that do not add up to the whole part's say False."""
    from gpt_lesson.experiments.corpus import COURSE_BOOK, COURSE_TEST, LICENCE

    def licence(whole: float) -> ex.Licence:
        return ex.Licence({COURSE_TEST: [whole, whole], COURSE_BOOK: [6.0, 6.0], LICENCE: [8.0, 8.0]}, 0.25, 100)

    assert licence(6.5).weighted == [6.5, 6.5] and licence(6.51).facts()[-1].endswith(": True")
    assert licence(6.6).facts()[-1].endswith(": False")
    assert licence(6.5).report()[-1] == "its share times how much harder it is: 25.0% x (8.000 - 6.000) = +0.500 nats"


def test_one_batch_compares_the_course_batch_with_ours_by_a_ratio_verdict_or_says_not_measured():
    def one_batch(stds: list[tuple[float, float]]) -> ex.OneBatch:
        rows = [{"std": a, "course_std": b} for a, b in stds]
        return ex.OneBatch([rows], [], [], 0.1, 0.05, 1024, 0.05, (16, 256))

    less = one_batch([(0.10, 0.05), (0.12, 0.06), (0.08, 0.041)]).course_vs_ours
    assert less.beyond and less.value == pytest.approx(0.5, rel=0.05)
    assert less.direction == "the course's batch is less noisy"
    same = one_batch([(0.10, 0.09), (0.10, 0.11), (0.10, 0.10)]).course_vs_ours
    assert same.measured and not same.beyond
    assert not one_batch([(0.10, 0.05), (0.0, 0.0)]).course_vs_ours.measured  # a test part of one window
    assert not one_batch([(0.10, 0.05)]).course_vs_ours.measured
    nan = ex.OneBatch([[{"std": 0.1, "course_std": float("nan")}]], [10], [], 0.1, 0.05, 1024, 0.05, (16, 256))
    assert nan.facts()[0].endswith(": False") and not nan.course_vs_ours.measured


def test_tokens_read_are_each_window_inputs_and_targets():
    """A window from s reads tokens s .. s + T (T inputs, the last target one further), the last valid start too."""
    from gpt_lesson.experiments.questions import _tokens_read

    read = _tokens_read(torch.tensor([2, 6]), 3, 10)
    assert read.tolist() == [False, False, True, True, True, True, True, True, True, True]
    assert _tokens_read(torch.tensor([0]), 3, 10).nonzero().flatten().tolist() == [0, 1, 2, 3]
