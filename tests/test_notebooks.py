"""Teaching notebooks: they run top to bottom in short mode, and the committed files cannot drift.

Each notebook checks its own mathematics with ``assert`` cells (the Monte-Carlo KL against the
closed form, the causal attention matrix being lower triangular, ...), so running it without a
cell error is a behavioural test. The committed .ipynb files must hold exactly the cells of their
Python sources (``notebooks/<name>.py``) and the outputs of a full-mode run, and every line of
``genzoo/`` they print must still be that line of the file: change a printed line and the test
fails until ``python notebooks/run.py --execute <name>`` re-runs the notebook.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from genzoo import notebook
from genzoo.models import vae

nbclient = pytest.importorskip("nbclient")
nbformat = pytest.importorskip("nbformat")
pytest.importorskip("jupytext")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NAMES = ["overview", "vae", "lm", "ddpm", "gan", "flow", "ebm", "applications", "text_to_image"]  # the reading order
FAMILY_NOTEBOOKS = NAMES[1:]  # the overview compares the families and prints no source lines
MAX_BYTES = 1_500_000


def runner():
    spec = importlib.util.spec_from_file_location("notebooks_run", NOTEBOOKS / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def committed(name: str) -> nbformat.NotebookNode:
    return nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)


def code_cells(nb: nbformat.NotebookNode) -> list:
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def output_text(cell) -> str:
    return "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for o in cell.get("outputs", []))


def test_every_notebook_has_a_source_and_a_committed_file():
    assert sorted(runner().NAMES) == sorted(NAMES)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.py") if p.stem != "run") == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_has_exactly_its_sources_cells(name):
    """Edit notebooks/<name>.py, then re-run it; the .ipynb is never edited by hand."""
    source, nb = runner().from_source(name), committed(name)
    assert [(c.cell_type, c.source) for c in nb.cells] == [(c.cell_type, c.source) for c in source.cells]


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_holds_a_full_run(name):
    """Committed with the outputs of a real run: every cell ran, in order, not in short mode, no errors."""
    nb = committed(name)
    cells = code_cells(nb)
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    assert "full mode" in output_text(cells[0])
    assert not [o for cell in cells for o in cell.outputs if o.output_type == "error"]
    assert (NOTEBOOKS / f"{name}.ipynb").stat().st_size < MAX_BYTES


@pytest.mark.parametrize("name", FAMILY_NOTEBOOKS)
def test_every_printed_source_line_is_the_current_line(name):
    """``genzoo/models/<family>.py:N <code>`` in a committed output must be line N of today's file."""
    text = "\n".join(output_text(cell) for cell in code_cells(committed(name)))
    found, drifted = notebook.drifted_lines(text)
    assert found >= 10, f"{name}.ipynb prints only {found} source lines"
    assert not drifted, f"{len(drifted)} of {found} printed lines drifted; re-run the notebook:\n" + "\n".join(drifted[:10])


def test_drift_check_notices_a_moved_or_changed_line(capsys, tmp_path):
    notebook.show_lines(vae, "K&W 2014, appendix B")
    printed = capsys.readouterr().out
    assert notebook.drifted_lines(printed) == (1, [])
    path, number = notebook.PRINTED_LINE.match(printed).groups()
    lines = (notebook.REPO / path).read_text().splitlines()
    moved = tmp_path / path
    moved.parent.mkdir(parents=True)
    moved.write_text("\n".join(["# a new first line"] + lines))
    assert len(notebook.drifted_lines(printed, root=tmp_path)[1]) == 1
    lines[int(number) - 1] += "  # edited"
    moved.write_text("\n".join(lines))
    assert len(notebook.drifted_lines(printed, root=tmp_path)[1]) == 1


def test_show_source_prints_every_line_with_its_number(capsys):
    notebook.show_source(vae.VAE.loss)
    printed = capsys.readouterr().out
    found, drifted = notebook.drifted_lines(printed)
    assert found == len(printed.splitlines()) > 3 and not drifted


LONGEST_FIRST = ["ddpm", "applications", "text_to_image", "gan", "ebm", "flow", "lm", "vae", "overview"]  # the order tests/conftest.py starts them in


def execute_in_short_mode(name: str) -> nbformat.NotebookNode:
    """Run a notebook in a fresh kernel in short mode, with one torch thread (two run side by side)."""
    nb = runner().from_source(name)
    client = nbclient.NotebookClient(
        nb, timeout=480, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    env = {**os.environ, "GENZOO_SHORT": "1", "OMP_NUM_THREADS": "1"}
    client.execute(env=env)  # raises CellExecutionError at the first failing cell, failed asserts included
    return nb


def test_every_notebook_is_started_by_the_conftest():
    assert sorted(LONGEST_FIRST) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_top_to_bottom_in_short_mode(name, pytestconfig):
    """The run started when the tests were collected (tests/conftest.py): here its result is checked."""
    source = runner().from_source(name)
    assert any("assert " in cell.source for cell in code_cells(source)), "a notebook must check something"
    cells = code_cells(pytestconfig.notebook_runs[name].result())
    assert "short mode" in output_text(cells[0])  # the notebook saw GENZOO_SHORT
    assert all(cell.execution_count for cell in cells)
    assert not notebook.drifted_lines("\n".join(output_text(cell) for cell in cells))[1]
