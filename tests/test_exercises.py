"""Exercises that teach (issue 22, point 3): every notebook's "Your turn" holds up when a student works through it.

Each notebook ends with exercises, folded solutions (``<details><summary>Solution N</summary>`` with fenced python
code) and a ``# Self-check`` cell in which the student replaces ``my_... = None`` with answers and a ``check(...)``
prints, per exercise, "right", "not yet, see the solution" or "not answered yet". For each notebook, one kernel
(quick mode, offline, its own cache and checkpoint folders, so 07 trains its stand-in as it does alone):

1. runs every code cell before the self-check, then each solution's code blocks in order: none may raise
   (a solution that asserts a GPU runs only where the kernel has one);
2. runs the self-check as it stands (every exercise "not answered yet"), with the right answers (every exercise
   "right") and, one at a time, with each wrong answer of ``WRONG`` in place of the right one (that exercise
   "not yet", the others still "right");
3. checks that no literal the self-check expects is a value copied from an output the notebook does not print.

The right answers (``RIGHT``) are computed in the kernel the way the solutions compute them: mostly read from what
the solution printed (``_printed[N]``, the output of solution N), as a student copies it, otherwise from the
variables the solution left. ``WRONG`` models the plausible mistakes; a wrong answer that happens to equal the right
one in a run (a quick-mode coincidence) is not counted, but every exercise must keep at least one.

``python -m pytest tests/test_exercises.py -m slow -p no:nbval`` runs it (``-k 05`` for one notebook). Notebooks
01-05 take about a minute each, 06 and 07 a few minutes, 08 the longest (its experiments).
"""

from __future__ import annotations

import ast
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import pytest

nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
IDS = sorted(p.name[:2] for p in NOTEBOOKS.glob("0[0-9]_*.ipynb"))


class Expr(str):
    """A wrong answer computed in the kernel (Python source), where a literal would depend on the run."""


# The right answer of every self-check variable: Python source evaluated in the kernel after the solutions ran.
# ``_printed[N]`` is what solution N printed.
RIGHT = {
    "01": {
        "my_non_ascii": "int(_printed[1].split()[0])",  # solution 1 prints the count, then the most common
        # Solution 2 needs the network (a second gl.load_book(1342)); HELPERS["01"] stands in for the first call's
        # download with a copy in the test's own cache, so this is the second call's source.
        "my_second_source": "gl.load_book(1342, verbose=False).source",
        "my_plain": "'just some text'",  # solution 3's prose: returned unchanged (the self-check calls clean_text)
    },
    "02": {
        "my_name": "'Swift'",  # one of solution 1's names: two pieces without a space, one with
        "my_name_counts": "(len(pieces('Swift')), len(pieces(' Swift')))",
        "my_longest_word": "_printed[2].split()[0]",
        "my_newline_share": "round(float(_printed[3].split()[0]), 3)",  # typed from the print (or the prose, 6.6%)
        "my_four_newlines": "ast.literal_eval(_printed[4][_printed[4].index('] [') + 2:])",
    },
    "03": {
        "my_gap_tokens": "int(_printed[1])",
        "my_loss_80": "round(float(_printed[3].split()[1]), 3)",  # "0.8 6.88...", typed to 3 decimals
        "my_std_512": "float(_printed[4])",  # printed to 3 decimals
    },
    "04": {
        "my_steps": "int(_printed[2].split()[0])",
        # "much less" than sampling with replacement at the same cost (section 3's same_budget): less than half
        "my_much_less_unseen": "(without == 0).double().mean().item() "
                               "< 0.5 * (same_budget == 0).double().mean().item()",
        "my_no_window_touches": "_printed[4].split() == ['True', 'True']",  # rows match, and none touches
    },
    "05": {
        "my_padded_count": "int(_printed[5])",
        "my_masked_5": "int(_printed[6].split()[0])",
        "my_masked_256": "int(_printed[6].split()[1])",
    },
    "06": {
        # Solution 5 has no code (500 * B * T / training tokens): the tokens section 4's run took per step, times
        # 500 steps, over the training tokens, typed to the two decimals the exercise asks for
        "my_epochs": "round(history.tokens_seen / len(history.train_loss) * 500 / len(train_tokens), 2)",
    },
    "07": {
        "my_top_p": "top_p",  # solution 2's function
        # Solution 4 gives context_length - 12 + 1; counted here instead: the first new token past the context
        "my_first_overflow": "next(n for n in range(1, 10**6) if ids.shape[1] + n > model.config.context_length)",
    },
    "08": {
        "my_widest_step": "int(_printed[1].split('widest at step ')[1].split()[0])",
        "my_beyond": "gl.verdict('epoch - random', curves('epoch')[:, k].tolist(), curves('random')[:, k].tolist()"
                     ").beyond",  # the line solution 1 prints, as a bool
        "my_seeds": "int(_printed[2].strip().splitlines()[-1])",
        "my_best": "_printed[5].splitlines()[0].rsplit(' ', 1)[0]",  # "NAME MEAN": the name it prints
        "my_best_beyond": "best != 'course' and practice.vs_course[best].beyond",
    },
}

# Code run in the kernel after the solutions, before the right answers: stand-ins and the wrong functions of 07.
HELPERS = {
    "01": """
_cache = gl.book.default_cache_dir()   # the test's temporary cache (GPT_LESSON_CACHE)
_cache.mkdir(parents=True, exist_ok=True)
(_cache / "pg1342.txt").write_text(book.text, encoding="utf-8")   # stands in for the first call's download
""",
    "07": """
def _top_p_unsorted(logits, p):   # the mask of the sorted logits applied to the unsorted ones
    sorted_logits, _ = torch.sort(logits, descending=True, dim=-1)
    probs = torch.softmax(sorted_logits, dim=-1)
    return logits.masked_fill(probs.cumsum(dim=-1) - probs >= p, float("-inf"))


def _top_p_drops_crossing(logits, p):   # drops the token whose probability takes the sum past p
    sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
    drop_sorted = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1) > p
    return logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))


def _top_p_probabilities(logits, p):   # returns the probabilities of the kept tokens, not their logits
    return torch.softmax(logits, dim=-1).masked_fill(torch.isinf(top_p(logits, p)), float("-inf"))
""",
}

# Plausible wrong answers, per notebook and self-check variable; each is tested with every other answer right.
WRONG = {
    "01": {
        "my_non_ascii": [
            Expr("len(set(non_ascii))"),  # the distinct characters, not how many there are
            Expr("len(clean.encode('utf-8')) - len(clean)"),  # the extra UTF-8 bytes, not the characters
            379,  # the count of the most common one (“)
        ],
        "my_second_source": [
            "download",  # the first call's source
            "shipped",  # what gl.load_book() says offline, for book 829
        ],
        "my_plain": [
            "",  # expects the stripping to leave nothing of a text without the marker lines
            "strip_boilerplate=False",  # the switch, not what the call returns
        ],
    },
    "02": {
        "my_name_counts": [
            Expr("(len(pieces(' Swift')), len(pieces('Swift')))"),  # the two counts swapped
            Expr("(len(pieces('Swift')), len(pieces('Swift')) + 1)"),  # the leading space taken for a token of its own
        ],
        "my_longest_word": [
            "_Brobdingnagians_;",  # the longest in characters, not in tokens
            "Houyhnhnm’s",  # the word without Gutenberg's italics underscores
        ],
        "my_newline_share": [
            Expr("torch.isin(raw_ids, torch.tensor([198, 628])).double().mean().item()"),  # the raw file's share
            Expr("(tokens == 198).double().mean().item()"),  # only '\n', forgetting '\n\n' (628)
            6.6,  # a percentage, not a fraction
        ],
        "my_four_newlines": [
            [628, 628, 10019],  # two '\n\n' tokens (the rule's lookahead forgotten)
            [198, 198, 198, 198, 10019],  # one token per newline
        ],
    },
    "03": {
        "my_gap_tokens": [
            3584,  # one gap per test block instead of two (28 x 128); also the 2,048-token blocks' count
            Expr("N - small.n_tokens('train')"),  # the test tokens counted as gaps
        ],
        "my_loss_80": [
            6.667,  # the 90/10 split's loss
            Expr("unigram_loss(*gl.tail_split(tokens, train_frac=0.2))"),  # 80% read as the test fraction
        ],
        "my_std_512": [
            0.061,  # block_len left at 2,048 (section 4's value)
            0.023**2,  # the variance, not the standard deviation
        ],
    },
    "04": {
        "my_steps": [
            Expr("math.floor(math.log(100) * (N - T) / (B * T))"),  # rounded down: leaves a bit more than 1% unseen
            Expr("math.ceil(math.log(100) * (N - T) / B)"),  # the factor T forgotten (windows, not tokens)
            Expr("math.ceil(math.log(1 / 0.99) * (N - T) / (B * T))"),  # 1% *seen* instead of 1% unseen
        ],
        "my_much_less_unseen": [True],  # expects that no repeated start means no unseen text
        "my_no_window_touches": [False],
    },
    "05": {
        "my_padded_count": [
            124_439_808,  # the padding forgotten: the 1,024-position count
            124_439_808 + 2 * 47 * 768,  # the 47 padding rows counted twice (the head is tied to the embedding)
            124_475_904 - 768 * 768,  # the lesson's 256 positions kept
        ],
        "my_masked_5": [
            15,  # the diagonal masked too (triu without diagonal=1)
            12,  # half of T^2, rounded down
        ],
        "my_masked_256": [
            32_896,  # the diagonal masked too
            32_768,  # half of T^2
        ],
    },
    "06": {
        "my_epochs": [
            Expr("round(500 * B * T / len(tokens), 2)"),  # the whole book's tokens, not the training part
            Expr("round(500 * B * (T + 1) / len(train_tokens), 2)"),  # the targets' extra token counted too
            Expr("round(500 * 16 * 256 / len(train_tokens), 2) if (B, T) != (16, 256) "
                 "else round(500 * 8 * 128 / len(train_tokens), 2)"),  # the other preset's batch (lesson vs CPU)
        ],
    },
    "07": {
        "my_top_p": [
            Expr("_top_p_unsorted"),  # the mask of the sorted logits, applied in vocabulary order
            Expr("_top_p_drops_crossing"),  # cumulative > p: drops the token that reaches p
            Expr("_top_p_probabilities"),  # returns probabilities instead of the kept logits
        ],
        "my_first_overflow": [
            Expr("model.config.context_length - ids.shape[1]"),  # the last token that fits (off by one)
            Expr("model.config.context_length + 1"),  # the prompt's tokens forgotten
        ],
    },
    "08": {
        "my_widest_step": [
            Expr("k"),  # the index of the evaluation, not its step count
            Expr("samplers.runs['random'][0].steps[-1]"),  # the last evaluation (the final losses of section 2)
        ],
        "my_beyond": [Expr("not _right['my_beyond']")],  # the verdict turned round
        "my_seeds": [
            Expr("math.floor((2 * spread / abs(diff)) ** 2)"),  # n >= (2s/|d|)^2, not >: the + 1 forgotten
            Expr("math.floor(2 * spread / abs(diff)) + 1"),  # the square forgotten (sqrt(n) read as n)
        ],
        "my_best": [
            Expr("max(practice.final, key=lambda v: sum(practice.final[v]) / len(practice.final[v]))"),  # highest
            "course",  # the course's own settings taken as the lowest without reading the report
        ],
        "my_best_beyond": [Expr("not _right['my_best_beyond']")],  # the verdict turned round
    },
}

# Literals a self-check expects that the notebook does not print, with where the student sees them instead.
NOT_PRINTED_BY_THE_NOTEBOOK = {
    ("01", "cache"): "book.source of a second online gl.load_book(1342); offline the notebook cannot print it",
}

VERDICT = re.compile(r"^exercise (\d+)\b[^:\n]*: (right|not yet, see the solution|not answered yet)$", re.M)
ANSWER_LINE = re.compile(r"^(my_\w+)\s*=\s*None\b.*$", re.M)
EXERCISE_OF = re.compile(r"^(my_\w+)\s*=\s*None\b.*#\s*exercise (\d+)", re.M)
SOLUTION = re.compile(r"<summary>\s*Solution (\d+)\s*</summary>(.*?)</details>", re.S)
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
NEEDS_GPU = re.compile(r"assert torch\.cuda\.is_available\(\)")


def parse(path: Path):
    """The code cells before the self-check, the self-check's source and each solution's python blocks."""
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    at = next((i for i, c in enumerate(code) if c.source.lstrip().startswith("# Self-check")), None)
    assert at is not None, f"{path.name}: no code cell starting with '# Self-check'"
    after = nb.cells[nb.cells.index(code[at]) + 1:]
    solutions: dict[int, list[str]] = {}
    for cell in after:
        if cell.cell_type == "markdown":
            for m in SOLUTION.finditer(cell.source):
                solutions[int(m.group(1))] = PYTHON_BLOCK.findall(m.group(2))
    return [c.source for c in code[:at]], code[at].source, solutions


def exercises_of(nb_id: str, self_check: str) -> dict[str, int]:
    """Each answer variable of a self-check and the exercise its comment names."""
    names = ANSWER_LINE.findall(self_check)
    numbers = dict(EXERCISE_OF.findall(self_check))
    missing = [n for n in names if n not in numbers]
    assert not missing, f"notebook {nb_id}: the self-check's {missing} do not name their exercise (# exercise N)"
    return {n: int(numbers[n]) for n in names}


@pytest.mark.parametrize("nb_id", IDS)
def test_tables_cover_every_self_check(nb_id):
    """Without a kernel: the self-check and solutions parse, and RIGHT and WRONG cover exactly its answers."""
    _, self_check, solutions = parse(next(NOTEBOOKS.glob(f"{nb_id}_*.ipynb")))
    exercises = exercises_of(nb_id, self_check)
    assert exercises, f"notebook {nb_id}: the self-check has no 'my_... = None' line"
    assert solutions, f"notebook {nb_id}: no <summary>Solution N</summary>"
    assert set(RIGHT.get(nb_id, {})) == set(exercises), f"notebook {nb_id}: RIGHT against the self-check's answers"
    assert set(WRONG.get(nb_id, {})) <= set(exercises), f"notebook {nb_id}: WRONG names an answer it does not have"
    uncovered = set(exercises.values()) - {exercises[name] for name in WRONG.get(nb_id, {})}
    assert not uncovered, f"notebook {nb_id}: no wrong answer in WRONG for exercises {sorted(uncovered)}"


class Kernel:
    """One kernel that runs sources one at a time and returns what they printed (or raises CellExecutionError)."""

    def __init__(self, client):
        self.client = client

    def run(self, source: str) -> str:
        cell = nbformat.v4.new_code_cell(source)
        self.client.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.client.nb.cells) - 1)
        out = []
        for o in cell.outputs:
            if o.output_type == "stream" and o.name == "stdout":
                out.append(o.text)
            elif o.output_type == "execute_result":
                out.append(o.data.get("text/plain", "") + "\n")
        return "".join(out)


@dataclass
class Exercised:
    """A notebook run up to its self-check, and its solutions."""

    id: str
    kernel: Kernel
    self_check: str
    printed: dict[int, str] = field(default_factory=dict)  # solution number -> what it printed
    failed: dict[int, str] = field(default_factory=dict)  # solution number -> its error
    skipped: dict[int, str] = field(default_factory=dict)  # solution number -> why it did not run
    output: str = ""  # everything the cells before the self-check and the solutions printed
    seconds: dict[str, float] = field(default_factory=dict)
    _right_ready: bool = False

    def exercises(self) -> dict[str, int]:
        return exercises_of(self.id, self.self_check)

    def prepare_right(self):
        """``_right`` in the kernel: each variable's right answer."""
        if self._right_ready:
            return
        missing = sorted(set(self.exercises()) - set(RIGHT.get(self.id, {})))
        assert not missing, f"notebook {self.id}: no right answer in RIGHT for {missing}"
        self.kernel.run(f"_printed = {self.printed!r}\n" + HELPERS.get(self.id, ""))
        entries = ",\n".join(f"    {name!r}: {RIGHT[self.id][name]}" for name in self.exercises())
        self.kernel.run("import ast, math\n_right = {\n" + entries + "\n}")
        self._right_ready = True

    def check_with(self, wrong_name: str | None = None) -> list[tuple[int, str]]:
        """The self-check's verdicts with the right answers, or with ``_wrong`` in place of ``wrong_name``'s."""
        def answer(m):
            name = m.group(1)
            return f"{name} = _wrong" if name == wrong_name else f"{name} = _right[{name!r}]"

        printed = self.kernel.run(ANSWER_LINE.sub(answer, self.self_check))
        return [(int(n), v) for n, v in VERDICT.findall(printed)]


def _env(scratch: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("GPT_LESSON_QUICK", "1")  # GPT_LESSON_QUICK=0 on the command line runs the full notebooks
    env.update({
        "GPT_LESSON_OFFLINE": "1",
        # Always this test's own folders: 07 must not find a checkpoint of 06 from another run (it trains a stand-in)
        "GPT_LESSON_CACHE": str(scratch / "cache"),
        "GPT_LESSON_CHECKPOINT_DIR": str(scratch / "checkpoints"),
        "MPLBACKEND": "Agg",
    })
    return env


def _run_solutions(ex: Exercised, solutions: dict[int, list[str]], has_gpu: bool):
    for number, blocks in sorted(solutions.items()):
        if not has_gpu and any(NEEDS_GPU.search(b) for b in blocks):
            ex.skipped[number] = "asserts a GPU runtime; the kernel has none"
            continue
        ex.printed[number] = ""
        for block in blocks:
            try:
                ex.printed[number] += ex.kernel.run(block)
            except nbclient.exceptions.CellExecutionError as error:
                ex.failed[number] = str(error)[-3000:]
                break


@pytest.fixture(scope="module", params=IDS)
def exercised(request, tmp_path_factory):
    """One kernel per notebook: the cells before its self-check, then its solutions."""
    nb_id = request.param
    path = next(NOTEBOOKS.glob(f"{nb_id}_*.ipynb"))
    before, self_check, solutions = parse(path)
    client = nbclient.NotebookClient(nbformat.v4.new_notebook(), timeout=3600, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    with client.setup_kernel(env=_env(tmp_path_factory.mktemp(f"exercises_{nb_id}"))):
        ex = Exercised(nb_id, Kernel(client), self_check)
        ex.kernel.run('import matplotlib\nmatplotlib.use("Agg")')
        start = time.perf_counter()
        for i, source in enumerate(before):
            try:
                ex.output += ex.kernel.run(source)
            except nbclient.exceptions.CellExecutionError as error:
                pytest.fail(f"notebook {nb_id}: code cell {i} (before the self-check) raised:\n{str(error)[-3000:]}")
        ex.seconds["cells before the self-check"] = time.perf_counter() - start
        has_gpu = ex.kernel.run("import torch\nprint(torch.cuda.is_available())").strip() == "True"
        start = time.perf_counter()
        _run_solutions(ex, solutions, has_gpu)
        ex.seconds["solutions"] = time.perf_counter() - start
        ex.output += "".join(ex.printed.values())
        yield ex


@pytest.mark.slow
def test_every_solution_runs_in_the_notebooks_state(exercised):
    ex = exercised
    print(f"notebook {ex.id}: " + ", ".join(f"{k} {v:.0f} s" for k, v in ex.seconds.items()))
    for number, why in ex.skipped.items():
        print(f"notebook {ex.id}, solution {number}: not run, {why}")
    assert ex.printed or ex.skipped, f"notebook {ex.id}: no solution with python code"
    assert not ex.failed, "\n\n".join(f"notebook {ex.id}, solution {n} raised:\n{e}" for n, e in ex.failed.items())


@pytest.mark.slow
def test_self_check_accepts_the_right_answers(exercised):
    ex = exercised
    exercises = ex.exercises()
    unanswered = [(n, v) for n, v in VERDICT.findall(ex.kernel.run(ex.self_check))]
    assert unanswered, f"notebook {ex.id}: the self-check printed no 'exercise N: verdict' line"
    assert {v for _, v in unanswered} == {"not answered yet"}, f"notebook {ex.id}, untouched: {unanswered}"
    assert {int(n) for n, _ in unanswered} == set(exercises.values()), (
        f"notebook {ex.id}: verdict lines for exercises {unanswered}, answer variables for {exercises}")
    ex.prepare_right()
    verdicts = ex.check_with()
    assert verdicts and all(v == "right" for _, v in verdicts), (
        f"notebook {ex.id}: the right answers {ex.kernel.run('print(_right)').strip()} got {verdicts}")


def _verdict_problem(ex: Exercised, name: str, wrong, number: int) -> str | None:
    """Why the self-check fails to reject ``wrong`` for ``name`` (None when it rejects it)."""
    ex.kernel.run(f"_wrong = {wrong if isinstance(wrong, Expr) else repr(wrong)}")
    same = ex.kernel.run(f"print(not callable(_wrong) and _wrong == _right[{name!r}])").strip()
    if same == "True":
        return "same"  # a coincidence of this run: not a wrong answer here
    verdicts = ex.check_with(name)
    mine = [v for n, v in verdicts if n == number]
    others = [(n, v) for n, v in verdicts if n != number and v != "right"]
    if not mine or "not yet, see the solution" not in mine or others:
        return f"{name} = {wrong!r}: verdicts {verdicts}"
    return None


@pytest.mark.slow
def test_self_check_rejects_plausible_wrong_answers(exercised):
    ex = exercised
    ex.prepare_right()
    table = WRONG.get(ex.id, {})
    exercises = ex.exercises()
    assert set(table) <= set(exercises), f"notebook {ex.id}: WRONG names {set(table) - set(exercises)}, not answers"
    tested, accepted = set(), []
    for name, wrongs in table.items():
        for wrong in wrongs:
            problem = _verdict_problem(ex, name, wrong, exercises[name])
            if problem == "same":
                print(f"notebook {ex.id}: {name} = {wrong!r} equals the right answer in this run; not counted")
            elif problem:
                accepted.append(problem)
            else:
                tested.add(exercises[name])
    untested = sorted(set(exercises.values()) - tested)
    assert not accepted, f"notebook {ex.id}: the self-check did not reject:\n" + "\n".join(accepted)
    assert not untested, f"notebook {ex.id}: no wrong answer rejected for exercises {untested}"


def _expected_literals(self_check: str) -> list:
    """The literals passed to check() as what it expects (not the exercise's label, not a bool or None)."""
    found = []
    for node in ast.walk(ast.parse(self_check)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "check":
            for arg in node.args[2:]:
                if isinstance(arg, ast.Constant) and not isinstance(arg.value, (bool, type(None))):
                    found.append(arg.value)
    return found


@pytest.mark.slow
def test_self_check_expects_no_literal_the_notebook_does_not_print(exercised):
    ex = exercised
    missing = []
    for value in _expected_literals(ex.self_check):
        forms = {str(value), repr(value)} | ({f"{value:,}"} if isinstance(value, (int, float)) else set())
        if not any(form in ex.output for form in forms) and (ex.id, value) not in NOT_PRINTED_BY_THE_NOTEBOOK:
            missing.append(value)
    assert not missing, f"notebook {ex.id}: the self-check expects {missing}, which no cell or solution prints"
