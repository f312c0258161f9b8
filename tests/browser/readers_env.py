"""Paths, the browser's settings and helpers for the tests that read the book in a real browser.

They drive Debian's Chromium (``/usr/bin/chromium``, or ``$BNBOOK_CHROMIUM``) with Playwright for
Python; Playwright's own browser download cannot work offline. Without Chromium or Playwright the
tests are skipped with a message saying what to install, except under ``CI=true``, where they fail.

The HTML they read is ``$BNBOOK_HTML``, by default the smoke-scale build of ``make book-smoke``.
"""

from __future__ import annotations

import functools
import http.server
import os
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("BNBOOK_CHROMIUM", "/usr/bin/chromium")
HTML = Path(os.environ.get("BNBOOK_HTML", ROOT / "_build" / "smoke" / "_build" / "html"))
SCREENSHOTS = Path(os.environ.get("BNBOOK_SCREENSHOTS", ROOT / "_build" / "screenshots"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() == "true"


def missing(what: str, fix: str):
    """Skip with a message, or fail under CI, where every test must run."""
    message = f"{what} is missing: {fix}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: the browser tests must run)", pytrace=False)
    pytest.skip(message)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(directory: Path):
    """An HTTP server on 127.0.0.1 (a free port) for ``directory``, in a thread; returns (url, stop)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop():
        server.shutdown()
        server.server_close()

    return f"http://127.0.0.1:{server.server_address[1]}", stop
