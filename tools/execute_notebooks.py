"""Execute notebooks in place, top to bottom in a fresh kernel, and store their outputs.

    python tools/execute_notebooks.py book            # every chapter
    python tools/execute_notebooks.py book/02_*.ipynb # some

nbval (``make test``) later re-runs each notebook and compares against what this stored.
Timing metadata is dropped so that re-executing an unchanged chapter leaves no diff.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(nb, path)
    return time.perf_counter() - start


def main(args: list[str]) -> None:
    paths = []
    for arg in args or ["book"]:
        p = Path(arg)
        paths += sorted(p.glob("*.ipynb")) if p.is_dir() else [p]
    for path in paths:
        print(f"{path}: {execute(path):.1f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
