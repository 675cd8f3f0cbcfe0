"""Step 01: getting the book (cache, download, shipped copy, local file) and cleaning it."""

import os
import socket
import threading
import time
import types

import pytest
import requests

import gpt_lesson.book as bk
from gpt_lesson import fileio
from gpt_lesson.book import BookError, clean_text, download, load_book, validate_book
from gpt_lesson.tokens import encode

FAST = {"timeout": 3, "retries": 1}  # the local server answers at once, except /slow


def fast(path):
    """One try; a timeout well below the 1.5 s that /slow waits, generous for the rest (a loaded CI)."""
    return {"timeout": 0.3 if path == "/slow" else 3, "retries": 1}


@pytest.fixture
def sleeps(monkeypatch):
    """Record the backoff waits of `download` instead of sleeping."""
    calls = []
    monkeypatch.setattr(bk, "time", types.SimpleNamespace(sleep=calls.append))
    return calls


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def files_in(folder):
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def use_urls(monkeypatch, server, *paths):
    """Make book 829's Gutenberg URLs point at the local server."""
    monkeypatch.setattr(bk, "gutenberg_urls", lambda book_id: [server.url(p) for p in paths])


# --- download, cache -------------------------------------------------------------------------


def test_download_then_cache_without_network(server, cache, book_bytes, book_text):
    url = server.url("/book.txt")
    first = load_book(url, cache_dir=cache, **FAST)
    assert (first.source, first.location, first.text) == ("download", url, book_text)
    (cached,) = files_in(cache)
    assert cached.read_bytes() == book_bytes
    assert server.hits["/book.txt"] == 1

    second = load_book(url, cache_dir=cache, **FAST)
    assert (second.source, second.text) == ("cache", book_text)
    assert second.location == str(cached)
    assert server.hits["/book.txt"] == 1  # no second request


def test_cache_dir_defaults_to_env(server, tmp_path, monkeypatch, book_bytes):
    monkeypatch.setenv("GPT_LESSON_CACHE", str(tmp_path / "from_env"))
    load_book(server.url("/book.txt"), **FAST)
    assert [p.read_bytes() for p in files_in(tmp_path / "from_env")] == [book_bytes]


def test_user_agent_is_sent(server, cache):
    load_book(server.url("/book.txt"), cache_dir=cache, **FAST)
    assert server.user_agents == [bk.USER_AGENT]
    assert "gpt-lesson" in bk.USER_AGENT


@pytest.mark.parametrize(
    "path, why",
    [
        ("/missing", ["404"]),
        ("/error500", ["500"]),
        ("/truncated", ["IncompleteRead", "truncated"]),  # urllib3 2 checks Content-Length, 1 did not
        ("/html", ["START"]),
        ("/cp1252", ["UTF-8"]),
        ("/slow", ["timed out"]),
    ],
)
def test_bad_download_of_url_raises_and_caches_nothing(server, cache, path, why):
    url = server.url(path)
    with pytest.raises(ConnectionError) as err:
        load_book(url, cache_dir=cache, **fast(path))
    msg = str(err.value)
    assert url in msg and "no cached copy" in msg
    assert any(w in msg for w in why)
    assert files_in(cache) == []  # neither the bad text nor a *.part temp file
    assert server.hits[path] == 1


def test_truncated_download_is_a_requests_error(server):
    with pytest.raises((requests.RequestException, BookError)):
        validate_book(download(server.url("/truncated"), timeout=2, retries=1))


def test_404_is_not_retried(server, sleeps):
    with pytest.raises(requests.HTTPError):
        download(server.url("/missing"), timeout=2, retries=3, backoff=0.01)
    assert server.hits["/missing"] == 1
    assert sleeps == []


def test_5xx_is_retried_with_growing_backoff(server, sleeps):
    with pytest.raises(requests.HTTPError) as err:
        download(server.url("/error500"), timeout=2, retries=3, backoff=0.01)
    assert err.value.response.status_code == 500
    assert server.hits["/error500"] == 3
    assert sleeps == [0.01, 0.02]


def test_retry_recovers_from_a_transient_error(server, sleeps, book_bytes):
    assert download(server.url("/flaky"), timeout=2, retries=2, backoff=0.01) == book_bytes
    assert server.hits["/flaky"] == 2


def test_timeout_is_retried(server, sleeps):
    with pytest.raises(requests.Timeout):
        download(server.url("/slow"), timeout=0.2, retries=2, backoff=0.01)
    assert server.hits["/slow"] == 2


def test_download_needs_at_least_one_try(server):
    with pytest.raises(ValueError, match="retries"):
        download(server.url("/book.txt"), retries=0)
    assert server.hits["/book.txt"] == 0


def _status_with_retry_after(status):
    def handler(h):
        h.send_response(status)
        h.send_header("Retry-After", "3600")
        h.send_header("Content-Length", "0")
        h.end_headers()

    return handler


def test_retry_after_is_ignored(server, sleeps):
    """A 429 is a 4xx like any other (not retried); a 503 waits our backoff, not the server's hour."""
    server.routes["/busy429"] = _status_with_retry_after(429)
    server.routes["/busy503"] = _status_with_retry_after(503)
    with pytest.raises(requests.HTTPError):
        download(server.url("/busy429"), timeout=2, retries=3, backoff=0.01)
    assert (server.hits["/busy429"], sleeps) == (1, [])
    with pytest.raises(requests.HTTPError) as err:
        download(server.url("/busy503"), timeout=2, retries=3, backoff=0.01)
    assert err.value.response.status_code == 503
    assert (server.hits["/busy503"], sleeps) == (3, [0.01, 0.02])


def test_refused_connection_is_retried_then_raised(monkeypatch, sleeps):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    with pytest.raises(requests.ConnectionError):
        download(f"http://127.0.0.1:{port}/book.txt", timeout=2, retries=3, backoff=0.01)
    assert sleeps == [0.01, 0.02]


def test_retried_5xx_still_falls_back_to_shipped(server, cache, monkeypatch, sleeps, capsys, book_text):
    use_urls(monkeypatch, server, "/error500")
    b = load_book(829, cache_dir=cache, timeout=3, retries=2)
    assert (b.source, b.text) == ("shipped", book_text)
    assert "HTTPError: 500" in b.note and "HTTPError: 500" in capsys.readouterr().out
    assert (server.hits["/error500"], sleeps) == (2, [1.0])


# --- book 829: falling back to the shipped copy ----------------------------------------------


def test_829_downloads_from_gutenberg_urls(server, cache, monkeypatch, book_text, capsys):
    use_urls(monkeypatch, server, "/book.txt")
    b = load_book(829, cache_dir=cache, **FAST)
    assert (b.source, b.text, b.note) == ("download", book_text, "")
    assert [p.name for p in files_in(cache)] == ["pg829.txt"]
    assert capsys.readouterr().out == ""


def test_829_tries_the_next_url(server, cache, monkeypatch):
    use_urls(monkeypatch, server, "/missing", "/book.txt")
    assert load_book(829, cache_dir=cache, **FAST).source == "download"
    assert server.hits["/missing"] == server.hits["/book.txt"] == 1


@pytest.mark.parametrize("path", ["/missing", "/error500", "/truncated", "/html", "/cp1252", "/slow"])
def test_829_failure_falls_back_to_shipped(server, cache, monkeypatch, capsys, path, book_text):
    use_urls(monkeypatch, server, path)
    b = load_book(829, cache_dir=cache, **fast(path))
    assert (b.source, b.text) == ("shipped", book_text)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "shipped" in out and path in out  # one line, saying why
    assert path in b.note
    assert files_in(cache) == []


def test_quiet_fallback_prints_nothing(server, cache, monkeypatch, capsys):
    use_urls(monkeypatch, server, "/missing")
    assert load_book(829, cache_dir=cache, verbose=False, **FAST).source == "shipped"
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("how", ["argument", "env"])
def test_offline_skips_the_network(server, cache, monkeypatch, capsys, how, book_text):
    use_urls(monkeypatch, server, "/book.txt")
    if how == "env":
        monkeypatch.setenv("GPT_LESSON_OFFLINE", "1")
        kwargs = {}
    else:
        kwargs = {"offline": True}
    b = load_book(829, cache_dir=cache, **kwargs, **FAST)
    assert (b.source, b.text) == ("shipped", book_text)
    assert "offline" in b.note and "offline" in capsys.readouterr().out
    with pytest.raises(ConnectionError, match="offline"):
        load_book(server.url("/book.txt"), cache_dir=cache, **kwargs, **FAST)
    assert sum(server.hits.values()) == 0


@pytest.mark.parametrize("value, offline", [("1", True), ("yes", True), ("0", False), ("false", False), ("", False)])
def test_offline_env_values(monkeypatch, value, offline):
    monkeypatch.setenv("GPT_LESSON_OFFLINE", value)
    assert bk._env_offline() is offline


def test_offline_false_overrides_env(server, cache, monkeypatch):
    monkeypatch.setenv("GPT_LESSON_OFFLINE", "1")
    assert load_book(server.url("/book.txt"), offline=False, cache_dir=cache, **FAST).source == "download"


def test_offline_still_uses_the_cache(server, cache, book_text):
    url = server.url("/book.txt")
    load_book(url, cache_dir=cache, **FAST)
    b = load_book(url, offline=True, cache_dir=cache, **FAST)
    assert (b.source, b.text) == ("cache", book_text)


# --- refresh and corrupt caches --------------------------------------------------------------


def test_refresh_with_bad_download_keeps_the_cache(server, cache, monkeypatch, capsys, book_bytes):
    use_urls(monkeypatch, server, "/book.txt")
    load_book(829, cache_dir=cache, **FAST)
    (cached,) = files_in(cache)
    use_urls(monkeypatch, server, "/html")
    b = load_book(829, cache_dir=cache, refresh=True, **FAST)
    assert b.source == "cache" and "/html" in b.note
    assert "cached copy" in capsys.readouterr().out
    assert files_in(cache) == [cached]
    assert cached.read_bytes() == book_bytes


def test_refresh_downloads_again(server, cache):
    url = server.url("/book.txt")
    load_book(url, cache_dir=cache, **FAST)
    assert load_book(url, cache_dir=cache, refresh=True, **FAST).source == "download"
    assert server.hits["/book.txt"] == 2


@pytest.mark.parametrize("damage", ["truncate", "not_utf8", "empty"])
def test_corrupt_cache_is_replaced(server, cache, book_bytes, book_text, damage):
    url = server.url("/book.txt")
    load_book(url, cache_dir=cache, **FAST)
    (cached,) = files_in(cache)
    bad = {"truncate": book_bytes[: len(book_bytes) // 2], "not_utf8": b"\xff" + book_bytes, "empty": b""}[damage]
    cached.write_bytes(bad)
    b = load_book(url, cache_dir=cache, **FAST)
    assert (b.source, b.text) == ("download", book_text)
    assert cached.read_bytes() == book_bytes
    assert server.hits["/book.txt"] == 2


def test_corrupt_cache_and_failed_download_falls_back_to_shipped(server, cache, monkeypatch, book_text):
    cache.mkdir()
    (cache / "pg829.txt").write_bytes(b"<html>rate limited</html>")
    use_urls(monkeypatch, server, "/missing")
    b = load_book(829, cache_dir=cache, **FAST)
    assert (b.source, b.text) == ("shipped", book_text)


def test_uncachable_download_is_still_returned(server, tmp_path, capsys, book_text):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    b = load_book(server.url("/book.txt"), cache_dir=not_a_dir, **FAST)
    assert (b.source, b.text) == ("download", book_text)
    assert "could not cache" in capsys.readouterr().out


def test_failed_cache_write_keeps_old_cache(server, cache, monkeypatch, capsys, book_bytes, book_text):
    use_urls(monkeypatch, server, "/book.txt")
    older = book_bytes.replace(b"Lilliput", b"Lilliputt")  # a valid book, but not the served one
    cache.mkdir()
    (cache / "pg829.txt").write_bytes(older)
    _fail_replace(monkeypatch)
    b = load_book(829, cache_dir=cache, refresh=True, **FAST)
    assert (b.source, b.text) == ("download", book_text)
    assert "could not cache" in capsys.readouterr().out
    assert files_in(cache) == [cache / "pg829.txt"]
    assert (cache / "pg829.txt").read_bytes() == older


# --- the cache is written atomically (tests/test_fileio.py tests write_atomic itself) ---------


def test_write_atomic_is_still_importable_from_book():
    assert bk.write_atomic is fileio.write_atomic


def test_interrupted_cache_write_is_cleaned_up_by_the_next_download(server, cache, monkeypatch, book_bytes):
    use_urls(monkeypatch, server, "/book.txt")
    cache.mkdir()
    (cache / ".pg829.txt.abc123_x.part").write_bytes(book_bytes[:1000])  # a download killed while saving
    load_book(829, cache_dir=cache, **FAST)
    assert files_in(cache) == [cache / "pg829.txt"]
    assert (cache / "pg829.txt").read_bytes() == book_bytes


def _fail_replace(monkeypatch):
    def boom(*args, **kwargs):
        raise OSError("replace failed")

    monkeypatch.setattr(os, "replace", boom)


# --- local files and bad arguments -----------------------------------------------------------


def test_missing_path_names_it(tmp_path):
    missing = tmp_path / "nope" / "book.txt"
    with pytest.raises(FileNotFoundError, match="nope"):
        load_book(missing)
    with pytest.raises(FileNotFoundError) as err:
        load_book(str(missing))
    assert str(missing) in str(err.value)


@pytest.mark.parametrize("as_str", [False, True])
def test_existing_path_is_read_exactly(book_text, as_str):
    path = bk.shipped_path()
    b = load_book(str(path) if as_str else path)
    assert (b.source, b.location, b.text) == ("file", str(path), book_text)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-3, ValueError), ("ftp://example.org/b.txt", ValueError)])
def test_bad_book_arguments(bad, error):
    with pytest.raises(error, match=str(bad)):
        load_book(bad, offline=True)


def test_str_digits_mean_a_gutenberg_id(cache, book_text):
    assert load_book("829", offline=True, cache_dir=cache, verbose=False).text == book_text


def test_book_str_hides_paths(book_text):
    s = str(load_book(bk.shipped_path()))
    assert "611,485" in s and "file" in s and os.sep not in s


# --- exact characters of the shipped copy ----------------------------------------------------


def test_shipped_copy_is_exact(cache):
    b = load_book(829, offline=True, cache_dir=cache, verbose=False)
    assert b.source == "shipped"
    assert b.text.startswith("\ufeff")
    assert "\r\n" in b.text
    assert len(b.text) == 611_485
    assert b.text.count("\r\n") == b.text.count("\n") == 9_919


# --- validate_book ---------------------------------------------------------------------------


def test_validate_book_accepts_the_book(book_bytes, book_text):
    assert validate_book(book_bytes) == book_text


@pytest.mark.parametrize(
    "data, words",
    [
        (b"tiny", "bytes"),
        ("caf\u00e9 ".encode("latin-1") * 6000, "UTF-8"),
        (b"x" * 30_000, "START"),
    ],
)
def test_validate_book_rejects(data, words):
    with pytest.raises(BookError, match=words):
        validate_book(data, "somewhere")


def test_validate_book_rejects_missing_end(book_bytes):
    head = book_bytes[: book_bytes.index(b"*** END OF")]
    with pytest.raises(BookError, match="truncated"):
        validate_book(head)


# --- clean_text on the shipped book (pinned numbers from shared/data/README.md) --------------


def test_raw_counts(book_text):
    assert len(book_text) == 611_485
    assert len(encode(book_text)) == 158_153


def test_boilerplate_removed_crlf_kept(book_text):
    text = clean_text(book_text, normalize_newlines=False)
    assert len(text) == 591_946
    assert len(encode(text)) == 153_328
    assert "\r\n" in text


def test_fully_cleaned(book_text):
    text = clean_text(book_text)
    assert len(text) == 582_410
    assert len(encode(text)) == 143_690
    assert "\r" not in text and not text.startswith("\ufeff")
    assert "Project Gutenberg License" not in text and "*** START OF" not in text and "*** END OF" not in text
    assert text == text.strip()
    # exactly the text between the marker lines
    lf = book_text.replace("\r\n", "\n")
    start = lf.index("\n", lf.index("*** START OF")) + 1
    end = lf.index("*** END OF")
    assert text == lf[start:end].strip()


def test_each_switch(book_text):
    assert clean_text(book_text, strip_boilerplate=False, strip_bom=False, normalize_newlines=False) == book_text
    assert clean_text(book_text, strip_boilerplate=False, normalize_newlines=False) == book_text[1:]

    lf = clean_text(book_text, strip_boilerplate=False, strip_bom=False)
    assert lf.startswith("\ufeff") and "\r" not in lf
    assert len(lf) == 601_566  # what text-mode open() gives
    assert len(encode(lf)) == 148_126
    assert "Project Gutenberg License" in lf


def test_stray_carriage_returns_become_newlines():
    assert clean_text("a\r\nb\rc\n", strip_boilerplate=False) == "a\nb\nc\n"


# --- marker spellings ------------------------------------------------------------------------

BODY = "\n".join(f"Line {i} of the story, which mentions the Project Gutenberg EBOOK in passing." for i in range(400))

MARKERS = [
    ("*** START OF THE PROJECT GUTENBERG EBOOK X ***", "*** END OF THE PROJECT GUTENBERG EBOOK X ***"),
    ("*** START OF THIS PROJECT GUTENBERG EBOOK X ***", "*** END OF THIS PROJECT GUTENBERG EBOOK X ***"),
    ("***START OF THE PROJECT GUTENBERG EBOOK X***", "***END OF THE PROJECT GUTENBERG EBOOK X***"),
    ("*** START OF THE PROJECT GUTENBERG EBOOK ***", "*** END OF THE PROJECT GUTENBERG EBOOK ***"),
    ("*** Start of the Project Gutenberg eBook X ***", "*** End of the Project Gutenberg eBook X ***"),
    ("*** START OF THIS PROJECT GUTENBERG E-BOOK X ***", "*** END OF THIS PROJECT GUTENBERG E-BOOK X ***"),
]


def synthetic_book(start, end, newline):
    text = "\n".join(
        [
            "The Project Gutenberg eBook of X",
            "This eBook is for the use of anyone anywhere; see the Project Gutenberg License.",
            "",
            start,
            "",
            BODY,
            "",
            end,
            "",
            "Section 1. General Terms of Use and Redistributing Project Gutenberg electronic works",
        ]
    )
    return text.replace("\n", newline)


@pytest.mark.parametrize("start, end", MARKERS)
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_marker_spellings(start, end, newline):
    text = synthetic_book(start, end, newline)
    assert len(text.encode()) > bk.MIN_BOOK_BYTES
    assert validate_book(text.encode()) == text
    assert clean_text(text) == BODY
    assert clean_text(text, normalize_newlines=False) == BODY.replace("\n", newline)


def test_marker_must_start_a_line():
    text = synthetic_book(*MARKERS[0], "\n").replace("\n" + MARKERS[0][0], "\nSee " + MARKERS[0][0])
    with pytest.raises(BookError):
        clean_text(text)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_no_markers_raises_and_points_to_the_switch(newline):
    text = ("Just some text.\n" * 2000).replace("\n", newline)
    with pytest.raises(BookError, match="strip_boilerplate=False"):
        clean_text(text)
    with pytest.raises(BookError):
        validate_book(text.encode())
    assert clean_text(text, strip_boilerplate=False) == text.replace("\r\n", "\n")


def test_end_before_start_raises():
    start, end = MARKERS[0]
    with pytest.raises(BookError):
        clean_text(f"{end}\nbody\n{start}\n")


@pytest.mark.parametrize(
    "content, words",
    [("Caf\xe9 au lait, ".encode("latin-1") * 100, "not UTF-8"),
     (b"<!DOCTYPE html><html><body>hi</body></html>", "HTML page"), (b"  \r\n", "empty")],
    ids=["latin-1", "html", "empty"],
)
def test_a_bad_local_book_file_is_named_with_the_fix(tmp_path, content, words):
    path = tmp_path / "book.txt"
    path.write_bytes(content)
    with pytest.raises(BookError, match=words) as err:
        load_book(path)
    assert "book.txt" in str(err.value)


def _fast_trickle(handler):
    """Promise the whole book, then send 200 bytes every 0.1 s: each read is quick, the download never ends."""
    handler.send_response(200)
    handler.send_header("Content-Length", str(len(BOOK_BYTES_FOR_TRICKLE)))
    handler.end_headers()
    for i in range(0, len(BOOK_BYTES_FOR_TRICKLE), 200):
        handler.wfile.write(BOOK_BYTES_FOR_TRICKLE[i : i + 200])
        handler.wfile.flush()
        time.sleep(0.1)


BOOK_BYTES_FOR_TRICKLE = bk.shipped_path().read_bytes()


def test_a_trickling_server_is_cut_off_at_the_deadline(server):
    # 200 bytes per 0.1 s fills a 1 KB chunk every 0.5 s, so even a deadline checked only between chunks held here;
    # /trickle (1 byte per 0.3 s, 5 minutes a chunk) is the case that needs the deadline to hold within a chunk.
    server.routes["/fast-trickle"] = _fast_trickle
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout, match="deadline of 1 s"):
        download(server.url("/fast-trickle"), timeout=5, retries=1, deadline=1.0)
    assert time.monotonic() - t0 < 3  # not the ~5 minutes the whole trickle would take


def _download_threads():
    return [t for t in threading.enumerate() if t.name == "gpt_lesson.book.download"]


def _wait_until(condition, seconds):
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.02)
    return condition()


def _as_http11(route):
    def handler(h):
        h.protocol_version = "HTTP/1.1"  # the client keeps the connection's socket after the headers (no close)
        route(h)

    return handler


@pytest.mark.parametrize("http11", [False, True], ids=["HTTP/1.0", "HTTP/1.1"])
def test_a_one_byte_trickle_is_cut_off_at_the_deadline(server, http11):
    """1 byte every 0.3 s: every read is answered within the timeout, but the deadline still holds, and the
    download's thread ends with it (its connection shut at the deadline, not left to trickle)."""
    server.routes["/trickle11"] = _as_http11(server.routes["/trickle"])
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout, match="deadline of 2 s"):
        download(server.url("/trickle11" if http11 else "/trickle"), timeout=1, deadline=2)
    took = time.monotonic() - t0
    assert 2 <= took < 3.5
    assert _wait_until(lambda: not _download_threads(), 1.5)


def test_retries_and_backoff_count_against_the_deadline(server):
    t0 = time.monotonic()
    with pytest.raises(requests.Timeout, match="deadline of 1.5 s"):
        download(server.url("/error500"), timeout=2, retries=5, backoff=1.0, deadline=1.5)
    assert time.monotonic() - t0 < 3  # not the 1 + 2 + 4 + 8 s of backoff
    assert server.hits["/error500"] <= 2  # a try, the 1 s wait, a second try, the deadline in the 2 s wait: no third
    assert _wait_until(lambda: not _download_threads(), 1.5)


def test_a_hanging_name_lookup_counts_against_the_deadline(server, monkeypatch):
    """requests' timeout does not cover the name lookup; the deadline does."""
    release = threading.Event()

    def hanging_lookup(*args, **kwargs):
        release.wait(10)
        raise socket.gaierror("lookup gave up")

    monkeypatch.setattr(socket, "getaddrinfo", hanging_lookup)
    t0 = time.monotonic()
    try:
        with pytest.raises(requests.Timeout, match="deadline of 1 s"):
            download(server.url("/book.txt"), timeout=1, retries=1, deadline=1)
        assert time.monotonic() - t0 < 2.5
    finally:
        release.set()
    assert _wait_until(lambda: not _download_threads(), 1.5)
    assert server.hits["/book.txt"] == 0


def test_a_trickle_costs_the_budget_then_the_shipped_copy(server, cache, monkeypatch, capsys, book_text):
    use_urls(monkeypatch, server, "/trickle", "/book.txt")
    t0 = time.monotonic()
    b = load_book(829, cache_dir=cache, timeout=1, budget=3)
    assert 3 <= time.monotonic() - t0 < 4.5
    assert (b.source, b.text) == ("shipped", book_text)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Using the copy shipped with gpt_lesson: download failed: ")
    assert "/trickle: Timeout: the download took longer than its 3 s budget" in out
    assert "3 s budget" in b.note
    assert server.hits["/book.txt"] == 0  # the budget covers every URL: none is left for the second
    assert files_in(cache) == []


def test_a_trickling_url_with_no_cache_raises_naming_the_budget(server, cache):
    url = server.url("/trickle")
    t0 = time.monotonic()
    with pytest.raises(ConnectionError, match="took longer than its 3 s budget") as err:
        load_book(url, cache_dir=cache, timeout=1, budget=3)
    assert 3 <= time.monotonic() - t0 < 4.5
    assert url in str(err.value) and "no cached copy" in str(err.value)
    assert files_in(cache) == []


def test_a_trickle_on_refresh_keeps_and_uses_the_cache(server, cache, capsys, book_bytes, book_text):
    url = server.url("/trickle")
    cached = cache / bk._sources(url)[2]
    cache.mkdir()
    cached.write_bytes(book_bytes)
    t0 = time.monotonic()
    b = load_book(url, cache_dir=cache, refresh=True, timeout=1, budget=2)
    assert 2 <= time.monotonic() - t0 < 3.5
    assert (b.source, b.text) == ("cache", book_text)
    assert "Using the cached copy: " in capsys.readouterr().out and "2 s budget" in b.note
    assert cached.read_bytes() == book_bytes


def test_a_silent_network_costs_the_budget_then_the_shipped_copy(server, cache, monkeypatch, capsys):
    server.routes["/silent"] = lambda h: time.sleep(8)  # accepts, never answers
    use_urls(monkeypatch, server, "/silent", "/silent")
    t0 = time.monotonic()
    book = load_book(829, cache_dir=cache, timeout=20, retries=3, budget=2.0)
    assert time.monotonic() - t0 < 6  # ~budget, not 2 URLs x 3 tries x 20 s
    assert book.source == "shipped"
    assert "Timeout" in book.note or "budget" in book.note
    assert "Using the copy shipped" in capsys.readouterr().out


def test_shipped_book_is_the_2023_file_whatever_the_cache_and_network_hold(server, cache, monkeypatch, book_text):
    """The notebooks read `shipped_book()`: a cached or downloadable copy that differs must not reach them."""
    import hashlib

    from gpt_lesson import shipped_book

    edited = book_text.replace("Lilliput", "Lilliputt", 1)
    cache.mkdir()
    (cache / "pg829.txt").write_text(edited, encoding="utf-8", newline="")
    monkeypatch.setenv("GPT_LESSON_CACHE", str(cache))
    use_urls(monkeypatch, server, "/book.txt")
    assert load_book(829, verbose=False, **FAST).text == edited  # what load_book gives here: the cached copy
    b = shipped_book()
    assert (b.source, b.note) == ("shipped", "") and b.text == book_text != edited
    sha = "d00e12fdea8297f153d92e4ccbeb29aa996f04b1d6c038d78a3d84e6cd0fdd52"  # ../shared/data/README.md
    assert hashlib.sha256(b.text.encode("utf-8")).hexdigest() == sha
    assert sum(server.hits.values()) == 0
