"""Step 01: get the text of a Project Gutenberg book, and clean it.

`load_book()` looks in three places, in this order, and says which one it used:

1. the user's cache (``~/.cache/gpt_lesson`` or ``$GPT_LESSON_CACHE``), if it holds a valid copy;
2. Project Gutenberg over the network (skipped when offline);
3. the copy of *Gulliver's Travels* shipped inside this package (book 829 only).

Text is read exactly as stored: the byte-order mark and the CRLF line endings stay, because the
lesson's token count (~158,000) is a count of the raw file. `clean_text()` removes them, one
switchable step at a time.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from time import monotonic as _monotonic
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ProtocolError, ReadTimeoutError
from urllib3.util.retry import Retry

from .fileio import write_atomic  # also re-exported here for callers that still import it from book

GULLIVER_ID = 829
SHIPPED_FILE = "829-0.txt"
OFFLINE_ENV = "GPT_LESSON_OFFLINE"
CACHE_ENV = "GPT_LESSON_CACHE"
USER_AGENT = "gpt-lesson/0.1 (teaching notebooks; one download per user, then cached)"
MIN_BOOK_BYTES = 20_000  # the shortest Gutenberg novels are larger; an error page is smaller

# Gutenberg has spelled its marker lines several ways over the years, e.g.
#   *** START OF THE PROJECT GUTENBERG EBOOK GULLIVER'S TRAVELS ***
#   *** START OF THIS PROJECT GUTENBERG EBOOK GULLIVER'S TRAVELS ***
#   ***START OF THE PROJECT GUTENBERG EBOOK GULLIVER'S TRAVELS***
#   *** START OF THE PROJECT GUTENBERG EBOOK ***
_MARKER = r"^[ \t]*\*\*\*[ \t]*{word} OF (?:THE|THIS) PROJECT GUTENBERG E-?BOOK\b[^\r\n]*(?=\r?$)"
START_RE = re.compile(_MARKER.format(word="START"), re.IGNORECASE | re.MULTILINE)
END_RE = re.compile(_MARKER.format(word="END"), re.IGNORECASE | re.MULTILINE)


class BookError(ValueError):
    """A text that is not a usable Gutenberg book (wrong page, truncated, not UTF-8...)."""


@dataclass(frozen=True)
class Book:
    """The text of a book and where it came from.

    ``source`` is one of ``"cache"``, ``"download"``, ``"shipped"`` or ``"file"``;
    ``note`` says why a fallback was taken (empty when none was).
    """

    text: str
    source: str
    location: str
    note: str = ""

    def __str__(self) -> str:  # what a notebook prints: no local paths
        return f"Book({len(self.text):,} characters, source={self.source!r})"


def gutenberg_urls(book_id: int) -> list[str]:
    """Plain-text URLs for a Gutenberg book, most stable first (the lesson used the first)."""
    return [
        f"https://www.gutenberg.org/cache/epub/{book_id}/pg{book_id}.txt",
        f"https://www.gutenberg.org/files/{book_id}/{book_id}-0.txt",
    ]


def shipped_path() -> Path:
    """Path of the copy of *Gulliver's Travels* (Gutenberg #829, 2023 edition) in the package."""
    return Path(str(resources.files("gpt_lesson") / "data" / SHIPPED_FILE))


def shipped_book() -> Book:
    """The copy of *Gulliver's Travels* shipped in the package (Gutenberg's file of September 2023), whatever the
    network and the cache hold: the same text on every machine, so that the notebooks' numbers are every reader's."""
    return Book(shipped_path().read_bytes().decode("utf-8"), "shipped", SHIPPED_FILE)


def default_cache_dir() -> Path:
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt_lesson"


def validate_book(data: bytes, origin: str = "text") -> str:
    """Decode ``data`` as UTF-8 and check it looks like a whole Gutenberg book; return the text.

    Raises `BookError` naming what is wrong, so a bad download never reaches the cache.
    """
    if len(data) < MIN_BOOK_BYTES:
        raise BookError(
            f"{origin}: only {len(data):,} bytes; a Gutenberg book has at least {MIN_BOOK_BYTES:,}. "
            "Is it an error page or a truncated download?"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BookError(f"{origin}: not UTF-8 text ({e}); ask for the UTF-8 plain-text file") from e
    if not START_RE.search(text):
        raise BookError(f"{origin}: no '*** START OF THE PROJECT GUTENBERG EBOOK' line; not a Gutenberg book")
    if not END_RE.search(text):
        raise BookError(f"{origin}: no '*** END OF THE PROJECT GUTENBERG EBOOK' line; the text looks truncated")
    return text


class _Stopped(Exception):
    """Raised inside urllib3 to end a download whose deadline passed (not an OSError, so requests passes it on)."""


class _Guard:
    """The deadline of one download, and the way its caller stops it.

    The download asks `stopped()` between chunks and before each retry. The caller, when it stops waiting,
    calls `cancel()`: that also shuts down the socket the body is being read from, which wakes a read of
    the body blocked on a trickling or silent server at once (closing it from another thread would not
    wake the read, and would free its file number while still in use).
    """

    def __init__(self, url: str, deadline: float | None) -> None:
        self.url, self.deadline = url, deadline
        self.end = None if deadline is None else _monotonic() + deadline
        self._lock = threading.Lock()
        self._cancelled = False
        self._sock: socket.socket | None = None

    def left(self) -> float:
        """Seconds until the deadline (infinite without one)."""
        return float("inf") if self.end is None else max(0.0, self.end - _monotonic())

    def stopped(self) -> bool:
        return self._cancelled or self.left() <= 0

    def timeout(self) -> requests.Timeout:
        return requests.Timeout(f"{self.url}: the download took longer than its deadline of {self.deadline:g} s")

    def hold(self, sock: socket.socket | None) -> None:
        """Remember the socket being read from (None: done with it); shut it at once if already cancelled."""
        with self._lock:
            self._sock = sock
            if self._cancelled:
                _shut(sock)

    def cancel(self) -> None:
        with self._lock:
            self._cancelled = True
            _shut(self._sock)


def _shut(sock: socket.socket | None) -> None:
    """Shut down ``sock`` for reading and writing: a read blocked in another thread returns at once."""
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)  # the plain socket's, also under TLS
        except OSError:
            pass  # already closed


class _Retry(Retry):
    """urllib3's `Retry` with the waits and errors `download` has always had, within the download's deadline.

    It waits backoff, 2×backoff, 4×backoff, ... before the 2nd, 3rd, 4th try (urllib3 skips the first
    wait), but never past the deadline, and makes no try after it; and when the last try timed out while
    waiting for the answer, it raises that timeout, as one try without retries does, instead of urllib3's
    "max retries exceeded" (a requests ConnectionError).
    """

    guard: _Guard | None = None

    def new(self, **kw) -> Retry:  # urllib3 makes a new Retry after each try: pass the guard on
        retry = super().new(**kw)
        retry.guard = self.guard
        return retry

    def get_backoff_time(self) -> float:
        return self.backoff_factor * 2 ** (len(self.history) - 1) if self.history else 0.0

    def sleep(self, response=None) -> None:
        wait = self.get_backoff_time()
        if self.guard is not None:
            wait = min(wait, self.guard.left())
        time.sleep(wait)
        if self.guard is not None and self.guard.stopped():
            raise _Stopped

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None) -> Retry:
        try:
            return super().increment(method, url, response, error, _pool, _stacktrace)
        except MaxRetryError:
            if isinstance(error, (ReadTimeoutError, ProtocolError)):
                raise error from None
            raise


def _session(retries: int, backoff: float, guard: _Guard | None = None) -> requests.Session:
    """A session that sends our User-Agent and makes ``retries`` tries in all (none after ``guard``'s deadline).

    Connection errors, timeouts and HTTP 5xx are tried again; any other status (a 404...) is
    returned at once. After the last try the 5xx response itself is returned, so that
    `raise_for_status` raises a `requests.HTTPError` as for any other error status.
    """
    retry = _Retry(
        total=retries - 1,
        backoff_factor=backoff,
        status_forcelist=range(500, 600),
        raise_on_status=False,
        respect_retry_after_header=False,  # else a 413 or 429 with Retry-After would be retried
    )
    retry.guard = guard
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def _body_socket(r: requests.Response) -> socket.socket | None:
    """The socket ``r``'s body is read from, or None where it cannot be found (a cancelled download then ends at
    its next chunk or read timeout, not at once).

    http.client drops ``connection.sock`` when the server closes after the response (HTTP/1.0, ``Connection:
    close``) and reads on through the response's file object, so look under that too (private attributes).
    """
    sock = getattr(getattr(r.raw, "connection", None), "sock", None)
    if sock is None:
        fp = getattr(getattr(r.raw, "_fp", None), "fp", None)
        sock = getattr(getattr(fp, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def _fetch(url: str, timeout: float, retries: int, backoff: float, guard: _Guard) -> bytes:
    """The body of ``url``, read in the calling thread; raises ``guard.timeout()`` once ``guard`` is stopped."""
    with _session(retries, backoff, guard) as session:
        try:
            r = session.get(url, timeout=timeout, stream=True)
        except _Stopped:
            raise guard.timeout() from None
        with r:
            guard.hold(_body_socket(r))
            try:
                r.raise_for_status()
                chunks = []
                for chunk in r.iter_content(1024):
                    chunks.append(chunk)
                    if guard.stopped():
                        raise guard.timeout()
                return b"".join(chunks)
            finally:
                guard.hold(None)  # before the socket is closed: `cancel` must not shut a reused file number


def download(
    url: str, *, timeout: float = 20.0, retries: int = 3, backoff: float = 1.0, deadline: float | None = None
) -> bytes:
    """GET ``url`` with a timeout and retries (waits backoff, 2×backoff, ...); return the body.

    ``retries`` counts tries. ``timeout`` bounds the connection and each read; ``deadline`` (seconds) bounds
    the whole download (name lookup, connections, every read, retry and backoff wait), however slowly a
    server sends: the download then runs in a daemon thread, which this call stops waiting for at the
    deadline, and which stops with it. Raises a `requests.RequestException` when every try failed: an HTTP
    error status as `requests.HTTPError` (a 4xx at once, without retrying), a timeout or a passed deadline as
    `requests.Timeout`. A body that breaks off after the headers arrived is not tried again.
    """
    if retries < 1:  # 0 would try nothing and have no error to raise
        raise ValueError(f"retries must be at least 1 (the number of tries), got {retries!r}")
    guard = _Guard(url, deadline)
    if deadline is None:
        return _fetch(url, timeout, retries, backoff, guard)
    if deadline <= 0:
        raise guard.timeout()
    done = threading.Event()
    result: dict[str, Any] = {}  # "body" or "error"

    def work() -> None:
        try:
            result["body"] = _fetch(url, timeout, retries, backoff, guard)
        except Exception as e:  # handed to the caller below
            result["error"] = e
        finally:
            done.set()

    threading.Thread(target=work, name="gpt_lesson.book.download", daemon=True).start()
    try:
        while not done.wait(guard.left()):
            if guard.left() <= 0:
                raise guard.timeout()
    finally:
        if not done.is_set():  # the deadline passed, or Ctrl-C: stop the download too
            guard.cancel()
    if "error" in result:
        raise result["error"]
    return result["body"]


def _read_valid(path: Path) -> str | None:
    try:
        return validate_book(path.read_bytes(), str(path))
    except (OSError, BookError):
        return None


def _env_offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _local_file(book: int | str | os.PathLike) -> Book | None:
    """The book read from a local file when ``book`` is a path (not an id or a URL), else None."""
    if not (isinstance(book, os.PathLike) or (isinstance(book, str) and "://" not in book and not book.isdigit())):
        return None
    path = Path(book).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"no book file at {str(path)!r}; give an existing .txt path, a Gutenberg id such as 829, or a URL"
        )
    return Book(_decode_local(path), "file", str(path))


def _decode_local(path: Path) -> str:
    """A local text file's contents, or a `BookError` naming the file and the fix (any UTF-8 text is a book here)."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BookError(
            f"{str(path)!r} is not UTF-8 text (byte {e.start}: {data[e.start:e.start + 1]!r}); save it as UTF-8 "
            "(for Latin-1: Path(p).write_text(Path(p).read_text(encoding='latin-1'), encoding='utf-8'))"
        ) from e
    if text.lstrip("\ufeff \t\r\n")[:15].lower().startswith(("<!doctype html", "<html")):
        raise BookError(f"{str(path)!r} is an HTML page, not plain text; download the book's 'Plain Text UTF-8' file")
    if not text.strip():
        raise BookError(f"{str(path)!r} is empty; give a file with the book's text")
    return text


def _sources(book: int | str) -> tuple[list[str], int | None, str]:
    """The URLs to try, the Gutenberg id (None for a URL) and the cache file name of ``book``."""
    if isinstance(book, str) and "://" in book:
        if not book.startswith(("http://", "https://")):
            raise ValueError(f"unsupported URL {book!r}; use an http:// or https:// address")
        return [book], None, re.sub(r"[^A-Za-z0-9._-]+", "_", book.split("://", 1)[1])[-120:]
    book_id = int(book)
    if book_id <= 0:
        raise ValueError(f"Gutenberg ids are positive integers, got {book_id}")
    return gutenberg_urls(book_id), book_id, f"pg{book_id}.txt"


def _download_and_cache(
    urls: list[str], cache_path: Path, timeout: float, retries: int, budget: float, say: Callable[..., None]
) -> Book | str:
    """The book from the first URL that gives a valid one within ``budget`` seconds in all, cached if
    possible; else why none did."""
    errors, end = [], _monotonic() + budget
    for url in urls:
        left = end - _monotonic()
        if left <= 0:
            errors.append(f"no answer within the {budget:g} s budget (load_book(budget=...))")
            break
        per_try = max(0.5, min(timeout, left / retries))  # a silent network costs about the budget, not minutes
        try:
            text = validate_book(download(url, timeout=per_try, retries=retries, deadline=left), url)
        except (requests.RequestException, BookError) as e:
            if isinstance(e, requests.Timeout) and _monotonic() >= end:  # no time left for another URL
                why = f"the download took longer than its {budget:g} s budget (load_book(budget=...))"
                errors.append(f"{url}: Timeout: {why}")
                break
            errors.append(f"{url}: {type(e).__name__}: {e}")
            continue
        try:
            write_atomic(cache_path, text.encode("utf-8"))
        except OSError as e:
            say(f"Downloaded the book but could not cache it ({e}); using it uncached.")
        return Book(text, "download", url)
    return "download failed: " + errors[-1]


def _fallback(
    book: int | str, book_id: int | None, cached: str | None, cache_path: Path, why: str, say: Callable[..., None]
) -> Book:
    """The cached copy, else the shipped one (book 829 only), saying why; else a ConnectionError."""
    if cached is not None:
        say(f"Using the cached copy: {why}")
        return Book(cached, "cache", str(cache_path), note=why)
    if book_id == GULLIVER_ID:
        say(f"Using the copy shipped with gpt_lesson: {why}")
        return replace(shipped_book(), note=why)
    raise ConnectionError(
        f"could not get book {book!r} and there is no cached copy ({why}). Connect to the internet, "
        "or download the plain-text UTF-8 file yourself and pass its path."
    )


def _quiet(*args, **kwargs) -> None:
    pass


def load_book(
    book: int | str | os.PathLike = GULLIVER_ID,
    *,
    offline: bool | None = None,
    cache_dir: str | os.PathLike | None = None,
    refresh: bool = False,
    timeout: float = 20.0,
    retries: int = 3,
    budget: float = 60.0,
    verbose: bool = True,
) -> Book:
    """Return a Gutenberg book's text, exactly as stored (BOM and CRLF kept).

    ``book`` is a Gutenberg id (default 829, *Gulliver's Travels*), an ``http(s)://`` URL, or a local
    file path. ``offline=None`` reads ``$GPT_LESSON_OFFLINE``. ``refresh=True`` downloads even when
    the cache holds a copy (the cached copy is kept if the download is bad). When book 829 cannot
    be fetched, the shipped copy is used and one line says why. ``budget`` bounds the time spent on the
    network in all (every URL, retry and wait, however slowly a server sends), ``timeout`` each connection and read.
    """
    if not (isinstance(retries, int) and not isinstance(retries, bool) and retries >= 1):
        raise ValueError(f"retries must be a positive integer (the number of tries per URL), got {retries!r}")
    for name, value, default in (("timeout", timeout, 20), ("budget", budget, 60)):
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (number and 0 < value < float("inf")):  # NaN fails too
            raise ValueError(f"{name} must be a positive number of seconds (the default is {default}), got {value!r}")
    offline = _env_offline() if offline is None else offline
    say = print if verbose else _quiet
    local = _local_file(book)
    if local is not None:
        return local
    urls, book_id, cache_name = _sources(book)
    cache_path = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / cache_name
    cached = _read_valid(cache_path) if cache_path.exists() else None
    if cached is not None and not refresh:
        return Book(cached, "cache", str(cache_path))
    if offline:
        why = f"offline mode ({OFFLINE_ENV} or offline=True)"
    else:
        got = _download_and_cache(urls, cache_path, timeout, retries, budget, say)
        if isinstance(got, Book):
            return got
        why = got
    return _fallback(book, book_id, cached, cache_path, why, say)


def clean_text(
    text: str,
    *,
    strip_boilerplate: bool = True,
    strip_bom: bool = True,
    normalize_newlines: bool = True,
) -> str:
    """Clean a Gutenberg text; each step can be switched off to see what it changes.

    - ``strip_bom``: drop the UTF-8 byte-order mark (U+FEFF) at the start;
    - ``normalize_newlines``: turn Windows ``\\r\\n`` (and stray ``\\r``) into ``\\n``;
    - ``strip_boilerplate``: keep only the text between the ``*** START OF`` and ``*** END OF``
      marker lines, with surrounding whitespace stripped (the Gutenberg header and licence go).
    """
    if strip_bom and text.startswith("\ufeff"):
        text = text[1:]
    if normalize_newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if strip_boilerplate:
        start, end = START_RE.search(text), END_RE.search(text)
        if start is None or end is None or end.start() < start.end():
            raise BookError(
                "could not find the '*** START OF' and '*** END OF' marker lines; "
                "pass strip_boilerplate=False for a text that is not from Gutenberg"
            )
        text = text[start.end() : end.start()].strip()
    return text
