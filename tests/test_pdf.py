"""The PDF edition: built by `make pdf`, checked here (the `pdfcheck` step of `make test`).

It must hold every chapter, every figure and every animation (as still frames), print the seed's
numbers, leave no reference unresolved ("??"), lose no character, and number figures,
equations, theorems and exercises exactly as the HTML book does. Skipped, saying what to
install, where TeX Live or poppler-utils is missing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LATEX = ROOT / "_build" / "latex"
PDF = LATEX / "book.pdf"
HTML = ROOT / "_build" / "html"
PDF_IN_HTML = HTML / "convolution-as-a-matrix.pdf"  # where book/intro.md links it
INSTALL = ("sudo apt-get install --no-install-recommends latexmk texlive-xetex texlive-latex-recommended "
           "texlive-fonts-recommended fonts-freefont-otf poppler-utils")

# Marks, not a module-level skip: the tests are collected and reported as skipped, so that
# `make pdfcheck` passes (pytest exits 5 when it collects nothing).
pytestmark = [
    pytest.mark.skipif(not (shutil.which("xelatex") and shutil.which("latexmk")),
                       reason=f"XeLaTeX and latexmk not found, so there is no PDF edition: install them "
                              f"with '{INSTALL}' (Debian/Ubuntu), then run 'make pdf'"),
    pytest.mark.skipif(not (shutil.which("pdftotext") and shutil.which("pdfimages")),
                       reason=f"pdftotext and pdfimages (poppler-utils) not found: install them with '{INSTALL}'"),
    pytest.mark.skipif(not PDF.exists(), reason="the PDF is not built: run 'make pdf' first"),
]

PROOF_KINDS = "Theorem|Definition|Corollary|Lemma|Proposition|Exercise"


def toc_documents():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [entry["file"] for part in toc["parts"] for entry in part["chapters"]]


@pytest.fixture(scope="module")
def text():
    return subprocess.run(["pdftotext", "-layout", str(PDF), "-"], check=True, capture_output=True,
                          text=True).stdout


@pytest.fixture(scope="module")
def squeezed(text):
    """The text without any whitespace: printed tensors survive line breaks and alignment."""
    return re.sub(r"\s+", "", text)


def notebook_outputs(path):
    return [o for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"
            for o in c.get("outputs", [])]


def test_every_chapter_is_in_it(squeezed):
    for doc in toc_documents()[1:]:  # the front page's title is the PDF's title page
        assert re.sub(r"\s+", "", chapter_title(doc)) in squeezed, doc


def chapter_title(doc):
    path = next(ROOT.glob(doc + ".*"))
    source = "".join(json.loads(path.read_text())["cells"][0]["source"]) if path.suffix == ".ipynb" \
        else path.read_text()
    return re.sub(r"[`*]|\$[^$]*\$", "", re.search(r"^# (.+)$", source, re.M)[1])  # words, no code or math


def test_chapters_are_numbered_as_the_front_page_lists_them(squeezed):
    listed = re.findall(r"^(\d+)\. \{doc\}`([^`]+)`", (ROOT / "book" / "intro.md").read_text(), re.M)
    assert len(listed) >= 12
    for n, name in listed:
        title = re.sub(r"\s+", "", chapter_title(f"book/{name}"))
        assert f"Chapter{n}.{title}" in squeezed, f"chapter {n} ({name}) has another number in the PDF"


def test_every_image_output_is_in_it():
    """Every figure and every animation's still frames: one PDF image per image/png output."""
    expected = 0
    for doc in toc_documents():
        path = next(ROOT.glob(doc + ".*"))
        if path.suffix == ".ipynb":
            expected += sum("image/png" in o.get("data", {}) for o in notebook_outputs(path))
        else:
            expected += len(re.findall(r"```\{(figure|image)\}|!\[", path.read_text()))
    listing = subprocess.run(["pdfimages", "-list", str(PDF)], check=True, capture_output=True,
                             text=True).stdout.splitlines()[2:]
    images = [line for line in listing if line.split()[2] == "image"]  # not the soft masks
    assert expected > 0
    assert len(images) == expected


def test_animations_have_still_frames_for_the_pdf():
    """An animation's HTML player cannot be printed: its output must carry image/png too."""
    n_animations = 0
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        for o in notebook_outputs(path):
            html = "".join(o.get("data", {}).get("text/html", ""))
            if "new Animation(frames" in html:
                n_animations += 1
                assert "image/png" in o["data"], f"{path.name}: an animation without still frames"
    assert n_animations >= 2  # chapters 7 and 8


def test_it_prints_the_seed_numbers(squeezed):
    seed_y = ("tensor([[184., 212., 240.],\n        [352., 380., 408.],\n"
              "        [520., 548., 576.],\n        [688., 716., 744.]])")
    seed_z_row0 = "tensor([[    0.,   184.,   580.,  1216.,  1116.,   720.],"
    for seed in (seed_y, seed_z_row0):
        assert re.sub(r"\s+", "", seed) in squeezed


def test_no_unresolved_reference_and_no_lost_character(text):
    assert "??" not in text
    log = (LATEX / "book.log").read_text(errors="replace")
    assert not re.findall(r"(?:Reference|Citation) `[^']*' on page \d+ undefined", log)
    assert "There were undefined references" not in log
    assert "Missing character" not in log, re.findall(r"Missing character: There is no .*", log)[:5]


def html_numbers(pattern):
    """label -> number, from every built HTML page of the book (groups `label` and `n`)."""
    numbers = {}
    for doc in toc_documents():
        page = (HTML / (doc + ".html")).read_text()
        numbers.update({f"{doc}:{m['label']}": int(m["n"]) for m in re.finditer(pattern, page, re.S)})
    return numbers


def aux_numbers(prefix=""):
    """label -> number, from LaTeX's own record of what it numbered."""
    aux = (LATEX / "book.aux").read_text()
    return {label: int(n) for label, n in re.findall(r"\\newlabel\{" + prefix + r"(book/[^}]+)\}\{\{(\d+)\}", aux)}


@pytest.mark.skipif(not (HTML / "book" / "intro.html").exists(), reason="the HTML book is not built: run 'make book'")
def test_figures_and_equations_are_numbered_as_in_the_html():
    figures = html_numbers(r'<figure[^>]*\bid="(?P<label>[^"]+)".*?<span class="caption-number">Fig\. (?P<n>\d+) ')
    equations = html_numbers(r'<span class="eqno">\((?P<n>\d+)\)<a class="headerlink" href="#equation-(?P<label>[^"]+)"')
    assert len(figures) >= 20 and len(equations) >= 30
    in_pdf = aux_numbers()
    assert {label: in_pdf.get(label) for label in figures} == figures
    in_pdf = aux_numbers("equation:")
    assert {label: in_pdf.get(label) for label in equations} == equations


@pytest.mark.skipif(not (HTML / "book" / "intro.html").exists(), reason="the HTML book is not built: run 'make book'")
def test_theorems_and_exercises_are_numbered_as_in_the_html(text):
    in_html = []
    for doc in toc_documents():
        page = (HTML / (doc + ".html")).read_text()
        in_html += re.findall(r'<p class="admonition-title"><span class="caption-number">'
                              rf'((?:{PROOF_KINDS}) \d+) </span>', page)
    in_pdf = re.findall(rf"^\s*((?:{PROOF_KINDS}) \d+)(?:\s+\(.*)?$", text, re.M)
    assert len(in_html) >= 15
    assert in_pdf == in_html


@pytest.mark.skipif(not (HTML / "book" / "intro.html").exists(), reason="the HTML book is not built: run 'make book'")
def test_the_front_page_links_the_pdf():
    assert 'href="../convolution-as-a-matrix.pdf"' in (HTML / "book" / "intro.html").read_text()
    assert PDF_IN_HTML.read_bytes() == PDF.read_bytes()
