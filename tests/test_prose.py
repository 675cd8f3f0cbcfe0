"""Prose = outputs: every number a notebook's text states is one its reader can see (issue 22, point 2).

Fast: nothing is executed, the committed .ipynb files are read with nbformat. For every notebook, each number in
its markdown cells must appear, as written, in that notebook's printed outputs (stream text, and the text/plain,
text/markdown and text/html of displays and results; images are not read) or in its own code cells (a setting
the reader sees), unless its sentence carries one of the source markers below, which the test resolves.

What counts as a number (anything else, plain integers included, is structure: "12 blocks", "notebook 03"):
- a count with thousands separators, 143,690;  a decimal, 6.838, 0.1, 4.0;  scientific notation, 1e-3;
- a percentage, 28.8%, 9 %;  a time, 17 min, 81 s, 0.5 ms, 2 h;  a ratio, 1.11×, 5.7x, ×3, 4×.
Not numbers: a product of two integers, 16 × 256 (a shape); names and versions, GPT-2, GPT-3.5, 2.13.0; ranges
of integers, 1–3; integers followed by letters, 124M, 3rd; a single-letter time unit with no space, 1980s.
Not read: fenced code blocks, inline code, HTML comments and tags, $math$, URLs, the Colab badge line.

Matching is on the text as written: 6.84 does not match a printed 6.838, nor 143,690 a printed 143690. It only
normalizes the minus sign (− and -), the space before % and a time unit (s, sec, seconds, ...), and × against x
in ratios (a ratio 3× also matches ×3); in code cells a count also matches its Python literal (143690, 143_690).
A number followed by `<!-- check: ... -->` is a placeholder and always fails.
"""

import functools
import re
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
FILES = sorted(p.name for p in NB_DIR.glob("[0-9][0-9]_*.ipynb"))

# ---- Source markers: a sentence holding one of these may state numbers from elsewhere --------------------------
# A reference to another notebook ("notebook 03", "notebooks 01–03", "notebooks 03 and 04", "the cleaned book
# (01)"): each number of the sentence must then be in the outputs or code of one of those notebooks (or this one).
NOTEBOOK_REF = re.compile(r"\bnotebooks?\s+(\d\d(?!\d)(?:\s*(?:–|—|-|,|and|or|to|&)\s*\d\d(?!\d))*)|\((\d\d)\)", re.I)
# The lesson being taught (its facts are in LESSON.md, outside the repository): a number of such a sentence must be
# one of the lesson's figures below, or be printed by some notebook of the series.
COURSE_REF = re.compile(r"\bthe\s+(?:lesson|course)(?:['’]s)?\b", re.I)
LESSON_FIGURES = (  # plain integers (500 steps, 100, 256, 16, 12 blocks, 768) are never checked, so not listed
    "158,000", "90%", "10%", "45 s", "1 s", "1e-3", "0.01", "1e-5", "27.7", "4×", "0.1", "0.02",
)
# A cited paper or project, in parentheses: "(PaLM, appendix B)", "(nanoGPT)", "(Radford et al., 2019)". Accepted as
# cited, without resolving. A parenthesis that names one of these (case-sensitive) marks its sentence.
CITED = ("et al.", "PaLM", "nanoGPT", "minGPT", "llm.c", "LLMs from Scratch", "Chinchilla", "Attention Is All You Need")
CITATION = re.compile(r"\(([^()]*(?:" + "|".join(re.escape(c) for c in CITED) + r")[^()]*)\)")

# ---- What the prose is read without --------------------------------------------------------------------------
PLACEHOLDER = re.compile(r"<!--\s*check\b.*?-->", re.S)
MARK = "\ue000"  # stands where a placeholder was, so that the number before it can be found
HIDE = str.maketrans("0123456789", "".join(map(chr, range(0xE010, 0xE01A))))  # digits of inline code and math
SHOW = {v: k for k, v in HIDE.items()}  # ... back, to quote the sentence as written


def _hide(m):
    return m.group().translate(HIDE)


SKIPPED = [  # (pattern, replacement), in this order
    (re.compile(r"^\s*(```|~~~).*?^\s*\1[^\n]*$", re.S | re.M), "\n\n"),  # fenced code blocks
    (re.compile(r"`[^`]+`"), _hide),  # inline code: kept for the quote, its digits hidden
    (re.compile(r"<!--.*?-->", re.S), " "),  # other HTML comments
    (re.compile(r"\$\$.+?\$\$", re.S), " "),  # display math
    (re.compile(r"\$[^$\n]+\$"), _hide),  # inline math
    (re.compile(r"^.*(?:colab-badge|Open In Colab).*$", re.M), " "),  # the Colab badge line
    (re.compile(r"\]\([^)\s]*\)"), "] "),  # link targets
    (re.compile(r"(?:https?://|www\.)\S+"), " "),  # bare URLs
    (re.compile(r"</?[A-Za-z][^>]*>"), " "),  # HTML tags (<sup>, <details>...)
]

# ---- Numbers ----------------------------------------------------------------------------------------------
RUN = re.compile(r"\d(?:[\d.,]*\d)?")  # a run of digits with the separators inside it
SCI = re.compile(r"e[-+−]?\d+(?![\w])")
TIME_UNITS = {  # canonical unit: every spelling of it
    "ms": ("ms", "msec", "milliseconds", "millisecond"),
    "µs": ("µs", "μs", "microseconds", "microsecond"),
    "s": ("s", "sec", "secs", "seconds", "second"),
    "min": ("min", "mins", "minutes", "minute"),
    "h": ("h", "hr", "hrs", "hours", "hour"),
}
UNIT_OF = {spelling: unit for unit, spellings in TIME_UNITS.items() for spelling in spellings}
UNIT_AFTER = re.compile(r"(\s?)(" + "|".join(sorted(map(re.escape, UNIT_OF), key=len, reverse=True)) + r")(?![\w])")
SPACES = re.compile(r"[\u00a0\u2009\u202f]")  # no-break and thin spaces count as spaces


def _norm(text):
    return SPACES.sub(" ", text).replace("−", "-")


KINDS = [  # the digits' own kind, before what follows them is read
    ("count", re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?")),
    ("decimal", re.compile(r"\d+\.\d+")),
    ("int", re.compile(r"\d+")),
]


def _sign(text, s):
    """The sign before the digits at `s`: "" or "-", or None when they are part of a name or a version."""
    before = text[max(0, s - 2):s]
    if before[-1:] and (before[-1].isalnum() or before[-1] in "._,"):
        return None  # part of a word or identifier (x2, T4, float16, _3) or of a version
    if before[-1:] != "-" or not before[:1].isalnum():
        return "-" if before[-1:] == "-" else ""
    return "" if before[:1].isdigit() else None  # the end of a range (1-3); GPT-2, top-5 are names


def _suffix(text, s, kind, after):
    """What follows the digits makes them a percentage, a time or a ratio: (kind, unit, tail, prefix), or None when
    the digits are no number to check (a plain integer, one side of a shape 16 × 256, 124M)."""
    left = re.search(r"\d\s?[×x]\s?-?$", text[:s])
    right = re.match(r"\s?[×x]\s?\d", after)
    if kind == "int" and (left or right):
        return None  # a product of two integers is a shape (16 × 256, 500 × 3 × ...)
    if pct := re.match(r"\s?%", after):
        return "percent", "", pct.group(), ""
    if (tm := UNIT_AFTER.match(after)) and (tm.group(1) or len(tm.group(2)) > 1 or kind != "int"):
        return "time", UNIT_OF[tm.group(2)], tm.group(), ""  # "81 s", "2.5s", "17min", but not "the 1980s"
    if (rt := re.match(r"\s?[×x](?![\w])", after)) and not right:
        return "ratio", "", rt.group(), ""
    if not left and kind != "count" and re.search(r"(?<![\w])×\s?$", text[:s]):
        return "ratio", "", "", "×"  # ×3
    if after[:1].isalpha() or kind == "int":
        return None  # 124M, 3rd, 2D; a plain integer
    return kind, "", "", ""


def _numbers(text):
    """Every number of the prose `text` (already stripped of code and the like), as (shown, key, placeholder):
    shown as written, key = (kind, digits, unit) for matching, placeholder when `<!-- check -->` follows it."""
    text = _norm(text)
    found = []
    for m in RUN.finditer(text):
        digits, after, sign = m.group(), text[m.end():], _sign(text, m.start())
        kind = next((k for k, pattern in KINDS if pattern.fullmatch(digits)), None)
        if sign is None or kind is None:
            continue  # a name, a version (2.13.0), a list without spaces (1,2)
        if (sci := SCI.match(after)) and kind != "count":
            digits, kind, after = digits + sci.group().replace("−", "-"), "sci", after[sci.end():]
        start = m.start() - len(sign)
        if (read := _suffix(text, start, kind, after)) is None:
            continue
        kind, unit, tail, prefix = read
        placeholder = after[len(tail):].lstrip().startswith(MARK)
        found.append((prefix + sign + digits + tail, (kind, sign + digits, unit), placeholder))
    return found


def _key(figure):
    (_, key, _), = _numbers(figure)
    return key


LESSON_KEYS = {_key(f) for f in LESSON_FIGURES}


def _pattern(key, code=False):
    """A regex that finds the number of `key` in printed text, with the same digits and no more. In code, a count
    also matches its Python literals: 143,690 is 143690 or 143_690 there."""
    kind, digits, unit = key
    body = re.escape(digits)
    if code and kind == "count":
        body = body.replace(",", "[,_]?")
    body = body if digits.startswith("-") else r"(?<!\d-)" + body
    num = r"(?<![\d.])(?<!\d[,_])" + body + r"(?!\d)(?![.,_]\d)(?!e[-+]?\d)"
    if kind == "percent":
        return num + r"\s?%"
    if kind == "time":
        return num + r"\s?(?:" + "|".join(map(re.escape, TIME_UNITS[unit])) + r")(?![\w])"
    if kind == "ratio":
        return num + r"\s?[×x](?![\w])|(?<![\w])[×x]\s?" + num
    return num


def _outputs_text(output):
    if output.output_type == "stream":
        return output.get("text", "")
    if output.output_type in ("display_data", "execute_result"):
        data = output.get("data", {})
        html = re.sub(r"<[^>]+>", " ", data.get("text/html", ""))
        return "\n".join([data.get("text/plain", ""), data.get("text/markdown", ""), html])
    return ""


_PRINTED = {}  # id(nb) -> (nb, outputs, code); the notebook is kept so that its id is not reused


def _printed(nb):
    """What a reader of `nb` sees printed, and its code cells' sources, each normalized like the prose."""
    if id(nb) not in _PRINTED:
        code = [cell for cell in nb.cells if cell.cell_type == "code"]
        outputs = "\n".join(_outputs_text(o) for cell in code for o in cell.get("outputs", []))
        _PRINTED[id(nb)] = (nb, _norm(outputs), _norm("\n".join(cell.source for cell in code)))
    return _PRINTED[id(nb)][1:]


def _in(key, nb):
    outputs, code = _printed(nb)
    return bool(re.search(_pattern(key), outputs) or re.search(_pattern(key, code=True), code))


def _strip(source):
    source = PLACEHOLDER.sub(" " + MARK + " ", source)
    for pattern, replacement in SKIPPED:
        source = pattern.sub(replacement, source)
    return source


def _sentences(text):
    """Paragraphs, headings and list items, each cut into sentences at '. ', '; ', '? ' and '! '."""
    units, current = [], []
    for line in text.split("\n"):
        if not line.strip() or re.match(r"\s*(?:#|[-*+]\s|\d+[.)]\s|>)", line):
            units.append(" ".join(current))
            current = []
        if line.strip():
            current.append(line.strip())
    units.append(" ".join(current))
    return [s for u in units for s in re.split(r"(?<=[.;?!])\s+", u) if s.strip()]


def _referenced(sentence, all_notebooks):
    ids = set()
    for m in NOTEBOOK_REF.finditer(sentence):
        if m.group(1):
            nums = [int(n) for n in re.findall(r"\d\d", m.group(1))]
            ranged = re.search(r"\d\d\s*(?:–|—|-|to)\s*\d\d", m.group(1))
            nums = range(min(nums), max(nums) + 1) if ranged else nums
        else:
            nums = [int(m.group(2))]
        ids.update(f"{n:02d}" for n in nums if f"{n:02d}" in all_notebooks)
    return sorted(ids)


def _why(key, sentence, nb, all_notebooks):
    """None when the number of `key` is accounted for, else why it is not."""
    if _in(key, nb) or CITATION.search(sentence):
        return None
    refs = _referenced(sentence, all_notebooks)
    if any(_in(key, all_notebooks[r]) for r in refs):
        return None
    course = COURSE_REF.search(sentence)
    if course and (key in LESSON_KEYS or any(_in(key, other) for other in all_notebooks.values())):
        return None
    if refs:
        return "nor in those of notebook " + " or ".join(refs)
    if course:
        return "nor a lesson figure (LESSON_FIGURES) or printed by any notebook"
    return "and no source marker in its sentence"


def unmatched(nb, all_notebooks):
    """Every number the markdown of `nb` states that neither its outputs nor its sentence's marker account for,
    one line each: the cell, the number, why, and the sentence. `all_notebooks` maps "03" to notebook 03."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        for sentence in _sentences(_strip(cell.source)):
            quoted = " ".join(sentence.replace(MARK, "<!-- check -->").translate(SHOW).split())
            quoted = quoted if len(quoted) <= 220 else quoted[:217] + "..."
            numbers = _numbers(sentence)
            if MARK in sentence and not any(placeholder for *_, placeholder in numbers):
                problems.append(f"cell {index}: placeholder <!-- check --> left in the text: «{quoted}»")
            for shown, key, placeholder in numbers:
                if placeholder:
                    problems.append(f"cell {index}: {shown} is a placeholder (<!-- check -->): «{quoted}»")
                elif why := _why(key, sentence, nb, all_notebooks):
                    problems.append(f"cell {index}: {shown} not in this notebook's outputs or code, {why}: «{quoted}»")
    return problems


@functools.lru_cache(maxsize=None)
def _all_notebooks():
    return {name[:2]: nbformat.read(NB_DIR / name, as_version=4) for name in FILES}


@pytest.mark.parametrize("file", FILES)
def test_prose_numbers_are_printed(file):
    notebooks = _all_notebooks()
    problems = unmatched(notebooks[file[:2]], notebooks)
    if problems:  # one failure per notebook, listing them all; no traceback, it would only repeat the list
        pytest.fail(f"{len(problems)} number(s) in the text of {file} that no output shows:\n" + "\n".join(problems),
                    pytrace=False)


# ---- The checker itself, on tiny notebooks -------------------------------------------------------------------

def _nb(markdown="", printed=(), code=""):
    cells = [v4.new_markdown_cell(markdown)] if markdown else []
    cell = v4.new_code_cell(code)
    cell.outputs = [v4.new_output("stream", name="stdout", text=t) for t in printed]
    return v4.new_notebook(cells=cells + [cell])


def _shown(text):
    return [shown for shown, _, _ in _numbers(_strip(text))]


def test_a_printed_number_passes_and_a_changed_one_fails():
    assert unmatched(_nb("The book has 143,690 tokens.", ["143,690 tokens\n"]), {}) == []
    problems = unmatched(_nb("The book has 143,609 tokens.", ["143,690 tokens\n"]), {})
    assert len(problems) == 1 and "143,609" in problems[0] and "The book has 143,609 tokens." in problems[0]
    # the sentence is quoted with its inline code
    problems = unmatched(_nb("With `steps=2` it has 143,609 tokens."), {})
    assert len(problems) == 1 and "«With `steps=2` it has 143,609 tokens.»" in problems[0]


def test_numbers_are_matched_as_written():
    printed = "loss 6.838 | unseen 28.8% | -0.25 | 17 min | speed-up 1.11x | 0.5 ms | 3x\n"
    for same in ["6.838", "28.8 %", "−0.25", "17 minutes", "1.11×", "0.5 ms", "×3", "1e-3"]:
        assert unmatched(_nb(f"It is {same}.", [printed], code="lr = 1e-3"), {}) == [], same
        assert unmatched(_nb(f"It is {same}."), {}) != [], same
    for other in ["6.84", "6.8381", "16.838", "28.8 min", "0.25 s", "17 s", "1.1×", "5 ms", "1e-4", "8.8%"]:
        assert unmatched(_nb(f"It is {other}.", [printed], code="lr = 1e-3"), {}) != [], other


def test_a_reference_to_another_notebook_is_resolved():
    nb03 = _nb(printed=["unigram loss 6.838\n"])
    assert unmatched(_nb("Notebook 03 measured 6.838 nats."), {"03": nb03}) == []
    assert unmatched(_nb("The unigram model (03) gives 6.838 nats."), {"03": nb03}) == []
    assert unmatched(_nb("As notebooks 01–03 showed, 6.838 nats."), {"01": _nb(), "02": _nb(), "03": nb03}) == []
    problems = unmatched(_nb("Notebook 03 measured 6.883 nats."), {"03": nb03})
    assert len(problems) == 1 and "6.883" in problems[0] and "notebook 03" in problems[0]
    # the marker counts only in its own sentence
    assert unmatched(_nb("Notebook 03 measured it. It is 6.838 nats."), {"03": nb03}) != []


def test_course_figures_and_citations():
    assert unmatched(_nb("The course says 45 s for one forward pass."), {}) == []
    assert unmatched(_nb("The lesson's split keeps 90% for training."), {}) == []
    problems = unmatched(_nb("The course says 46 s for one forward pass."), {})
    assert len(problems) == 1 and "46 s" in problems[0]
    # a course-marked number may also be printed by any notebook
    assert unmatched(_nb("The course's raw file has 158,153 tokens."), {"02": _nb(printed=["158,153\n"])}) == []
    assert unmatched(_nb("Dropout (nanoGPT) uses 0.1 here."), {}) == []
    assert unmatched(_nb("(nanoGPT) uses 0.1"), {}) == []
    assert unmatched(_nb("Its init is N(0, 0.02) (Radford et al., 2019)."), {}) == []
    assert unmatched(_nb("A 6× speed-up (PaLM, appendix B)."), {}) == []
    assert unmatched(_nb("A dropout of 0.1 (see below)."), {}) != []


def test_placeholders_always_fail():
    nb = _nb("It takes 17 min <!-- check: timing --> on a T4.", ["17 min\n"])
    problems = unmatched(nb, {})
    assert len(problems) == 1 and "placeholder" in problems[0] and "17 min" in problems[0]
    problems = unmatched(_nb("It takes a while <!-- check: how long? -->."), {})
    assert len(problems) == 1 and "placeholder" in problems[0]
    assert unmatched(_nb("Fine. <!-- a plain comment, 6.838 -->"), {}) == []


def test_what_counts_as_a_number():
    assert _shown("a 28.8% share, 9 % of it, 17 min, 81 s, 0.5 ms, 2 h, 1.11×, 5.7x, ×3, 143,690, 6.838, 4.0, 1e-3"
                  ) == ["28.8%", "9 %", "17 min", "81 s", "0.5 ms", "2 h", "1.11×", "5.7x", "×3", "143,690",
                        "6.838", "4.0", "1e-3"]
    assert _shown("a 4× MLP and a −0.05 change, 2,048-token blocks.") == ["4×", "-0.05", "2,048"]
    assert _shown("12 blocks, 500 batches, notebook 03, Part IV, GPT-2, GPT-3.5, Model 5, 124M, 3rd, in 2023, "
                  "the 1980s, steps 1–3, version 2.13.0, 16 × 256, 8×128, 500 × 3 × the forward time, "
                  "12 heads, top-5, 0, 1, 2") == []


def test_what_is_not_read():
    text = """[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://x.y/1.5)

```python
lr = 0.001  # 6.838
```
Inline `lr=0.5` and math $\\lambda = 4.6$ and $$e^{-0.25}$$, a [link](https://example.com/v1.2.3?q=0.7),
https://example.com/0.9, e<sup>−λ</sup> and <!-- 3.14 -->. But 2.5 counts."""
    assert _shown(text) == ["2.5"]
