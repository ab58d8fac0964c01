"""Fixtures of the browser tests: the built book on a local server, and one headless Chromium."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
from browsing import CHROMIUM, HTML, QuietHandler, open_page


@pytest.fixture(scope="session")
def server():
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


@pytest.fixture
def visit(browser):
    """visit(url, color_scheme=..., viewport=...) -> (context, page, problems); contexts closed after."""
    contexts = []

    def _visit(url, **kwargs):
        context, page, problems = open_page(browser, url, **kwargs)
        contexts.append(context)
        return context, page, problems

    yield _visit
    for context in contexts:
        context.close()
