"""Computed verdicts: a difference, its noise, and whether it is a finding, as one printed sentence.

A notebook that compares two things (two splits' test losses over seeds, CPU and GPU times over repeats) states
its conclusion through `verdict` or `ratio_verdict` instead of in prose written beforehand, so the sentence it
prints is the one its numbers support:

    tail - block: +0.067 ± 0.046 nats (3 seeds): within the noise: no finding
    CPU / GPU time: 45.1x ×/÷ 1.03 (5 repeats): beyond the noise: the GPU is faster
    GPU time: not measured here (no GPU)

**The rule.** A difference is *beyond the noise* when ``|difference| > 2 × noise``, where the noise is one
standard deviation of the difference one run (one seed, one repeat) would show. It is the experiments' "twice
the seed spread": a rule of thumb for "the seed alone rarely does this", not a significance test. Exactly twice
the noise is still within it.

- paired values ``a``, ``b`` (the same seeds for both): the per-seed differences d_i = a_i - b_i; difference =
  mean(d), noise = std(d) with ddof=1. Pairing removes what a seed does to both alike.
- unpaired values: difference = mean(a) - mean(b), noise = sqrt(var(a) + var(b)) (ddof=1): the spread of the
  difference of one value of each.
- a precomputed ``difference`` and its ``noise`` (one standard deviation).
- `ratio_verdict` (timings): the same rule on logarithms. d_i = ln a_i - ln b_i; the ratio is exp(mean(d)), and
  it is beyond the noise when |mean(d)| > 2 × std(d), i.e. the ratio lies outside the band ×/÷ exp(2·std(d)).

A stand-in for a value that was never measured (NaN, ±inf, None, an empty list) is refused with a ValueError;
pass ``not_measured="why"`` (or call `not_measured`) to say so instead. A "not measured" verdict is never beyond
the noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

KINDS = ("beyond", "within", "not measured")
FACTOR = 2.0  # beyond the noise: |difference| > FACTOR × noise


@dataclass(frozen=True)
class Verdict:
    """One comparison and its conclusion. ``str(v)`` is the sentence to print; ``v.beyond`` is for checks.

    ``difference`` and ``noise`` are in ``unit``; for a ratio (``ratio=True``) they are natural logs of the ratio
    and of its spread factor, and ``value`` is the ratio itself. ``n``: values per side (paired: pairs), 0 when
    unknown; ``n_b``: the second side's count when unpaired and different. Not measured: both are NaN, n = 0.
    """

    what: str
    difference: float
    noise: float
    n: int
    kind: str  # one of KINDS
    direction: str  # the finding when beyond; "no finding" when within; "" when not measured
    reason: str  # the rule as applied ("|+0.210| > 2 × 0.046"), or why it was not measured
    unit: str = ""
    ratio: bool = False
    n_b: int | None = None
    n_label: str = "seeds"
    digits: int = 3

    @property
    def beyond(self) -> bool:
        """True when the difference is beyond the noise (a finding); never for a value not measured."""
        return self.kind == "beyond"

    @property
    def holds(self) -> bool:
        """The finding holds: the same as `beyond`."""
        return self.beyond

    @property
    def measured(self) -> bool:
        return self.kind != "not measured"

    @property
    def sign(self) -> int:
        """+1 or -1 when beyond the noise (the difference's sign; a ratio above or below 1), else 0."""
        return (1 if self.difference > 0 else -1) if self.beyond else 0

    @property
    def value(self) -> float:
        """The measured figure: the difference, or for a ratio the ratio exp(difference)."""
        return math.exp(self.difference) if self.ratio else self.difference

    def __str__(self) -> str:
        if not self.measured:
            return f"{self.what}: not measured here ({self.reason})"
        unit = f" {self.unit}" if self.unit else ""
        if self.ratio:
            figure = f"{_fmt_ratio(self.value, self.digits)}x ×/÷ {math.exp(self.noise):.{self.digits - 1}f}"
        else:
            figure = f"{_fmt(self.difference, self.digits, sign=True)} ± {_fmt(self.noise, self.digits)}{unit}"
        counts = ""
        if self.n:
            both = f"{self.n} + {self.n_b}" if self.n_b is not None else str(self.n)
            counts = f" ({both} {self.n_label}{', unpaired' if self.n_b is not None else ''})"
        return f"{self.what}: {figure}{counts}: {self.kind} the noise: {self.direction}"

    def show(self) -> Verdict:
        """Print the sentence and return the verdict (``v = gl.verdict(...).show()``)."""
        print(self)
        return self


def not_measured(what: str, reason: str) -> Verdict:
    """A verdict for a value this runtime could not measure; it prints "not measured here (reason)"."""
    return _unmeasured(_label(what), reason)


def _unmeasured(what: str, reason: object) -> Verdict:
    if not (isinstance(reason, str) and reason.strip()):
        raise ValueError("not_measured needs a reason, e.g. not_measured('GPU time', 'no GPU')")
    return Verdict(what, math.nan, math.nan, 0, "not measured", "", reason.strip())


def verdict(
    what: str,
    a: Sequence[float] | None = None,
    b: Sequence[float] | None = None,
    *,
    paired: bool = True,
    difference: float | None = None,
    noise: float | None = None,
    n: int = 0,
    unit: str = "",
    above: str | None = None,
    below: str | None = None,
    not_measured: str | None = None,
    n_label: str = "seeds",
    digits: int = 3,
) -> Verdict:
    """Is ``a - b`` beyond the noise? Give per-seed values ``a`` and ``b`` (``paired=True``: the same seeds in the
    same order), or a precomputed ``difference`` and its ``noise`` (one standard deviation; ``n`` runs, if known).

    ``above``/``below``: the finding when the difference is positive/negative (default: "<first> is higher than
    <second>" for a ``what`` of the form "first - second"). ``not_measured="why"``: this runtime has no value
    (then ``a``, ``b``, ``difference`` are ignored). Rule: beyond when |difference| > 2 × noise (module docstring).
    """
    what = _label(what)
    if not_measured is not None:
        return _unmeasured(what, not_measured)
    if (a is None) != (b is None):
        raise ValueError("give both a and b (per-seed values), or neither and difference= with noise=")
    if a is not None:
        if difference is not None or noise is not None:
            raise ValueError("give either the values a and b, or difference= and noise=, not both")
        difference, noise, n, n_b = _from_values(_values(a, "a"), _values(b, "b"), paired)
    else:
        difference, noise, n_b = _finite(difference, "difference"), _finite(noise, "noise"), None
        if noise < 0:
            raise ValueError(f"noise is one standard deviation, so >= 0; got {noise!r}")
        if not (isinstance(n, int) and not isinstance(n, bool) and n >= 0):
            raise ValueError(f"n must be the number of runs behind the difference (0: unknown), got {n!r}")
    up, down = _directions(what, above, below, "higher", "lower")
    return _decide(what, difference, noise, n, up, down, unit=unit, n_b=n_b, n_label=n_label, digits=digits)


def ratio_verdict(
    what: str,
    times_a: Sequence[float] | None = None,
    times_b: Sequence[float] | None = None,
    *,
    paired: bool = True,
    above: str | None = None,
    below: str | None = None,
    not_measured: str | None = None,
    n_label: str = "repeats",
    digits: int = 3,
) -> Verdict:
    """Is the ratio of ``times_a`` to ``times_b`` (positive values, e.g. seconds over repeats) beyond the noise?

    On logs: d_i = ln a_i - ln b_i (paired: repeat i of each, as `gpt_lesson.time_interleaved` takes turns;
    unpaired: ln a against ln b as two groups), the ratio exp(mean d), beyond when |mean d| > 2 × std(d).
    ``above``: the finding when a/b > 1 (e.g. "the GPU is faster" for CPU / GPU times); ``below`` when < 1.
    """
    what = _label(what)
    if not_measured is not None:
        return _unmeasured(what, not_measured)
    if times_a is None or times_b is None:
        raise ValueError("give both lists of times, or not_measured='why' when one could not be measured here")
    logs = []
    for name, times in (("times_a", times_a), ("times_b", times_b)):
        values = _values(times, name)
        if min(values) <= 0:
            raise ValueError(f"{name} must be positive (times, sizes); got {min(values)!r}")
        logs.append([math.log(v) for v in values])
    difference, noise, n, n_b = _from_values(logs[0], logs[1], paired)
    up, down = _directions(what, above, below, "larger", "smaller", ratio=True)
    return _decide(what, difference, noise, n, up, down, ratio=True, n_b=n_b, n_label=n_label, digits=digits)


def _decide(what: str, difference: float, noise: float, n: int, up: str, down: str, **fields) -> Verdict:
    digits = fields["digits"]
    if not (isinstance(digits, int) and not isinstance(digits, bool) and 1 <= digits <= 12):
        raise ValueError(f"digits must be an integer from 1 to 12 (decimals shown), got {digits!r}")
    beyond = abs(difference) > FACTOR * noise
    rel = ">" if beyond else "<="
    reason = f"|{_fmt(difference, digits, sign=True)}| {rel} {FACTOR:g} × {_fmt(noise, digits)}"
    if fields.get("ratio"):
        reason += " (natural logs of the ratio and of its spread)"
    direction = (up if difference > 0 else down) if beyond else "no finding"
    return Verdict(what, difference, noise, n, "beyond" if beyond else "within", direction, reason, **fields)


def _from_values(a: list[float], b: list[float], paired: bool) -> tuple[float, float, int, int | None]:
    """(difference, noise, n, n_b) of two lists of finite values, by the rules of the module docstring."""
    if not isinstance(paired, bool):
        raise TypeError(f"paired must be True (the same seeds for a and b) or False, got {paired!r}")
    if paired:
        if len(a) != len(b):
            raise ValueError(f"paired values need the same seeds on both sides: a has {len(a)} values, b {len(b)}; "
                             "for two independent groups use paired=False")
        _at_least_two(len(a), "pairs")
        d = [x - y for x, y in zip(a, b)]
        return statistics.fmean(d), statistics.stdev(d), len(d), None
    _at_least_two(min(len(a), len(b)), "values on each side")
    noise = math.sqrt(statistics.variance(a) + statistics.variance(b))
    return statistics.fmean(a) - statistics.fmean(b), noise, len(a), len(b)


def _at_least_two(count: int, what: str) -> None:
    if count < 2:
        raise ValueError(f"{count} {what}: the noise needs at least 2 (its standard deviation); run another seed or "
                         "repeat, or give difference= and noise= from elsewhere")


def _values(values: object, name: str) -> list[float]:
    """A list of finite floats, or a ValueError that says how to mark a value not measured."""
    hint = "; if it was not measured on this runtime, pass not_measured='why' instead"
    if values is None or isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise ValueError(f"{name} must be a list of numbers, got {values!r}{hint}")
    if hasattr(values, "tolist"):  # a tensor or an array
        values = values.tolist()
    out = [_finite(v, f"{name}[{i}]", hint) for i, v in enumerate(values)]
    if not out:
        raise ValueError(f"{name} is empty{hint}")
    return out


def _finite(v: object, name: str, hint: str = "") -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) and not hasattr(v, "__float__"):
        raise ValueError(f"{name} must be a number, got {v!r}{hint or '; if not measured use not_measured=...'}")
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"{name} is {v}: a stand-in, not a measurement{hint or '; use not_measured=... instead'}")
    return v


def _label(what: object) -> str:
    if not (isinstance(what, str) and what.strip()):
        raise ValueError(f"what must name the comparison, e.g. 'tail - block test loss', got {what!r}")
    return what.strip()


def _directions(what: str, above: str | None, below: str | None, more: str, less: str,
                ratio: bool = False) -> tuple[str, str]:
    """The findings for a positive and a negative difference: given, or made from "first - second"."""
    sep = " / " if ratio else " - "
    if sep in what:
        first, second = (part.strip() for part in what.split(sep, 1))
        defaults = (f"{first} is {more} than {second}", f"{first} is {less} than {second}")
    else:
        zero = "1" if ratio else "zero"
        defaults = (f"{what} is above {zero}", f"{what} is below {zero}")
    return above or defaults[0], below or defaults[1]


def _fmt_ratio(x: float, digits: int) -> str:
    """``digits`` significant figures (45.1, 2.13), whole numbers from 10**digits up."""
    return f"{x:.0f}" if x >= 10**digits else f"{x:.{digits}g}"


def _fmt(x: float, digits: int, sign: bool = False) -> str:
    """``digits`` decimals, or ``digits`` significant figures for a value too small to show that way."""
    plus = "+" if sign else ""
    if x != 0 and abs(x) < 10 ** -digits:
        return f"{x:{plus}.{digits}g}"
    return f"{x:{plus}.{digits}f}" if abs(x) < 100 else f"{x:{plus}.1f}"


def check(statement: str, evidence: bool | Verdict | Sequence[bool] | None, *, direction: int = 1,
          reason: str = "") -> bool | None:
    """Print one checked line, ``statement: True`` or ``statement: False``, only when there was something to check.

    - ``evidence`` a bool: printed as it is.
    - a sequence of bools (one per case, e.g. per GPU): all of them; an empty one prints
      ``statement: not measured here (reason)`` and returns None, never ``True`` over nothing.
    - a `Verdict`: the statement claims its difference has the sign ``direction`` (+1: a above b). Beyond the noise,
      the line says whether it has; within the noise it prints ``statement: no finding (within the noise)``, and
      not measured, ``not measured here``: a direction inside the noise is never printed as True or False.
    - None: not measured (``reason`` says why).

    Returns True/False for a line that was checked, None for one that could not be.
    """
    if not (isinstance(statement, str) and statement.strip()):
        raise ValueError("check needs the statement it prints, e.g. check('the loss fell', after < before)")
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 (the statement says a > b) or -1 (a < b), got {direction!r}")
    if isinstance(evidence, Verdict):
        if not evidence.measured:
            return _say(statement, None, evidence.reason)
        if not evidence.beyond:
            print(f"{statement}: no finding (within the noise)")
            return None
        return _say(statement, evidence.sign == direction)
    if evidence is None:
        return _say(statement, None, reason or "nothing to compare")
    if isinstance(evidence, bool):
        return _say(statement, evidence)
    cases = list(evidence)
    if not all(isinstance(c, bool) for c in cases):
        raise TypeError("check's evidence is a bool, a list of bools, a Verdict or None; got "
                        f"{type(evidence).__name__} of {sorted({type(c).__name__ for c in cases})}")
    return _say(statement, all(cases) if cases else None, reason or "nothing to compare")


def _say(statement: str, holds: bool | None, reason: str = "") -> bool | None:
    print(f"{statement}: {holds}" if holds is not None else f"{statement}: not measured here ({reason})")
    return holds
