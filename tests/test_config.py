"""Configs: TOML onto dataclasses, overrides, and one-line errors for bad keys."""

import sys
from pathlib import Path

import pytest

from genzoo.config import (
    apply_overrides,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_override,
    to_toml,
)
from genzoo.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_every_shipped_config_loads():
    assert CONFIGS, "no configs found"
    for path in CONFIGS:
        cfg = load_config(path)
        assert cfg.family in path.stem or cfg.family == "lm"


def test_unknown_key_names_valid_keys_and_closest_match():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"family": "vae", "train": {"lrr": 1e-3}})
    message = str(err.value)
    assert "train.'lrr'" in message or "'lrr'" in message
    assert "max_steps" in message and "did you mean 'lr'" in message
    assert "\n" not in message


def test_unknown_section_and_family():
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        config_from_dict({"family": "vae", "trian": {}})
    with pytest.raises(ConfigError, match="not one of"):
        config_from_dict({"family": "vea"})


def test_wrong_types_fail():
    with pytest.raises(ConfigError, match="train.max_steps must be int"):
        config_from_dict({"family": "vae", "train": {"max_steps": "many"}})
    with pytest.raises(ConfigError, match="train.compile must be bool"):
        config_from_dict({"family": "vae", "train": {"compile": 1}})
    with pytest.raises(ConfigError, match="2 items"):
        config_from_dict({"family": "vae", "train": {"betas": [0.9]}})


def test_int_is_accepted_as_float():
    cfg = config_from_dict({"family": "vae", "train": {"lr": 1}})
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


def test_unknown_sample_option_is_refused():
    with pytest.raises(ConfigError, match="sample.'nonsense'"):
        config_from_dict({"family": "lm", "sample": {"nonsense": 1}})


def test_overrides_are_read_as_toml_values():
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("data.name=fashion_mnist") == (["data", "name"], "fashion_mnist")
    assert parse_override("train.betas=[0.9, 0.95]") == (["train", "betas"], [0.9, 0.95])
    table = apply_overrides({"family": "vae"}, ["train.max_steps=7", "train.compile=true"])
    cfg = config_from_dict(table)
    assert cfg.train.max_steps == 7 and cfg.train.compile is True
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.lr")


def test_resolved_config_round_trips_through_toml():
    for path in CONFIGS:
        cfg = load_config(path, ["train.lr=0.0005"])
        again = config_from_dict(tomllib.loads(to_toml(config_to_dict(cfg))))
        assert again == cfg


def test_missing_config_file_says_where_to_look(tmp_path):
    with pytest.raises(ConfigError, match="genzoo list"):
        load_config(tmp_path / "nope.toml")
