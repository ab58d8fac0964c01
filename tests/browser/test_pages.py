"""Open every page of the built book in headless Chromium, as a reader would, offline.

Run after the book is built (`make browser`, part of `make test`). Fails on any console
error, failed request, request to a host other than the local server, image that did not
load, formula MathJax did not render, or internal link whose target does not exist.
Saves screenshots of the start page and the kernel-matrix chapter in _build/screenshots/.
"""

from __future__ import annotations

from urllib.parse import urldefrag, urlparse

import pytest
from browsing import HTML, SCREENSHOTS, SKIP_REASON

if SKIP_REASON:
    pytest.skip(SKIP_REASON, allow_module_level=True)
pytest.importorskip("playwright.sync_api")

PDF_EDITION = HTML / "convolution-as-a-matrix.pdf"  # linked from the front page

PAGES = sorted(p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")
               if not p.relative_to(HTML).parts[0].startswith("_"))


def wait_for_mathjax(page) -> None:
    if page.evaluate("typeof window.MathJax !== 'undefined' && !!window.MathJax.startup"):
        page.evaluate("window.MathJax.startup.promise")


@pytest.mark.parametrize("name", PAGES)
def test_page_loads_cleanly_offline(visit, server, name):
    context, page, problems = visit(server + name)
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
def test_screenshots(visit, server, name, shot, scheme):
    context, page, problems = visit(server + name, color_scheme=scheme)
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


def test_search_finds_a_chapter(visit, server):
    context, page, problems = visit(server + "search.html?q=Toeplitz")
    try:
        page.wait_for_selector("#search-results li", timeout=15_000)
        hits = page.locator("#search-results li a").evaluate_all("els => els.map(e => e.href)")
    finally:
        context.close()
    assert any("02_kernel_matrix" in h for h in hits), hits
    assert not problems, "\n".join(problems)


def test_chapter_offers_launch_download_and_source_links(visit, server):
    context, page, problems = visit(server + "book/02_kernel_matrix.html")
    try:
        hrefs = page.evaluate("[...document.querySelectorAll('a[href]')].map(a => a.href)")
    finally:
        context.close()
    assert any(h.startswith("https://mybinder.org/") for h in hrefs), "no Binder launch link"
    assert any(h.startswith("https://colab.research.google.com/") for h in hrefs), "no Colab link"
    assert any(h.endswith("_sources/book/02_kernel_matrix.ipynb") for h in hrefs), "no .ipynb download"
    assert any(h.startswith("https://github.com/") for h in hrefs), "no source repository link"
    assert not problems, "\n".join(problems)
