"""Every notebook's graded exercises: its graders accept the worked solution and refuse typical mistakes.

Solutions live in ``notebooks/solutions/<notebook>.py`` (``SOLUTIONS``: exercise -> answer); the
mistakes in ``tests/exercise_mistakes/<notebook>.py`` (``MISTAKES``: exercise -> list of wrong answers).
"""

import importlib.util
import re
from pathlib import Path

import pytest

from genzoo.exercises import NOTEBOOKS, check, grade, graders

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cases():
    for notebook in NOTEBOOKS:
        for exercise in sorted(graders(notebook)):
            yield pytest.param(notebook, exercise, id=f"{notebook}.{exercise}")


@pytest.mark.parametrize("notebook, exercise", cases())
def test_the_worked_solution_passes(notebook, exercise):
    solutions = load(ROOT / "notebooks" / "solutions" / f"{notebook}.py").SOLUTIONS
    assert exercise in solutions, f"notebooks/solutions/{notebook}.py has no solution to {exercise}"
    assert grade(f"{notebook}.{exercise}", solutions[exercise]) is None


@pytest.mark.parametrize("notebook, exercise", cases())
def test_every_typical_mistake_is_refused_with_a_reason(notebook, exercise):
    mistakes = load(ROOT / "tests" / "exercise_mistakes" / f"{notebook}.py").MISTAKES
    assert mistakes.get(exercise), f"tests/exercise_mistakes/{notebook}.py has no wrong answer for {exercise}"
    for wrong in mistakes[exercise]:
        problem = grade(f"{notebook}.{exercise}", wrong)
        assert isinstance(problem, str) and problem, f"a wrong answer to {notebook}.{exercise} was accepted"


@pytest.mark.parametrize("notebook", NOTEBOOKS)
def test_each_notebook_ends_with_its_three_or_more_exercises(notebook):
    source = (ROOT / "notebooks" / f"{notebook}.py").read_text()
    asked = set(re.findall(rf'check\("{notebook}\.(\w+)"', source))
    assert len(graders(notebook)) >= 3
    assert asked == set(graders(notebook)), f"notebooks/{notebook}.py asks {sorted(asked)}"


def test_an_unanswered_exercise_says_so_and_does_not_stop_the_notebook(capsys):
    def unanswered(*args):
        raise NotImplementedError

    notebook = NOTEBOOKS[1]
    name = f"{notebook}.{sorted(graders(notebook))[0]}"
    assert check(name, unanswered) is False
    assert "not answered yet" in capsys.readouterr().out


def test_an_unknown_exercise_names_the_valid_ones():
    with pytest.raises(KeyError, match="vae has"):
        grade("vae.no_such_exercise", None)


def test_the_auroc_graders_pair_count_agrees_with_genzoos_auroc():
    import torch

    from genzoo.exercises.overview import pair_count_auroc
    from genzoo.metrics import auroc

    g = torch.Generator().manual_seed(1)
    for usual, unusual in ((torch.randn(300, generator=g), torch.randn(200, generator=g) + 1),
                           (torch.randint(0, 4, (50,), generator=g).float(), torch.randint(1, 5, (40,), generator=g).float())):
        assert abs(pair_count_auroc(usual, unusual) - auroc(usual, unusual)) < 1e-6
