"""Graded exercises: each notebook ends with three, and ``check`` grades a learner's answer.

A learner writes a function (or computes a value) in the notebook and runs
``check("vae.kl_two_gaussians", my_kl)``: one line says it is right, or what is wrong with it.
The graders of each notebook live in ``genzoo/exercises/<notebook>.py`` as ``GRADERS``, a dict from
the exercise's short name to a function ``answer -> None | str`` (None: right; a string: one sentence
saying what is wrong). A grader compares the answer with an *independent* computation (the library's
own function, a closed form or a Monte-Carlo estimate), never with a stored number.

Worked solutions are in ``notebooks/solutions/<notebook>.py``, apart from the notebooks; the tests
run every grader on its solution (it must pass) and on typical mistakes (each must fail).
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

import torch
from torch import Tensor

NOTEBOOKS = ("overview", "vae", "lm", "ddpm", "gan", "flow", "ebm")
Grader = Callable[[Any], "str | None"]


def graders(notebook: str) -> dict[str, Grader]:
    """The exercises of ``notebook`` (one of ``NOTEBOOKS``), by short name."""
    if notebook not in NOTEBOOKS:
        raise KeyError(f"no notebook {notebook!r}; the notebooks with exercises are {', '.join(NOTEBOOKS)}")
    return importlib.import_module(f"genzoo.exercises.{notebook}").GRADERS


def grade(name: str, answer: Any) -> str | None:
    """None when ``answer`` to exercise ``name`` ("notebook.exercise") is right, else what is wrong."""
    notebook, _, exercise = name.partition(".")
    found = graders(notebook)
    if exercise not in found:
        raise KeyError(f"no exercise {name!r}; {notebook} has {', '.join(f'{notebook}.{e}' for e in found)}")
    try:
        return found[exercise](answer)
    except NotImplementedError:
        return "not answered yet: replace the `raise NotImplementedError` with your code"
    except Exception as err:  # a learner's code may fail in any way; say how, do not stop the notebook
        return f"your answer raised {type(err).__name__}: {err}"


def check(name: str, answer: Any) -> bool:
    """Grade ``answer`` to exercise ``name`` and print one line: right, or what is wrong. Returns whether right."""
    problem = grade(name, answer)
    print(f"{name}: right" if problem is None else f"{name}: not yet. {problem}")
    return problem is None


# ---------------------------------------------------------------------------------------------
# What graders share.


def mismatch(actual: Any, expected: Tensor, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """None when ``actual`` is a tensor (or number) equal to ``expected`` within tolerance, else why not."""
    actual = torch.as_tensor(actual, dtype=expected.dtype) if not isinstance(actual, Tensor) else actual
    if actual.shape != expected.shape:
        return f"{what} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}"
    actual = actual.detach().to(expected.dtype)
    if not torch.isfinite(actual).all():
        return f"{what} has non-finite values"
    if torch.allclose(actual, expected, rtol=rtol, atol=atol):
        return None
    worst = (actual - expected).abs().flatten().argmax()
    return (f"{what} differs: {actual.flatten()[worst].item():.6g} where the independent computation gives "
            f"{expected.flatten()[worst].item():.6g} (largest difference of {actual.numel()} values)")
