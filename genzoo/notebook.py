"""What the teaching notebooks share: the short-mode switch, a family's source lines printed beside
each equation, and image grids.

The notebooks (``notebooks/<family>.py``, jupytext sources) print the lines of ``genzoo/`` that compute
each equation as ``genzoo/models/vae.py:123  <the line>``. ``drifted_lines`` reads such output back and
names every printed line that no longer equals the current file, so a change to a family file that
moves or alters a printed line fails the tests until the notebook is re-run.
"""

from __future__ import annotations

import inspect
import io
import math
import os
import re
import tokenize
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import Tensor
from torchvision.utils import make_grid

SHORT_ENV = "GENZOO_SHORT"  # CI sets GENZOO_SHORT=1: every loop shrinks to a barely trained model
REPO = Path(__file__).resolve().parents[1]  # the repository (genzoo is installed editable from it)

# One printed source line: "genzoo/models/vae.py:123  code" (the number padded to 4, then one space).
PRINTED_LINE = re.compile(r"^(genzoo/[\w/]+\.py):(\d+) ")


def short_mode() -> bool:
    """Whether the environment asks for the short mode (``GENZOO_SHORT`` set and not 0)."""
    return os.environ.get(SHORT_ENV, "") not in ("", "0")


def start() -> tuple[bool, Path]:
    """A notebook's first call: small readable figures, and the mode announced.

    Returns ``(short, root)``: whether loops should shrink, and the repository (configs live there).
    """
    plt.rcParams.update({"figure.dpi": 80, "image.cmap": "gray", "axes.grid": False})
    short = short_mode()
    print("short mode: every loop shrunk, numbers from a barely trained model" if short else "full mode")
    return short, REPO


# ---------------------------------------------------------------------------------------------
# Source lines beside the equations.


def _relative(path: str | Path) -> str:
    return Path(path).resolve().relative_to(REPO).as_posix()


def _print_line(path: str, number: int, line: str) -> None:
    print(f"{path}:{number:<4d} {line}")


def docstring_rows(lines: list[str]) -> set[int]:
    """Numbers (1-based) of the lines inside triple-quoted strings: prose, not code."""
    rows: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO("\n".join(lines)).readline):
        if token.type == tokenize.STRING and token.string.lstrip("rbuRBU")[:3] in ('"""', "'''"):
            rows.update(range(token.start[0], token.end[0] + 1))
    return rows


def show_lines(module: ModuleType, *needles: str) -> None:
    """Print each line of code (not docstring) of ``module``'s file that contains one of ``needles``.

    Lines are found by their text (an equation's citation comment, usually), so they may move; a
    needle that matches nothing fails loudly, as the notebook no longer describes the file.
    """
    path = _relative(inspect.getsourcefile(module))
    lines = (REPO / path).read_text().splitlines()
    prose = docstring_rows(lines)
    hits = [(i, line) for i, line in enumerate(lines, 1) if i not in prose and any(n in line for n in needles)]
    assert hits, f"{path} has no line with {needles}: the file changed, update this notebook"
    for number, line in hits:
        _print_line(path, number, line)


def show_source(obj: Callable[..., Any] | type) -> None:
    """Print a function or class with its file and line numbers."""
    lines, start_line = inspect.getsourcelines(obj)
    path = _relative(inspect.getsourcefile(obj))
    for number, line in enumerate(lines, start_line):
        _print_line(path, number, line.rstrip("\n"))


def drifted_lines(output: str, root: Path = REPO) -> tuple[int, list[str]]:
    """Check every printed source line in ``output`` against the current file under ``root``.

    Returns how many printed lines were found, and those that differ from line N of their file
    (each with what the file holds now).
    """
    found, drifted, files = 0, [], {}
    for printed in output.splitlines():
        match = PRINTED_LINE.match(printed)
        if not match:
            continue
        found += 1
        path, number = match.group(1), int(match.group(2))
        if path not in files:
            file = root / path
            files[path] = file.read_text().splitlines() if file.is_file() else []
        lines = files[path]
        now = lines[number - 1] if number <= len(lines) else "<no such line>"
        if printed.rstrip() != f"{path}:{number:<4d} {now}".rstrip():
            drifted.append(f"{printed.strip()}  (now: {now.strip()})")
    return found, drifted


# ---------------------------------------------------------------------------------------------
# Figures.


def show_images(x: Tensor, nrow: int = 8, title: str = "", ax: Axes | None = None, scale: float = 0.45) -> Axes:
    """Images in [-1, 1], (B, C, H, W), as one grid; ``scale`` inches per image."""
    if ax is None:
        ax = plt.figure(figsize=(scale * nrow, scale * math.ceil(len(x) / nrow) + 0.3)).gca()
    x = x.detach().cpu().float().clamp(-1, 1)
    grid = make_grid(x, nrow=nrow, padding=1, pad_value=1, normalize=True, value_range=(-1, 1))
    ax.imshow(grid.permute(1, 2, 0))
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return ax


def parameter_count(module: torch.nn.Module) -> int:
    """How many numbers ``module`` learns."""
    return sum(p.numel() for p in module.parameters())
