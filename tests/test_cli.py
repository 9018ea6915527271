"""The genzoo command end to end: train a few steps, sample, and one-line errors for bad input."""

import re
import subprocess
import sys

import pytest

from genzoo.cli import main, parse_sample_options
from genzoo.errors import ConfigError
from genzoo.recipe import config_and_run_dir, train_arguments
from helpers import CONFIGS, FAST  # tests/helpers.py


def test_train_then_sample_images(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST]) == 0
    assert (run / "last.pt").is_file() and (run / "loss.png").is_file()
    assert main(["sample", str(run), "-n", "4", "--out", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").stat().st_size > 0


def test_train_then_continue_a_prompt(tmp_path, capsys):
    run = tmp_path / "lm"
    fast_lm = FAST + ["--set", "sample.max_new_tokens=20", "--set", "data.block_size=32"]
    assert main(["train", str(CONFIGS / "lm_shakespeare.toml"), "--out", str(run), *fast_lm]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "1", "--prompt", "ROMEO:", "--max-new-tokens", "30"]) == 0
    out = capsys.readouterr().out
    passage = out.split("\n", 1)[1]
    assert passage.startswith("ROMEO:") and len(passage.rstrip("\n")) >= len("ROMEO:") + 30 - 1


def test_resume_continues_a_run(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST]) == 0
    assert main(["train", "--resume", str(run), "--set", "train.max_steps=5"]) == 0
    assert "step 5" in capsys.readouterr().out


def test_config_and_run_dir_from_a_config_file_or_a_resumed_run(tmp_path):
    args = train_arguments().parse_args([str(CONFIGS / "vae_mnist.toml"), "--set", "train.lr=0.5"])
    cfg, run_dir = config_and_run_dir(args)
    assert cfg.family == "vae" and cfg.train.lr == 0.5
    assert re.fullmatch(r"runs/vae_mnist-\d{8}-\d{6}", run_dir.as_posix())
    (tmp_path / "config.toml").write_text((CONFIGS / "lm_shakespeare.toml").read_text())
    args = train_arguments(str(CONFIGS / "vae_mnist.toml")).parse_args(["--resume", str(tmp_path), "--out", "x"])
    cfg, run_dir = config_and_run_dir(args)
    assert cfg.family == "lm" and run_dir == tmp_path  # the run's own config and folder win
    with pytest.raises(ConfigError, match="give a config file"):
        config_and_run_dir(train_arguments().parse_args([]))


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genzoo: error:")
    return err[0]


def test_wrong_config_key_is_one_line_naming_valid_keys(capsys):
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--set", "train.lrr=1"]) == 2
    line = one_error_line(capsys)
    assert "'lrr'" in line and "did you mean 'lr'" in line and "max_steps" in line


def test_unknown_sampling_option_is_one_line(tmp_path, capsys):
    run = tmp_path / "vae"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *FAST]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "--prompt", "hi"]) == 2
    assert "'prompt'" in one_error_line(capsys)


def test_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "last.pt").write_bytes(b"garbage")
    assert main(["sample", str(tmp_path)]) == 2
    assert "corrupt" in one_error_line(capsys)


def test_sample_options_are_parsed_by_name():
    assert parse_sample_options(["--prompt", "ROMEO:", "--top-k=5", "--temperature", "0.8"]) == {
        "prompt": "ROMEO:", "top_k": 5, "temperature": 0.8,
    }


def test_console_script_lists_families_and_configs():
    out = subprocess.run(
        [sys.executable, "-m", "genzoo.cli", "list"], capture_output=True, text=True, check=True
    ).stdout
    assert "vae" in out and "lm" in out and "vae_mnist.toml" in out


def test_data_command_reports_every_dataset(capsys):
    assert main(["data"]) == 0
    out = capsys.readouterr().out
    for name in ("mnist", "shakespeare", "tinyshakespeare"):
        assert name in out
