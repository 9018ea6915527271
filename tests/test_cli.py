"""The genzoo command end to end: train a few steps, sample, and one-line errors for bad input."""

import subprocess
import sys
from pathlib import Path

import pytest

from genzoo.cli import main, parse_sample_options

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST = [
    "--set", "train.max_steps=3", "--set", "train.eval_batches=1", "--set", "train.log_every=1",
    "--set", "train.n_samples=4", "--set", "data.batch_size=8",
]


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
