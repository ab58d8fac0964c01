"""What the browser tests share: where the built book is, Chromium, and opening a page offline.

`open_page(browser, url)` loads a page and returns it with a list that collects every problem
seen on it: a console error, an uncaught exception, a failed request, an HTTP error, or a request
to a host other than the local server (refused, so the page is tested as a reader offline sees it).
"""

from __future__ import annotations

import http.server
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")

#: why the browser tests cannot run here, or None; each test module skips itself with it
SKIP_REASON = (
    "headless Chromium not found: install it with 'sudo apt-get install chromium' "
    "(Debian/Ubuntu) or set CHROMIUM=/path/to/chrome" if not CHROMIUM
    else "the book is not built: run 'make book' first" if not (HTML / "index.html").exists()
    else None
)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def open_page(browser, url: str, color_scheme: str = "light", viewport=(1280, 900), **context_args):
    """Load a page; return (context, page, problems), problems collecting what goes wrong on it."""
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]},
                                  color_scheme=color_scheme, **context_args)
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
