"""Configs are dataclasses with their defaults in code; a TOML file and ``--set`` only override them.

A config file has a ``family`` and four tables::

    family = "vae"
    [model]   # the family's own dataclass, e.g. genzoo.models.vae.VAEConfig
    [data]    # DataConfig
    [train]   # TrainConfig
    [sample]  # keyword options for the family's ``sample`` (checked against its signature)

Every key is checked: an unknown key or a wrong type fails with one line that names the key,
the valid keys, and the closest match.
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from genzoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


@dataclass
class DataConfig:
    name: str = "mnist"  # a name in genzoo.sources.LOADERS: mnist, fashion_mnist, cifar10, image_folder, text, ...
    batch_size: int = 128
    block_size: int = 128  # text: characters of context per example
    download: bool = True  # try the network when the files are not on disk
    path: str = ""  # image_folder: the folder of images (class sub-folders, or images directly in it);
    # text: the UTF-8 text file. Both relative to the current folder, ~ expanded
    image_size: int = 32  # image_folder: shorter side resized to this, then centre-cropped to a square
    channels: int = 3  # image_folder: 3 reads every image as RGB, 1 as grey (L)


@dataclass
class TrainConfig:
    seed: int = 0
    max_steps: int = 2000
    max_minutes: float = 0.0  # budget of training-step time (eval and sampling not counted); 0: none
    schedule_follows: str = "budget"  # budget: with max_minutes, the lr schedule follows whichever of max_steps
    # and max_minutes ends first (not bitwise reproducible); steps: max_steps alone (exact resume, reproducible)
    lr: float = 1e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup_steps: int = 100
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # global gradient-norm clip; 0 turns it off
    max_nonfinite_steps: int = 20  # updates skipped in a row (NaN/inf loss or gradient) before training stops
    ema_decay: float = 0.0  # 0 turns EMA off; sampling and eval use the EMA weights when on
    log_every: int = 25
    eval_every: int = 500
    eval_batches: int = 20
    sample_every: int = 1000
    n_samples: int = 64
    checkpoint_every: int = 500
    device: str = "auto"  # auto | cpu | cuda | mps
    compile: bool = False  # torch.compile the model (GPU runs)
    autocast: bool = True  # bf16 autocast, on CUDA only: on CPU it is ~100x slower than fp32 here


@dataclass
class Config:
    family: str
    model: Any  # the family's config dataclass
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    sample: dict[str, Any] = field(default_factory=dict)


def _unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"unknown key {where}{key!r}; valid keys: {', '.join(valid)}{hint}")


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Check ``value`` against the annotation ``tp``; ints are accepted where floats are expected."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis and len(args) != len(value):
            raise ConfigError(f"{name} must have {len(args)} items, got {value!r}")
        item_types = args if origin is tuple and Ellipsis not in args else [args[0]] * len(value)
        return origin(_coerce(v, t, name) for v, t in zip(value, item_types))
    ok = {
        bool: isinstance(value, bool),
        int: isinstance(value, int) and not isinstance(value, bool),
        float: isinstance(value, (int, float)) and not isinstance(value, bool),
        str: isinstance(value, str),
    }.get(tp, True)
    if not ok:
        raise ConfigError(f"{name} must be {tp.__name__}, got {value!r}")
    return float(value) if tp is float else value


def fill_dataclass(cls: type, table: dict[str, Any], section: str) -> Any:
    """An instance of ``cls`` with ``table`` over its defaults; unknown keys and wrong types fail."""
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in table.items():
        if key not in hints:
            raise _unknown_key(key, valid, f"{section}.")
        values[key] = _coerce(value, hints[key], f"{section}.{key}")
    return cls(**values)


def check_options(fn: Callable, options: dict[str, Any], where: str) -> None:
    """Fail in one line if ``options`` holds a keyword that ``fn`` (a family's ``sample``) does not take.

    Options are the parameters with a default, but the generator: not ``n``, ``x`` or ``known``."""
    params = inspect.signature(fn).parameters
    kinds = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    valid = [k for k, p in params.items() if p.kind in kinds and p.default is not p.empty and k != "generator"]
    for key in options:
        if key not in valid:
            raise _unknown_key(key, valid, where)


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 3e-4). Values are TOML; bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value (e.g. train.lr=3e-4)")
    key, raw = text.split("=", 1)
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.strip().split("."), value


def apply_overrides(table: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for text in overrides:
        path, value = parse_override(text)
        node = table
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a table")
        node[path[-1]] = value
    return table


def config_from_dict(table: dict[str, Any]) -> Config:
    from genzoo.models import FAMILIES  # imported here: models import this module

    valid = [f.name for f in dataclasses.fields(Config)]
    for key in table:
        if key not in valid:
            raise _unknown_key(key, valid, "")
    family = table.get("family")
    if family not in FAMILIES:
        raise ConfigError(f"family {family!r} is not one of: {', '.join(FAMILIES)}")
    for section in ("model", "data", "train", "sample"):
        if not isinstance(table.get(section, {}), dict):
            raise ConfigError(f"[{section}] must be a table")
    model_cls = FAMILIES[family]
    cfg = Config(
        family=family,
        model=fill_dataclass(model_cls.Config, table.get("model", {}), "model"),
        data=fill_dataclass(DataConfig, table.get("data", {}), "data"),
        train=fill_dataclass(TrainConfig, table.get("train", {}), "train"),
        sample=dict(table.get("sample", {})),
    )
    check_options(model_cls.sample, cfg.sample, "sample.")
    return cfg


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a TOML config, apply ``section.key=value`` overrides, and check every key."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} not found (see `genzoo list` for the shipped ones)")
    try:
        table = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return config_from_dict(apply_overrides(table, list(overrides)))


def config_to_dict(cfg: Config) -> dict[str, Any]:
    return {
        "family": cfg.family,
        "model": dataclasses.asdict(cfg.model),
        "data": dataclasses.asdict(cfg.data),
        "train": dataclasses.asdict(cfg.train),
        "sample": dict(cfg.sample),
    }


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ConfigError(f"cannot write {value!r} to TOML")


def to_toml(table: dict[str, Any]) -> str:
    """TOML text for a config dict (top-level scalars, then one level of tables)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
    for name, section in table.items():
        if isinstance(section, dict):
            lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in section.items()]
    return "\n".join(lines) + "\n"
