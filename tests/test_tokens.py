"""Step 02: the offline GPT-2 tokenizer."""

import shutil
import socket
from pathlib import Path

import pytest
import tiktoken
import torch

from gpt_lesson import book as bk
from gpt_lesson import tokens as tk
from gpt_lesson.tokens import EOT_ID, VOCAB_SIZE, check_tokens, decode, encode, for_display, gpt2_encoding

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# tiktoken's cache names: sha1 of the URL each file is downloaded from
TIKTOKEN_CACHE_NAMES = {
    "encoder.json": "6c7ea1a7e38e3a7f062df639a5b80947f075ffe6",
    "vocab.bpe": "6d1cbeee0f20b3d9449abfede4726ed8212e3aee",
}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to resolve a host name or open a connection fails at once."""

    def refuse(*args, **kwargs):
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_vocab():
    enc = gpt2_encoding()
    assert enc.n_vocab == VOCAB_SIZE == 50_257
    assert enc.eot_token == EOT_ID == 50_256
    ranks = tk._load_ranks()
    assert sorted(ranks.values()) == list(range(50_256))


@pytest.mark.parametrize(
    "text, ids",
    [("Hello world", [15496, 995]), (" the", [262]), ("<|endoftext|>", [50256]), ("", [])],
)
def test_known_ids(text, ids):
    t = encode(text)
    assert t.tolist() == ids
    assert t.dtype == torch.int64 and t.dim() == 1


def test_endoftext_inside_text_is_one_token():
    ids = encode("The end.<|endoftext|>Chapter").tolist()
    assert ids.count(EOT_ID) == 1
    assert decode(ids) == "The end.<|endoftext|>Chapter"


def test_round_trip_on_the_book(book_text):
    ids = encode(book_text)
    assert decode(ids) == book_text


def test_decode_accepts_lists_and_any_shape():
    ids = encode("Hello world, hello Lilliput")
    assert decode(ids.tolist()) == decode(ids.reshape(1, -1)) == "Hello world, hello Lilliput"


def test_for_display():
    assert for_display("a\r\nb\rc\n") == "a\nb\nc\n"


def test_same_as_tiktoken_gpt2(book_text, tmp_path, monkeypatch, no_network):
    if not all((SHARED_DATA / name).is_file() for name in TIKTOKEN_CACHE_NAMES):
        pytest.skip(f"no GPT-2 vocabulary files in {SHARED_DATA} to fill tiktoken's cache offline")
    for name, cache_name in TIKTOKEN_CACHE_NAMES.items():
        shutil.copyfile(SHARED_DATA / name, tmp_path / cache_name)  # copies: tiktoken deletes bad ones
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    reference = tiktoken.get_encoding("gpt2")
    assert reference.n_vocab == gpt2_encoding().n_vocab
    assert encode(book_text).tolist() == reference.encode(book_text)
    text = "Hello world <|endoftext|> 'tis 1726, isn't it?  \r\n\t  Lilliput\u2019s"
    assert encode(text).tolist() == reference.encode(text, allowed_special={"<|endoftext|>"})


def test_works_with_the_network_cut(tmp_path, no_network, capsys, book_text):
    gpt2_encoding.cache_clear()  # rebuild from the package data with no network
    assert encode("Hello world").tolist() == [15496, 995]
    b = bk.load_book(offline=False, retries=1, timeout=1, cache_dir=tmp_path)
    assert (b.source, b.text) == ("shipped", book_text)
    assert "shipped" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad, error, words",
    [
        (torch.zeros(2, 3, dtype=torch.long), ValueError, "1-D"),
        (torch.zeros(5), TypeError, "float32"),
        (torch.zeros(5, dtype=torch.bool), TypeError, "bool"),
        ([1, 2, 3], TypeError, "list"),
    ],
)
def test_check_tokens_errors(bad, error, words):
    with pytest.raises(error, match=words):
        check_tokens(bad, name="ids")
    with pytest.raises(error, match="ids"):
        check_tokens(bad, name="ids")


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_check_tokens_accepts_integer_vectors(dtype):
    check_tokens(torch.arange(5, dtype=dtype))


@pytest.mark.parametrize("bad", [[-1, 3], [5, 50257], [70000]])
def test_ids_outside_the_vocabulary_are_named_with_their_range(bad):
    from gpt_lesson import check_tokens

    with pytest.raises(ValueError, match=r"outside the model's vocabulary 0 … 50256"):
        check_tokens(torch.tensor(bad), vocab_size=50257)
    check_tokens(torch.tensor([0, 50256]), vocab_size=50257)  # both ends are valid ids
