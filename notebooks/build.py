"""Re-execute the evaluation notebooks in place, saving their outputs (text and PNG plots).

Usage, from the repository root with the project's virtual environment active::

    python notebooks/build.py                      # every notebook in notebooks/
    python notebooks/build.py routing rep_affinity # some of them
    python notebooks/build.py --from-py src.py     # turn a percent-format script
                                                   # (``# %%`` / ``# %% [markdown]`` cells)
                                                   # into notebooks/<name>.ipynb, then run it

Each notebook runs in a fresh ``python3`` kernel of this interpreter, with its working
directory in ``notebooks/``; the time each took is printed. A failing cell stops that
notebook with the error (the partly executed notebook is not written).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

# untyped packages: used through Any
nbformat: Any = importlib.import_module("nbformat")
NotebookClient: Any = importlib.import_module("nbclient").NotebookClient


HERE = Path(__file__).resolve().parent
ORDER = ("lead_scoring", "lookalikes", "routing", "rep_affinity")


def from_percent_script(text: str) -> Any:
    """Build a notebook from a percent-format script (``# %%`` code, ``# %% [markdown]``)."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    chunks = re.split(r"^# %%(.*)$", text, flags=re.M)
    for header, body in zip(chunks[1::2], chunks[2::2], strict=True):
        body = body.strip("\n")
        if "[markdown]" in header:
            lines = [ln[2:] if ln.startswith("# ") else ln.lstrip("#") for ln in body.splitlines()]
            nb.cells.append(nbformat.v4.new_markdown_cell("\n".join(lines).strip()))
        elif body.strip():
            nb.cells.append(nbformat.v4.new_code_cell(body))
    return nb


def execute(path: Path, timeout: int = 900) -> float:
    """Run every cell of the notebook at ``path`` and write it back; return seconds taken."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    started = time.perf_counter()
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(HERE)}},
    )
    client.execute()
    seconds = time.perf_counter() - started
    nb.metadata["leadrank_execution_seconds"] = round(seconds, 1)
    nbformat.write(nb, path)
    return seconds


START, END = "<!-- headline:start -->", "<!-- headline:end -->"


def summary_of(path: Path) -> str:
    """The Markdown that the notebook's last code cell displayed (its computed summary)."""
    nb = nbformat.read(path, as_version=4)
    for cell in reversed(nb.cells):
        if cell.cell_type != "code":
            continue
        for out in cell.outputs:
            text = out.get("data", {}).get("text/markdown")
            if text:
                return str(text).strip()
    return "(no summary output: run the notebook)"


def update_readme() -> None:
    """Copy each executed notebook's computed summary table into README.md's headline part."""
    readme = HERE / "README.md"
    if not readme.is_file():
        return
    text = readme.read_text(encoding="utf-8")
    if START not in text or END not in text:
        return
    parts = []
    for name in ORDER:
        path = HERE / f"{name}.ipynb"
        if path.is_file():
            nb = nbformat.read(path, as_version=4)
            took = nb.metadata.get("leadrank_execution_seconds")
            parts.append(f"### {name}.ipynb (ran in {took} s)\n\n{summary_of(path)}\n")
    head, rest = text.split(START, 1)
    tail = rest.split(END, 1)[1]
    readme.write_text(head + START + "\n" + "\n".join(parts) + END + tail, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--from-py", type=Path, help="percent-format script to convert first")
    parser.add_argument("--no-run", action="store_true", help="only convert --from-py")
    parser.add_argument(
        "--readme", action="store_true", help="only copy the summaries into README.md"
    )
    args = parser.parse_args(argv)
    # the kernel spec runs "python": make it this interpreter (the project's venv)
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    names = list(args.names)
    if args.readme:
        update_readme()
        return 0
    if args.from_py is not None:
        target = HERE / f"{args.from_py.stem}.ipynb"
        nbformat.write(from_percent_script(args.from_py.read_text(encoding="utf-8")), target)
        print(f"wrote {target}")
        names = names or [args.from_py.stem]
        if args.no_run:
            return 0
    if not names:
        names = [n for n in ORDER if (HERE / f"{n}.ipynb").is_file()]
    for name in names:
        path = HERE / f"{Path(name).stem}.ipynb"
        print(f"executing {path.name} ...", flush=True)
        print(f"  {path.name}: {execute(path):.0f} s", flush=True)
    update_readme()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
