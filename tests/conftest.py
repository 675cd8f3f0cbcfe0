"""Shared fixtures: the shipped book, an isolated cache, and a local HTTP server standing in for Gutenberg.

The rule for floats, in every test and every checked notebook output:

- Exact equality (``==``, ``torch.equal``, ``rtol=0``) only between two results of the same process: a resumed
  run against an unbroken one, two code paths in the same run, a value and its own round trip.
- A figure pinned across machines (a loss written into a test, a number stored in a notebook's checked output)
  gets a tolerance: another CPU or torch build sums in another order (~1e-7 relative in float32). Pinned losses
  are compared within 1e-5 relative (tests/test_pinned_losses.py), far below what a real change moves them.
- A checked notebook cell prints a float only from a float64 computation, or at a precision that float32 noise
  cannot flip; anything trained (losses after steps) is printed in an ignored cell and checked as facts.
"""

import http.server
import threading
import time
from collections import Counter

import pytest
import torch

from gpt_lesson import book as book_mod

BOOK_BYTES = book_mod.shipped_path().read_bytes()
SLOW_SECONDS = 1.5  # how long /slow waits before answering; tests use timeouts far below this


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Nothing a test does may reach the user's real cache, or depend on their offline setting."""
    monkeypatch.setenv(book_mod.CACHE_ENV, str(tmp_path / "default_cache"))
    monkeypatch.delenv(book_mod.OFFLINE_ENV, raising=False)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    """The tests' models are tiny: a second thread gains nothing, and on a busy 2-core machine OpenMP's
    spinning threads make them many times slower. The setting is restored at the end."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def book_bytes():
    return BOOK_BYTES


@pytest.fixture(scope="session")
def book_text():
    """The shipped book exactly as stored (BOM and CRLF kept)."""
    return BOOK_BYTES.decode("utf-8")


def _send(handler, status, body, content_type="text/plain; charset=utf-8", length=None):
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def _truncated(handler):
    # Promise the whole book, send half of it; the connection then closes (HTTP/1.0).
    _send(handler, 200, BOOK_BYTES[: len(BOOK_BYTES) // 2], length=len(BOOK_BYTES))


def _slow(handler):
    time.sleep(SLOW_SECONDS)
    _send(handler, 200, BOOK_BYTES)


TRICKLE_SECONDS = 0.3  # /trickle sends one byte this often


def _trickle(handler):
    # Promise the whole book, then send it one byte every TRICKLE_SECONDS: each read is answered well within any
    # timeout, but 1 KB takes 5 minutes. It gives up after a minute (if a client never hangs up).
    handler.send_response(200)
    handler.send_header("Content-Type", "text/plain; charset=utf-8")
    handler.send_header("Content-Length", str(len(BOOK_BYTES)))
    handler.end_headers()
    for i in range(int(60 / TRICKLE_SECONDS)):
        handler.wfile.write(BOOK_BYTES[i : i + 1])
        handler.wfile.flush()
        time.sleep(TRICKLE_SECONDS)


def _flaky(handler):
    if handler.server.hits[handler.path] == 1:
        _send(handler, 503, b"try again later")
    else:
        _send(handler, 200, BOOK_BYTES)


_HTML = ("<html><body>" + "<p>Welcome to our site. Nothing to read here.</p>\n" * 600 + "</body></html>").encode()
assert len(_HTML) > book_mod.MIN_BOOK_BYTES

ROUTES = {
    "/book.txt": lambda h: _send(h, 200, BOOK_BYTES),
    "/missing": lambda h: _send(h, 404, b"Not Found"),
    "/error500": lambda h: _send(h, 500, b"Internal Server Error"),
    "/truncated": _truncated,
    "/html": lambda h: _send(h, 200, _HTML, "text/html"),
    # The book as Windows-1252: all markers present, but not UTF-8.
    "/cp1252": lambda h: _send(h, 200, BOOK_BYTES.decode("utf-8").encode("cp1252", "replace")),
    "/slow": _slow,
    "/flaky": _flaky,  # 503 on the first request, the book afterwards
    "/trickle": _trickle,  # the headers, then one byte every 0.3 s
}


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        srv = self.server
        with srv.lock:
            srv.hits[self.path] += 1
            srv.user_agents.append(self.headers.get("User-Agent"))
        srv.routes.get(self.path, ROUTES["/missing"])(self)

    def log_message(self, *args):
        pass


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # the client hung up on /slow or /truncated: expected


@pytest.fixture(scope="session")
def _http_server():
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.lock, srv.hits, srv.user_agents, srv.routes = threading.Lock(), Counter(), [], dict(ROUTES)
    srv.url = lambda path: f"http://127.0.0.1:{srv.server_address[1]}{path}"
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def server(_http_server, monkeypatch):
    """The local server with fresh hit counters. ``server.url("/book.txt")``, ``server.hits[path]``,
    ``server.user_agents``; a test may add routes: ``server.routes[path] = fn(handler)``."""
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # never send loopback requests to a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    with _http_server.lock:
        _http_server.hits.clear()
        _http_server.user_agents.clear()
    monkeypatch.setattr(_http_server, "routes", dict(ROUTES))
    return _http_server
