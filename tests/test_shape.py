"""The shape of language (gpt_lesson.language_shape): each measure on hand-counted text, and that together they tell a
held-out paragraph of the book from the untrained model's loop and from random tokens."""

import itertools
import string

import pytest
import torch

import gpt_lesson as gl
from gpt_lesson.language_shape import (FRESH_WINDOW, MEASURES, TextShape, likeness, sample_shapes, shape_of,
                                       vocabulary, words_of)


@pytest.fixture(scope="module")
def book():
    """(the book's shape, its known words, a paragraph of the last tenth, which the words were not taken from)."""
    text = gl.clean_text(gl.load_book(offline=True, verbose=False).text)
    cut = int(len(text) * 0.9)
    known = vocabulary(text[:cut])
    paragraph = next(p for p in text[cut:].split("\n\n") if len(words_of(p)) >= 100)
    return shape_of(text[:cut], known), known, paragraph


def test_words_are_runs_of_letters_with_inner_apostrophes():
    assert words_of("Don't stop—the man-mountain’s 2nd _Yahoos_, ’tis") == [
        "Don't", "stop", "the", "man", "mountain’s", "nd", "Yahoos", "tis"]
    assert vocabulary("The cat saw the Cat.") == {"the", "cat", "saw"}


def test_each_measure_on_a_hand_counted_text():
    text = "The cat sat.\r\nIt ran, and ran; then, it stopped!  a dog barked? yes"
    # 14 words; sentences: "The cat sat" | "It ran ... stopped" | "a dog barked" | "yes"; marks . , ; , ! ?
    s = shape_of(text, ["the", "Cat", "sat", "it", "ran"])  # any case: the, cat, sat, it, ran, ran, it are known
    assert s.words == 14
    assert s.known_share == pytest.approx(7 / 14)
    assert s.word_letters == pytest.approx(len("ThecatsatItranandranthenitstoppedadogbarkedyes") / 14)
    assert s.sentence_words == pytest.approx(14 / 4)
    assert s.capital_share == pytest.approx(2 / 4)
    assert s.punctuation_per_100 == pytest.approx(6 * 100 / 14)
    assert s.newlines_per_100 == pytest.approx(1 * 100 / 14)  # "\r\n" is one line break
    assert s.fresh_bigram_share == 1.0  # 13 word pairs, all different


def test_apostrophes_are_neither_letters_nor_punctuation():
    s = shape_of("Don't go.", set())
    assert (s.words, s.word_letters, s.punctuation_per_100) == (2, pytest.approx(3.0), pytest.approx(50.0))


def test_fresh_bigrams_count_repeats_within_the_window():
    assert shape_of("a b a b a b", set()).fresh_bigram_share == pytest.approx(2 / 5)  # ab ba (ab ba ab seen)
    assert shape_of("ions ions ions ions", set()).fresh_bigram_share == pytest.approx(1 / 3)
    fillers = ["".join(p) for p in itertools.product(string.ascii_lowercase[2:], repeat=2)]

    def share(n_fillers: int) -> float:  # "x y", fillers, "x y": does the second (x, y) see the first?
        return shape_of(" ".join(["x", "y", *fillers[:n_fillers], "x", "y"]), set()).fresh_bigram_share

    # n fillers make n + 3 pairs; the last (x, y) is pair n + 2, the first is pair 0
    assert share(FRESH_WINDOW - 2) == pytest.approx((FRESH_WINDOW + 0) / (FRESH_WINDOW + 1))  # 0 is in the window
    assert share(FRESH_WINDOW - 1) == 1.0  # pair 0 has just left the window of FRESH_WINDOW pairs


def test_texts_without_words_or_sentences():
    s = shape_of("", set())
    assert s == TextShape(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    s = shape_of("?!\n", set())  # marks and a newline over no words: divided by one word
    assert (s.words, s.punctuation_per_100, s.newlines_per_100, s.sentence_words) == (0, 200.0, 100.0, 0.0)


def test_likeness_is_the_mean_ratio_of_the_measures():
    a = TextShape(words=10, known_share=0.5, word_letters=4.0, sentence_words=10.0, capital_share=1.0,
                  punctuation_per_100=0.0, fresh_bigram_share=1.0, newlines_per_100=4.0)
    b = TextShape(words=99, known_share=1.0, word_letters=2.0, sentence_words=20.0, capital_share=1.0,
                  punctuation_per_100=0.0, fresh_bigram_share=0.5, newlines_per_100=2.0)
    # ratios 0.5, 0.5, 0.5, 1, 1 (both 0), 0.5, 0.5; the word count is not a measure
    assert likeness(a, b) == pytest.approx(4.5 / 7) == likeness(b, a)
    assert likeness(a, a) == 1.0 and len(MEASURES) == 7
    with pytest.raises(TypeError, match="reference must be a TextShape"):
        likeness(a, a.to_dict())


def test_the_loop_and_random_tokens_are_far_from_the_book(book):
    ref, known, paragraph = book
    held_out = shape_of(paragraph, known)
    loop = shape_of(" ions" * 64, known)
    glued = shape_of("ions" * 64, known)  # the untrained model's loop as the course's init writes it
    assert likeness(held_out, ref) > 0.8
    assert likeness(loop, ref) < 0.3 and likeness(glued, ref) < 0.3
    # measure by measure, the book's paragraph is on the book's side of the loop
    for m in ("known_share", "capital_share", "punctuation_per_100", "fresh_bigram_share", "newlines_per_100"):
        assert getattr(loop, m) < 0.5 * getattr(held_out, m), m
    for seed in range(4):  # uniformly random GPT-2 tokens, decoded
        ids = torch.randint(0, gl.VOCAB_SIZE, (128,), generator=torch.Generator().manual_seed(seed))
        junk = shape_of(gl.decode(ids), known)
        assert likeness(junk, ref) < likeness(held_out, ref) - 0.25, seed
        assert junk.known_share < 0.5 < held_out.known_share and junk.word_letters > 1.5 * held_out.word_letters


def test_bad_inputs_name_the_fix():
    with pytest.raises(TypeError, match="text must be a str"):
        shape_of(torch.arange(3), set())
    with pytest.raises(TypeError, match="build it with vocabulary"):
        shape_of("a text", "the known words")


def test_sample_shapes_writes_greedy_and_seeded_samples():
    torch.manual_seed(0)
    model = gl.Model5(gl.preset("tiny"))
    prompt = gl.encode(gl.LESSON_PROMPT)
    state = torch.get_rng_state()
    greedy, sampled = sample_shapes(model, prompt, 24, seed=3, known_words={"the"})
    assert torch.equal(torch.get_rng_state(), state)  # the sampler has its own generator
    ids = gl.generate_tokens(model, prompt[None], 24, generator=torch.Generator().manual_seed(3))[0, len(prompt):]
    assert (sampled.how, sampled.text) == ("sampled", gl.for_display(gl.decode(ids)))
    assert greedy.text == gl.generate(model, gl.LESSON_PROMPT, 24, greedy=True)[len(gl.LESSON_PROMPT):]
    assert greedy.shape == shape_of(greedy.text, {"the"}) and greedy.to_dict()["shape"] == greedy.shape.to_dict()
    again = sample_shapes(model, prompt, 24, seed=3, known_words={"the"})
    assert again == (greedy, sampled)
    with pytest.raises(ValueError, match="n_tokens must be a positive number"):
        sample_shapes(model, prompt, 0, seed=0, known_words=set())
    with pytest.raises(ValueError, match="prompt_ids must be a 1-D tensor"):
        sample_shapes(model, prompt[None], 5, seed=0, known_words=set())
