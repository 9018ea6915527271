"""Make the teaching notebooks (.ipynb) from their Python sources (notebooks/<name>.py), and run them.

    python notebooks/run.py --execute                 # every notebook, full mode: the committed outputs
    python notebooks/run.py --execute ddpm gan        # some of them
    python notebooks/run.py --execute --short vae     # CI's short mode (GENZOO_SHORT=1), for a quick look
    python notebooks/run.py --update-text flow        # only markdown changed: copy it, keep the outputs
    python notebooks/run.py                           # write the .ipynb files without outputs

The sources are jupytext percent files (``# %%`` and ``# %% [markdown]`` cells): edit them, never the
.ipynb. Notebooks run with ``notebooks/`` as the working directory, as Jupyter does. The tests check
that each committed .ipynb has exactly its source's cells, that it holds a full-mode run, and that
every line of ``genzoo/`` it prints is still that line of the file.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent
NAMES = ["overview", "vae", "lm", "ddpm", "gan", "flow", "ebm", "applications", "text_to_image"]  # the reading order of the README
KERNEL = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def from_source(name: str) -> nbformat.NotebookNode:
    """Notebook ``name`` without outputs, from ``notebooks/<name>.py``; stable cell ids, so rewriting
    it changes nothing but outputs."""
    nb = jupytext.read(HERE / f"{name}.py", fmt="py:percent")
    nb.metadata = {"kernelspec": dict(KERNEL), "language_info": {"name": "python"}}
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name}-{i:02d}"
        cell.metadata = {}
    nbformat.validate(nb)
    return nb


def execute(nb: nbformat.NotebookNode, short: bool, timeout: int = 3600) -> nbformat.NotebookNode:
    """Run ``nb`` top to bottom in a fresh kernel, ``notebooks/`` as the working directory."""
    from nbclient import NotebookClient

    env = dict(os.environ)
    env.pop("GENZOO_SHORT", None)
    if short:
        env["GENZOO_SHORT"] = "1"
    client = NotebookClient(
        nb,
        timeout=timeout,  # per cell
        kernel_name=KERNEL["name"],
        resources={"metadata": {"path": str(HERE)}},
        coalesce_streams=True,  # progress bars: keep each bar's last state, not every redraw
        record_timing=False,  # no timestamps in the committed files
    )
    client.execute(env=env)
    return nb


def update_text(name: str) -> nbformat.NotebookNode:
    """The committed notebook with its markdown cells taken from the source.

    Refused unless every code cell is unchanged, so the outputs kept are still those of the code shown:
    a teacher may reword the prose around numbers a run printed without running it again.
    """
    source, nb = from_source(name), nbformat.read(HERE / f"{name}.ipynb", as_version=4)
    code = [[c.source for c in cells if c.cell_type == "code"] for cells in (source.cells, nb.cells)]
    if code[0] != code[1]:
        raise SystemExit(f"{name}: code cells changed since the last run; run it: notebooks/run.py --execute {name}")
    outputs = iter([(c.outputs, c.execution_count) for c in nb.cells if c.cell_type == "code"])
    for cell in source.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = next(outputs)
    return source


def leaked_paths(nb: nbformat.NotebookNode) -> list[str]:
    """Output lines that mention this machine's absolute paths (the repository, the home folder)."""
    needles = {str(HERE.parent), str(Path.home())} - {"/"}
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("text", "") + str(output.get("data", {}).get("text/plain", ""))
            found += [line for line in text.splitlines() if any(n in line for n in needles)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", default=NAMES, help=f"which notebooks ({', '.join(NAMES)})")
    parser.add_argument("--execute", action="store_true", help="run them and save the outputs")
    parser.add_argument("--short", action="store_true", help="run in short mode (GENZOO_SHORT=1), as CI does")
    parser.add_argument("--update-text", action="store_true", help="copy changed markdown only, keep the outputs")
    args = parser.parse_args(argv)
    for name in args.names:
        if name not in NAMES:
            parser.error(f"unknown notebook {name!r}; valid: {', '.join(NAMES)}")
    for name in args.names:
        path = HERE / f"{name}.ipynb"
        nb = update_text(name) if args.update_text else from_source(name)
        if args.execute:
            started = time.perf_counter()
            execute(nb, args.short)
            print(f"{path.name}: ran in {time.perf_counter() - started:.0f} s", file=sys.stderr)
            for line in leaked_paths(nb):
                print(f"{path.name}: output mentions a local path: {line.strip()[:160]}", file=sys.stderr)
        nbformat.write(nb, path)
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
