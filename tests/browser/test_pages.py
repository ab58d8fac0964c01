"""Open every page of the built book in headless Chromium, as a reader would, offline.

Run after the book is built (`make browser`, part of `make test`). Fails on any console
error, failed request, request to a host other than the local server, image that did not
load, formula MathJax did not render, or internal link whose target does not exist.
Saves screenshots of the start page and the kernel-matrix chapter in _build/screenshots/.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urldefrag, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
PDF_EDITION = HTML / "convolution-as-a-matrix.pdf"  # linked from the front page
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

if not CHROMIUM:
    pytest.skip("headless Chromium not found: install it with 'sudo apt-get install chromium' "
                "(Debian/Ubuntu) or set CHROMIUM=/path/to/chrome", allow_module_level=True)
if not (HTML / "index.html").exists():
    pytest.skip("the book is not built: run 'make book' first", allow_module_level=True)

sync_api = pytest.importorskip("playwright.sync_api")

PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).parts[0].startswith("_"))


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    handler = functools.partial(QuietHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield browser
        browser.close()


def visit(browser, url: str, color_scheme: str = "light"):
    """Load a page; return it with the problems seen while loading."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=color_scheme)
    page = context.new_page()
    problems: list[str] = []
    local = urlparse(url).netloc

    def on_request(route):
        if urlparse(route.request.url).netloc not in (local, ""):
            problems.append(f"request to another host: {route.request.url}")
            route.abort()
        else:
            route.continue_()

    page.route("**/*", on_request)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: urlparse(r.url).netloc == local
            and problems.append(f"failed request: {r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"))
    page.goto(url, wait_until="networkidle")
    return context, page, problems


def wait_for_mathjax(page) -> None:
    if page.evaluate("typeof window.MathJax !== 'undefined' && !!window.MathJax.startup"):
        page.evaluate("window.MathJax.startup.promise")


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_offline(browser, server, name):
    context, page, problems = visit(browser, server + name)
    try:
        wait_for_mathjax(page)
        broken = page.evaluate(
            "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        problems += [f"image did not load: {src}" for src in broken]

        n_math = page.locator("div.math, span.math").count()
        if n_math:
            rendered = page.locator("mjx-container").count()
            errors = page.locator("mjx-merror").count()
            if rendered < n_math or errors:
                problems.append(f"MathJax rendered {rendered} of {n_math} formulas, {errors} errors")

        for href in page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)"):
            target, fragment = urldefrag(href)
            if not target.startswith(server):
                continue
            path = HTML / urlparse(target).path.lstrip("/")
            if path.is_dir():
                path = path / "index.html"
            if not path.exists():
                if path == PDF_EDITION:
                    continue  # built by `make pdf` (needs TeX Live), before this test in `make test`
                problems.append(f"broken internal link: {href}")
            elif fragment and path.suffix == ".html" and f'id="{fragment}"' not in path.read_text():
                problems.append(f"internal link to a missing anchor: {href}")
    finally:
        context.close()
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("name,shot", [("book/intro.html", "start"),
                                       ("book/02_kernel_matrix.html", "kernel-matrix")])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_screenshots(browser, server, name, shot, scheme):
    context, page, problems = visit(browser, server + name, color_scheme=scheme)
    try:
        wait_for_mathjax(page)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        out = SCREENSHOTS / f"{shot}-{scheme}.png"
        page.screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000
        assert page.evaluate("document.documentElement.dataset.theme") == scheme
    finally:
        context.close()
    assert not problems, "\n".join(problems)


def test_search_finds_a_chapter(browser, server):
    context, page, problems = visit(browser, server + "search.html?q=Toeplitz")
    try:
        page.wait_for_selector("#search-results li", timeout=15_000)
        hits = page.locator("#search-results li a").evaluate_all("els => els.map(e => e.href)")
    finally:
        context.close()
    assert any("02_kernel_matrix" in h for h in hits), hits
    assert not problems, "\n".join(problems)


def test_chapter_offers_launch_download_and_source_links(browser, server):
    context, page, problems = visit(browser, server + "book/02_kernel_matrix.html")
    try:
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    finally:
        context.close()
    assert any(h.startswith("https://mybinder.org/") for h in hrefs), "no Binder launch link"
    assert any(h.startswith("https://colab.research.google.com/") for h in hrefs), "no Colab link"
    assert any(h.endswith("_sources/book/02_kernel_matrix.ipynb") for h in hrefs), "no .ipynb download"
    assert any(h.startswith("https://github.com/") for h in hrefs), "no source repository link"
    assert not problems, "\n".join(problems)
