"""Checks on the book itself: stored notebooks, the seed's numbers, and that nbval can fail."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))


def load(path):
    return json.loads(path.read_text())


def code_cells(path):
    return [c for c in load(path)["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


def stored_text(path):
    out = []
    for cell in code_cells(path):
        for o in cell.get("outputs", []):
            out.append("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


def toc_files():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [toc["root"]] + [entry["file"] for part in parts for entry in part["chapters"]]


def test_there_are_chapters():
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_executed_in_order_without_errors(path):
    cells = code_cells(path)
    counts = [c["execution_count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), "re-run the notebook top to bottom (make execute)"
    for cell in cells:
        assert all(o["output_type"] != "error" for o in cell["outputs"]), "".join(cell["source"])[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_picks_cuda_when_present_with_tf32_off(path):
    first = "".join(code_cells(path)[0]["source"])
    assert 'torch.device("cuda" if torch.cuda.is_available() else "cpu")' in first
    assert "torch.backends.cuda.matmul.allow_tf32 = False" in first
    assert "torch.backends.cudnn.allow_tf32 = False" in first


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_table_of_contents(path):
    assert str(path.relative_to(ROOT).with_suffix("")) in toc_files()


def test_every_toc_entry_exists():
    for entry in toc_files():
        assert any((ROOT / (entry + ext)).exists() for ext in (".md", ".ipynb")), entry


def test_chapters_print_the_seed_numbers():
    # The seed notebook's outputs, in the seed's own print format.
    seed_y = ("tensor([[184., 212., 240.],\n        [352., 380., 408.],\n"
              "        [520., 548., 576.],\n        [688., 716., 744.]])")
    seed_z_row0 = "tensor([[    0.,   184.,   580.,  1216.,  1116.,   720.],"
    assert seed_y in stored_text(BOOK / "01_cross_correlation.ipynb")
    assert seed_y in stored_text(BOOK / "02_kernel_matrix.ipynb")
    assert seed_z_row0 in stored_text(BOOK / "03_transpose.ipynb")


def test_every_chapter_has_an_exercise_with_a_hidden_solution():
    for path in NOTEBOOKS:
        text = "\n".join("".join(c["source"]) for c in load(path)["cells"] if c["cell_type"] == "markdown")
        assert "```{exercise}" in text, path.name
        # a plain solution, or a gated one (solution-start ... solution-end) that holds code cells
        assert re.search(r"```\{solution(-start)?\}[^\n]*\n:class: dropdown", text), path.name


def run_nbval(path):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval", str(path), "-p", "no:cacheprovider", "-q",
         "--nbval-sanitize-with", str(BOOK / "nbval_sanitize.cfg")],
        cwd=path.parent, capture_output=True, text=True, timeout=300,
    )


def test_nbval_fails_when_a_stored_output_is_edited(tmp_path):
    """The notebook check is real: a copy passes, the same copy with one edited number fails."""
    src = BOOK / "01_cross_correlation.ipynb"
    for extra in ("_device_note.md", "nbval_sanitize.cfg"):
        shutil.copy(BOOK / extra, tmp_path / extra)
    good = tmp_path / src.name
    shutil.copy(src, good)
    result = run_nbval(good)
    assert result.returncode == 0, result.stdout[-2000:]

    nb = load(src)
    for cell in nb["cells"]:
        for o in cell.get("outputs", []):
            if "184., 212., 240." in "".join(o.get("text", "")):
                o["text"] = "".join(o["text"]).replace("212.", "213.")
                break
        else:
            continue
        break
    bad = tmp_path / "edited.ipynb"
    bad.write_text(json.dumps(nb))
    result = run_nbval(bad)
    assert result.returncode != 0
    assert "213." in result.stdout


def test_sanitizers_all_parse_and_make_cuda_output_match_cpu_output():
    """Every section of the sanitize file must be live (nbval silently skips a bad one)."""
    import configparser
    import re

    from nbval.plugin import get_sanitize_patterns

    text = (BOOK / "nbval_sanitize.cfg").read_text()
    sections = configparser.ConfigParser()
    sections.read_string(text)
    patterns = get_sanitize_patterns(text)
    assert len(patterns) == len(sections.sections())

    def sanitize(s):
        for regex, replace in patterns:
            s = re.sub(regex, replace, s)
        return s

    cpu = "Running on cpu\ntensor([[184., 212.],\n        [352., 380.]])"
    cuda = "Running on cuda:0\ntensor([[184., 212.],\n        [352., 380.]], device='cuda:0')"
    assert sanitize(cpu) == sanitize(cuda)
    assert "184., 212." in sanitize(cpu)
