"""Step 07: the shape of language: a few counts that tell a paragraph of the book from a model's loop or junk.

After a few hundred batches a model writes no sense yet, but its text already has the book's shape: words of the
book, sentences of the book's length that start with a capital, commas and full stops, a newline every dozen words
(the book is hard-wrapped), and no word pair repeated over and over. The untrained model's "ions ions ions ..." has
none of that, and neither have random tokens. `shape_of` counts these, per text:

- ``known_share``: the share of its words that are words of the training text (``known_words``, from `vocabulary`);
- ``word_letters``: letters per word (a loop glued into one word, "ionsionsions", has hundreds);
- ``sentence_words``: words per sentence (a sentence ends at . ! or ?; the text after the last one counts too);
- ``capital_share``: the share of sentences whose first letter is a capital;
- ``punctuation_per_100``: punctuation marks per 100 words (``PUNCTUATION``: apostrophes are left out, they are
  mostly inside words like don't);
- ``fresh_bigram_share``: the share of word pairs (case ignored) that are not among the ``FRESH_WINDOW`` pairs just
  before them: a loop repeats them, prose almost never does (a share over a window, not over the whole text, so a
  short sample and the whole book are measured alike; 0 with fewer than two words);
- ``newlines_per_100``: line breaks per 100 words.

Words are runs of letters (with apostrophes inside: don't, ’tis); digits, underscores and hyphens split them. Rates
per 100 words divide by at least one word. `likeness` sums a shape up against the book's own figures in one number.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, fields

import torch

from .config import is_int, is_number
from .generation import generate_tokens
from .model import Model5
from .tokens import decode, for_display

_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)*")
_SENTENCE_END = re.compile(r"[.!?]+")
PUNCTUATION = frozenset(".,;:!?()[]\"“”-–—")
FRESH_WINDOW = 64  # word pairs looked back at by fresh_bigram_share


def words_of(text: str) -> list[str]:
    """The words of ``text`` as written (case kept), in order."""
    return _WORD.findall(text)


def vocabulary(text: str) -> frozenset[str]:
    """The distinct words of ``text``, lower-cased: the ``known_words`` of `shape_of`."""
    return frozenset(w.lower() for w in words_of(text))


@dataclass(frozen=True)
class TextShape:
    """The figures of one text (see the module). ``words``: how many words they were counted over."""

    words: int
    known_share: float
    word_letters: float
    sentence_words: float
    capital_share: float
    punctuation_per_100: float
    fresh_bigram_share: float
    newlines_per_100: float

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return (f"{self.words:,} words: {self.known_share:.0%} known, {self.word_letters:.1f} letters a word, "
                f"{self.sentence_words:.1f} words a sentence, "
                f"{self.capital_share:.0%} of sentences capitalized, {self.punctuation_per_100:.1f} punctuation "
                f"marks and {self.newlines_per_100:.1f} newlines per 100 words, "
                f"{self.fresh_bigram_share:.0%} of word pairs fresh")


MEASURES = tuple(f.name for f in fields(TextShape) if f.name != "words")


def _fresh_share(words: list[str]) -> float:
    """The share of word bigrams not among the FRESH_WINDOW bigrams just before them (0.0 without bigrams)."""
    pairs = list(zip(words, words[1:]))
    window: Counter[tuple[str, str]] = Counter()  # the pairs pairs[i - FRESH_WINDOW : i] when pair i is looked up
    fresh = 0
    for i, pair in enumerate(pairs):
        fresh += window[pair] == 0
        window[pair] += 1
        if i >= FRESH_WINDOW:
            window[pairs[i - FRESH_WINDOW]] -= 1
    return fresh / len(pairs) if pairs else 0.0


def shape_of(text: str, known_words: Iterable[str]) -> TextShape:
    """The shape of ``text`` (see the module); ``known_words``: the training text's words (`vocabulary`), any case."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str (decode token ids with gpt_lesson.decode), got {type(text).__name__}")
    if isinstance(known_words, str):
        raise TypeError("known_words must be a collection of words, not one str; build it with vocabulary(text)")
    known = frozenset(w.lower() for w in known_words)
    text = for_display(text)  # "\r\n" is one line break
    words = words_of(text)
    lower = [w.lower() for w in words]
    per_word = 100 / max(len(words), 1)
    sentences = [s for s in _SENTENCE_END.split(text) if _WORD.search(s)]
    capitals = sum(_WORD.search(s).group()[0].isupper() for s in sentences)
    return TextShape(
        words=len(words),
        known_share=sum(w in known for w in lower) / len(words) if words else 0.0,
        word_letters=sum(len(w) - w.count("'") - w.count("’") for w in words) / len(words) if words else 0.0,
        sentence_words=len(words) / len(sentences) if sentences else 0.0,
        capital_share=capitals / len(sentences) if sentences else 0.0,
        punctuation_per_100=sum(c in PUNCTUATION for c in text) * per_word,
        fresh_bigram_share=_fresh_share(lower),
        newlines_per_100=text.count("\n") * per_word,
    )


def likeness(shape: TextShape, reference: TextShape) -> float:
    """How close ``shape`` is to ``reference`` (the book's own shape), in [0, 1]: the mean over the seven measures of
    min(a, b) / max(a, b) (1 where both are 0).

    A ratio rather than a difference, so that measures of different units (a share, words a sentence, marks per 100
    words) count alike and none needs a scale; each measure weighs the same. 1 means the same figures; a text that
    misses a feature the book has (no punctuation, no known words) scores 0 on that measure.
    """
    for name, s in (("shape", shape), ("reference", reference)):
        if not isinstance(s, TextShape):
            raise TypeError(f"{name} must be a TextShape (from shape_of), got {type(s).__name__}")
    ratios = []
    for m in MEASURES:
        a, b = getattr(shape, m), getattr(reference, m)
        ratios.append(1.0 if max(a, b) == 0 else min(a, b) / max(a, b))
    return sum(ratios) / len(ratios)


@dataclass(frozen=True)
class SampleShape:
    """One continuation written by the model (``how``: "greedy" or "sampled"), as text, and its shape."""

    how: str
    text: str
    shape: TextShape

    def to_dict(self) -> dict:
        return {"how": self.how, "text": self.text, "shape": self.shape.to_dict()}


def sample_shapes(
    model: Model5, prompt_ids: torch.Tensor, n_tokens: int, *, seed: int, known_words: Iterable[str],
    temperature: float = 1.0, top_k: int | None = None, decode_ids: Callable[[torch.Tensor], str] = decode,
) -> tuple[SampleShape, SampleShape]:
    """A greedy and a sampled continuation of ``prompt_ids`` (1-D ids), ``n_tokens`` each, and their shapes (of the
    continuation only: the prompt is the book's). The sample draws from ``torch.Generator`` seeded with ``seed`` on
    the model's device, so the global RNG is left alone. ``decode_ids``: ids -> text, for a model whose vocabulary is
    not GPT-2's (e.g. ``lambda ids: gpt_lesson.decode(vocab.decode(ids))`` for notebook 08's compact vocabulary)."""
    if not (is_int(n_tokens) and n_tokens >= 1):
        raise ValueError(f"n_tokens must be a positive number of tokens to write, got {n_tokens!r}")
    if not is_int(seed):
        raise TypeError(f"seed must be an integer (it seeds the sampler's generator), got {seed!r}")
    if not (is_number(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a number > 0 (1.0: the model's own probabilities), got {temperature!r}")
    if not isinstance(prompt_ids, torch.Tensor) or prompt_ids.dim() != 1:
        raise ValueError("prompt_ids must be a 1-D tensor of token ids (e.g. gpt_lesson.encode(text)); "
                         f"got {type(prompt_ids).__name__} {tuple(getattr(prompt_ids, 'shape', ()))}")
    known = frozenset(w.lower() for w in known_words)
    device = next(model.parameters()).device
    p = len(prompt_ids)
    greedy = generate_tokens(model, prompt_ids[None], n_tokens, greedy=True)[0, p:]
    g = torch.Generator(device=device).manual_seed(seed)
    sampled = generate_tokens(model, prompt_ids[None], n_tokens, temperature=temperature, top_k=top_k,
                              generator=g)[0, p:]
    out = []
    for how, ids in (("greedy", greedy), ("sampled", sampled)):
        text = for_display(decode_ids(ids.cpu()))
        out.append(SampleShape(how, text, shape_of(text, known)))
    return out[0], out[1]
