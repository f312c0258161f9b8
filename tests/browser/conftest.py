"""Fixtures for the tests that read the book the way readers do: in a real browser (Chromium).

Without Chromium or Playwright they skip with a message saying what to install; under CI=true they
fail instead. See readers_env.py for the paths and settings.
"""

from __future__ import annotations

import os

import pytest

from readers_env import CHROMIUM, CHROMIUM_ARGS, HTML, SCREENSHOTS, missing, serve


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python", "`make setup` installs it from requirements.txt")
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium ({CHROMIUM})", "`make browser-deps` installs Debian's chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def book_url():
    if not (HTML / "index.html").exists():
        missing(f"The built book ({HTML})", "run `make book-smoke` first, or set BNBOOK_HTML")
    url, stop = serve(HTML)
    yield url
    stop()


@pytest.fixture(scope="session")
def screenshots():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
