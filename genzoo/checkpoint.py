"""Checkpoints: written atomically, read with ``weights_only=True``, and enough to rebuild the model.

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts: the model's and the
optimizers' state, the resolved config and the data spec. Loading it never unpickles code, so a
file carrying a pickled object is refused rather than executed.
"""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from genzoo.config import Config, config_from_dict
from genzoo.errors import CheckpointError
from genzoo.model import GenerativeModel
from genzoo.specs import ImageSpec, TextSpec, spec_from_dict

FORMAT = "genzoo-checkpoint-1"


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write to a temporary file beside ``path``, flush it to disk, then rename it over ``path``.

    ``os.replace`` is atomic, so a crash mid-write leaves the previous checkpoint intact.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"format": FORMAT, **state}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_partial_writes(folder: str | Path) -> list[Path]:
    """Delete the temporary files of checkpoint writes that never finished (a process killed mid-write
    leaves its ``.NAME.pt.*.tmp`` behind; the checkpoint it was replacing is intact). Returns them."""
    partial = sorted(Path(folder).glob(".*.pt.*.tmp"))
    for path in partial:
        path.unlink(missing_ok=True)
    return partial


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint onto the CPU, refusing anything that is not plain tensors and data."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {str(path)!r}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first_line = str(err).strip().splitlines()[0]
        raise CheckpointError(f"refusing {path}: it holds more than tensors and plain data ({first_line})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as err:
        raise CheckpointError(f"{path} is corrupt or not a checkpoint ({type(err).__name__})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a genzoo checkpoint (expected format {FORMAT!r})")
    return state


def checkpoint_path(run: str | Path, which: str = "last") -> Path:
    """A run folder or a checkpoint file -> the checkpoint file (``last.pt`` or ``best.pt``)."""
    run = Path(run)
    return run / f"{which}.pt" if run.is_dir() else run


def build_model(cfg: Config, spec: ImageSpec | TextSpec, seed: int | None = None) -> GenerativeModel:
    """The config's model for data of ``spec``; with a ``seed``, torch's global generator is seeded
    first, so the same seed gives the same initial weights (and the same random numbers after them)."""
    from genzoo.models import FAMILIES

    if seed is not None:
        torch.manual_seed(seed)
    return FAMILIES[cfg.family].from_config(cfg.model, spec)


def ema_weights(ema_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The wrapped model's weights inside a ``torch.optim.swa_utils.AveragedModel`` state_dict."""
    return {k.removeprefix("module."): v for k, v in ema_state.items() if k.startswith("module.")}


def load_model(
    run: str | Path, which: str = "last", use_ema: bool = True
) -> tuple[GenerativeModel, Config, ImageSpec | TextSpec]:
    """Rebuild a trained model from a run folder or checkpoint, with EMA weights when the run kept them."""
    state = load_checkpoint(checkpoint_path(run, which))
    cfg = config_from_dict(state["config"])
    spec = spec_from_dict(state["spec"])
    model = build_model(cfg, spec)
    weights = ema_weights(state["ema"]) if use_ema and state.get("ema") else state["model"]
    model.load_state_dict(weights)
    model.eval()
    return model, cfg, spec
