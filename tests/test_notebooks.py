"""Teaching notebooks: they run top to bottom in short mode, and the committed files are current.

Each notebook checks its own mathematics with ``assert`` cells (the Monte-Carlo KL against the
closed form, the causal attention matrix being lower triangular, ...), so running it without a
cell error is a behavioural test. A full run takes minutes; ``GENZOO_SHORT=1`` shrinks it to
well under a minute per notebook.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["vae", "lm", "ddpm", "gan", "flow", "ebm"]
MAX_BYTES = 1_500_000


def load_builder():
    spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["build_notebooks"] = module  # the cell files import md, code, ... from it by this name
    spec.loader.exec_module(module)
    return module


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def output_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []))


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_in_short_mode(name, monkeypatch):
    nb = read(name)
    assert any("assert " in cell.source for cell in code_cells(nb)), "a notebook must check something"
    monkeypatch.setenv("GENZOO_SHORT", "1")  # the kernel inherits this environment
    # timeout is per cell: the DDPM notebook's short mode took 202 s in all on a 2-core AVX2 CPU
    client = nbclient.NotebookClient(
        nb, timeout=480, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError at the first failing cell, failed asserts included
    cells = code_cells(nb)
    assert "short mode" in output_text(cells[0])  # the notebook saw GENZOO_SHORT
    assert all(cell.execution_count for cell in cells)
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_builder(name):
    """The .ipynb holds exactly the cells of build_notebooks.py: edit the builder, then rebuild."""
    built, committed = load_builder().build(name), read(name)
    assert [(c.cell_type, c.source) for c in committed.cells] == [(c.cell_type, c.source) for c in built.cells]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_a_full_run(name):
    """Committed with the outputs of a real run: every cell ran, in order, not in short mode, no errors."""
    nb = read(name)
    cells = code_cells(nb)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert "full mode" in output_text(cells[0])
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < MAX_BYTES
