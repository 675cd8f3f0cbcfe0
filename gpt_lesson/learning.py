"""Step 06: watch the model learn, and catch it reciting, at every evaluation of a run.

The lesson makes two claims beside the loss: a few hundred batches learn the *shape* of language (newlines,
punctuation, sentences), and random batches over one short book invite *memorization*. `Watch` measures both each
time the `Trainer` measures the test loss (it is one of the Trainer's ``on_eval`` callbacks: no second loop):

- the shape: one greedy and one sampled continuation of the lesson's prompt (a fixed seed), each scored against the
  training text's own figures (`gpt_lesson.language_shape`; ``likeness`` 1.0 = the book's shape);
- recitation: the extraction probe (`gpt_lesson.memorization.extraction`) on windows of the training text, and on
  the same number of windows of the test text as the control.

Every record goes into ``History.learning`` (so into checkpoints and ``metrics.json``). Nothing here touches the
global RNG, so a watched run trains exactly as an unwatched one, and a resumed run records what an unbroken one does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .generation import LESSON_PROMPT
from .language_shape import TextShape, likeness, sample_shapes, shape_of, vocabulary
from .memorization import extraction
from .tokens import decode, encode, for_display

__all__ = ["Watch", "learning_summary"]


@dataclass(frozen=True)
class Watch:
    """What to measure at every evaluation; build it with `Watch.of`, pass it to `gpt_lesson.train` (``watch=``) or
    as a `Trainer`'s ``on_eval``."""

    train_tokens: torch.Tensor  # (N,) the training part, for the probe
    test_tokens: torch.Tensor  # (M,) the test part: the probe's control
    known_words: frozenset[str]  # the words of the training text
    book: TextShape  # the training text's own shape, the reference
    prompt_ids: torch.Tensor  # (P,) the prompt of the two samples
    sample_tokens: int = 100
    seed: int = 0
    n: int = 32  # windows per probe
    prompt_len: int = 32
    continuation: int = 64
    decode_ids: Callable[[torch.Tensor], str] = decode

    @classmethod
    def of(cls, train_tokens: torch.Tensor, test_tokens: torch.Tensor, *, context_length: int,
           prompt: str = LESSON_PROMPT, sample_tokens: int = 100, seed: int = 0, n: int = 32,
           decode_ids: Callable[[torch.Tensor], str] = decode, encode_text: Callable[[str], torch.Tensor] = encode
           ) -> Watch:
        """A watch for a model of ``context_length``: the probe's prompt and continuation are 32 and 64 tokens (the
        defaults), or a quarter and a half of a shorter context. The training text's words and shape are read
        here, once (about half a second for the book)."""
        text = for_display(decode_ids(train_tokens.cpu()))
        known = vocabulary(text)
        prompt_len, continuation = min(32, context_length // 4), min(64, context_length // 2)
        return cls(train_tokens.cpu(), test_tokens.cpu(), known, shape_of(text, known), encode_text(prompt),
                   sample_tokens, seed, n, prompt_len, continuation, decode_ids)

    def record(self, model: torch.nn.Module, step: int) -> dict:
        """The measures of ``model`` after ``step`` steps, as plain numbers (and the two samples' text)."""
        greedy, sampled = sample_shapes(model, self.prompt_ids, self.sample_tokens, seed=self.seed,
                                        known_words=self.known_words, decode_ids=self.decode_ids)
        probe = dict(n=self.n, prompt_len=self.prompt_len, continuation=self.continuation, seed=self.seed)
        on_train = extraction(model, self.train_tokens, **probe)
        on_test = extraction(model, self.test_tokens, **probe)
        return {
            "step": step,
            **{s.how: {"likeness": likeness(s.shape, self.book), "text": s.text, "shape": s.shape.to_dict()}
               for s in (greedy, sampled)},
            "reproduced_train": on_train.mean, "reproduced_test": on_test.mean,
            "full_train": on_train.full_share, "full_test": on_test.full_share,
            "longest_train": on_train.longest, "longest_train_start": on_train.longest_start,
        }

    def __call__(self, trainer, step: int, loss: float) -> None:
        """The Trainer's ``on_eval`` callback: record after the test loss of ``step``."""
        trainer.history.learning.append(self.record(trainer.model, step))


def learning_summary(records: list[dict]) -> str:
    """One line about the last record, e.g. "after 500 steps: the sample's shape is 0.81 of the book's; training
    text reproduced for 3.2 tokens on average, test text for 1.1" ('' without records)."""
    if not records:
        return ""
    r = records[-1]
    return (f"after {r['step']} steps: the sample's shape is {r['sampled']['likeness']:.2f} of the book's (greedy: "
            f"{r['greedy']['likeness']:.2f}); training text reproduced for {r['reproduced_train']:.1f} tokens on "
            f"average, test text for {r['reproduced_test']:.1f}")
