"""The corpus the experiments train on: *Gulliver's Travels* in its own compact vocabulary, and its test parts.

The model's vocabulary is the corpus's own tokens (`Vocab`): the same text and the same predictions, but a head
5× smaller than GPT-2's 50,257 rows, which is most of the time a small model spends on a CPU. The book is read
and split by the package's own steps: `gpt_lesson.book.clean_text` and `gpt_lesson.split.tail_split`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from ..book import END_RE, clean_text
from ..evaluation import EvalSet
from ..split import block_split, tail_split
from ..tokens import decode, encode

# The test sets' names, as they appear in results, reports and plots.
TAIL_TEST = "tail test"  # the lesson's: the last 10% of the cleaned book
TRAIN_PART = "training part"  # the lesson's training part (the first 90%), scored like a test set
BLOCK_TEST = "block test"  # notebook 03's block split (seed 0)
COURSE_TEST = "course test part"  # the course's: the last 10% of the raw file, licence included
COURSE_BOOK = "course test part without the licence"
LICENCE = "licence alone"


@dataclass(frozen=True)
class Vocab:
    """The GPT-2 ids a corpus uses, sorted: compact id i stands for GPT-2 id ``ids[i]``."""

    ids: torch.Tensor  # (V,) int64, sorted, unique

    @classmethod
    def of(cls, *token_vectors: torch.Tensor) -> Vocab:
        return cls(torch.unique(torch.cat([t.long().reshape(-1) for t in token_vectors])))

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, gpt2_tokens: torch.Tensor) -> torch.Tensor:
        """GPT-2 ids (N,) -> compact ids (N,); an id outside the vocabulary is an error."""
        t = gpt2_tokens.long()
        idx = torch.searchsorted(self.ids, t).clamp(max=len(self.ids) - 1)
        missing = self.ids[idx] != t
        if missing.any():
            raise ValueError(f"{int(missing.sum())} tokens are not in this vocabulary (e.g. GPT-2 id "
                             f"{int(t[missing][0])}); build it with Vocab.of(...) from every text you will encode")
        return idx

    def decode(self, ids: torch.Tensor) -> torch.Tensor:
        """Compact ids -> GPT-2 ids (for `gpt_lesson.decode`)."""
        return self.ids[ids.long()]


@dataclass(frozen=True)
class Corpus:
    """*Gulliver's Travels* as the experiments use it, in the compact ids of ``vocab``."""

    vocab: Vocab
    tokens: torch.Tensor  # the cleaned book (notebooks 01-02)
    tail_n: int  # the lesson's 90/10 tail split: tokens[:tail_n] train
    part4: int  # where Part IV starts
    course_book: torch.Tensor  # the course's test part (last 10% of the raw file's tokens) up to the licence ...
    course_licence: torch.Tensor  # ... and the Project Gutenberg end marker and licence after it
    seq_len: int

    @property
    def tail_test(self) -> EvalSet:
        return EvalSet.windows(self.tokens[self.tail_n :], self.seq_len, name=TAIL_TEST)

    @property
    def train_part(self) -> EvalSet:
        """Every non-overlapping window of the lesson's training part: its loss measured as the test loss is."""
        return EvalSet.windows(self.tokens[: self.tail_n], self.seq_len, name=TRAIN_PART)

    def block(self) -> tuple[torch.Tensor, EvalSet]:
        """Notebook 03's block split (seed 0), with a gap of ``seq_len``: (allowed train starts, test set)."""
        split = block_split(self.tokens, 0.1, block_len=2048, seq_len=self.seq_len,
                            generator=torch.Generator().manual_seed(0))
        test = EvalSet.windows(self.tokens, self.seq_len, allowed=split.starts("test", self.seq_len), name=BLOCK_TEST)
        return split.starts("train", self.seq_len), test

    def course_sets(self) -> list[EvalSet]:
        """The course's test part with and without the licence, and the licence alone."""
        whole = torch.cat([self.course_book, self.course_licence])
        return [EvalSet.windows(t, self.seq_len, name=n) for n, t in
                ((COURSE_TEST, whole), (COURSE_BOOK, self.course_book), (LICENCE, self.course_licence))]


def gulliver(raw_text: str, seq_len: int) -> Corpus:
    """The corpus from the raw Gutenberg file (BOM, CRLF, header and licence included)."""
    text = clean_text(raw_text)
    gpt2 = encode(text)
    m = re.search(r"^PART IV\. A VOYAGE", text, re.MULTILINE)
    if m is None:
        raise ValueError("no 'PART IV. A VOYAGE' heading in this text: the experiments need Gulliver's Travels")
    _, course_test = tail_split(encode(raw_text), 0.9)  # the course's tokens and its split
    tail = clean_text(decode(course_test), strip_boilerplate=False)  # line endings as ours
    end = END_RE.search(tail)
    cut = end.start() if end is not None else len(tail)
    book_part, licence = encode(tail[:cut]), encode(tail[cut:])
    vocab = Vocab.of(gpt2, book_part, licence)
    train, _ = tail_split(gpt2, 0.9)
    return Corpus(vocab, vocab.encode(gpt2), len(train), len(encode(text[: m.start()])), vocab.encode(book_part),
                  vocab.encode(licence), seq_len)
