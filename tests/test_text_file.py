"""The transformer beyond Shakespeare: any text file (``data.name = "text"``), the Python standard
library as a code corpus (``data.name = "python"``), and the bigram baseline beside every text run."""

import json
import platform
import string

import pytest
import torch

from genzoo.baselines import bigram_nats_per_char
from genzoo.cli import main
from genzoo.config import DataConfig, load_config
from genzoo.errors import ConfigError, DataError
from genzoo.sources import NOT_PLAIN_CODE, describe_datasets, load_data, python_corpus, python_source
from helpers import CONFIGS, FAST  # tests/helpers.py

TEXT = "Ein Text für alle: ça va?\n" * 80  # 2,080 characters, some of them outside ASCII


def load_text(path, block_size: int = 16):
    return load_data(DataConfig(name="text", path=str(path), block_size=block_size))


def test_a_text_file_splits_90_10_with_the_vocabulary_of_the_file(tmp_path, monkeypatch):
    (tmp_path / "notes.txt").write_text(TEXT, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # data.path is relative to the current folder
    data = load_text("notes.txt")
    assert data.spec.vocab == "".join(sorted(set(TEXT))) and "ü" in data.spec.vocab
    assert (len(data.train_ids), len(data.val_ids)) == (1_872, 208)
    assert data.spec.decode(data.train_ids) + data.spec.decode(data.val_ids) == TEXT
    assert str(tmp_path / "notes.txt") in data.source and "1,872 train / 208 val" in data.source
    monkeypatch.setenv("HOME", str(tmp_path))
    assert load_text("~/notes.txt").spec == data.spec


def one_line_data_error(path, block_size: int = 16) -> str:
    with pytest.raises(DataError) as raised:
        load_text(path, block_size)
    message = str(raised.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize("name, content, expected", [
    ("missing.txt", None, ["no file at", "missing.txt", "set data.path", "relative to the current folder"]),
    ("folder", "dir", ["is a folder, not a file"]),
    ("empty.txt", b"", ["empty.txt is empty"]),
    ("image.png", b"\x89PNG\x00\x00", ["looks binary", "NUL byte at byte 4"]),
    ("latin1.txt", "naïve".encode("latin-1"), ["not valid UTF-8", "0xef at byte 2"]),
])
def test_an_unusable_file_is_a_one_line_error_saying_what_is_wrong(tmp_path, name, content, expected):
    path = tmp_path / name
    if content == "dir":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    message = one_line_data_error(path)
    assert all(part in message for part in expected), message


def test_a_text_too_short_for_the_block_says_how_many_characters_it_needs(tmp_path):
    path = tmp_path / "short.txt"
    path.write_text("x" * 100)
    message = one_line_data_error(path, block_size=16)
    assert "has 100 characters, too few for data.block_size = 16" in message
    needed = int(message.split("needs ")[1].split()[0].replace(",", ""))
    at_most = int(message.split("at most ")[1].split()[0])
    path.write_text("x" * needed)
    load_text(path, block_size=16)  # exactly as many as it says is enough
    path.write_text("x" * (needed - 1))
    one_line_data_error(path, block_size=16)
    path.write_text("x" * 100)
    load_text(path, block_size=at_most)  # and the block size it suggests fits
    path.write_text("x")
    assert "use a longer text" in one_line_data_error(path, block_size=16)


def test_text_without_a_path_is_a_config_error():
    with pytest.raises(ConfigError, match="needs data.path"):
        load_data(DataConfig(name="text"))


def test_the_python_corpus_is_repeatable_plain_ascii_code_named_by_its_python_version():
    code, removed = python_corpus()
    assert (code, removed) == python_corpus()
    assert NOT_PLAIN_CODE.search(code) is None and set(code) <= set(string.printable) - set("\r\x0b\x0c")
    assert len(code) + removed == len(python_source(3_000_000)) == 3_000_000
    assert "def " in code and "import " in code
    data = load_data(DataConfig(name="python"))
    assert f"Python {platform.python_version()}'s standard library" in data.source
    assert f"{removed:,} (" in data.source and data.spec.vocab_size <= 97
    row = {r["name"]: r for r in describe_datasets()}["python"]
    assert row["status"] == f"Python {platform.python_version()}" and row["train"] + row["test"] == len(code)


def test_the_shipped_code_config_prompts_with_def_and_is_listed(capsys):
    cfg = load_config(CONFIGS / "lm_python.toml")
    assert cfg.data.name == "python" and cfg.sample["prompt"] == "def "
    assert main(["list"]) == 0 and "lm_python.toml" in capsys.readouterr().out


def test_train_sample_and_eval_a_text_file_run_with_its_bigram_baseline(tmp_path, monkeypatch, capsys):
    code = python_source(max_chars=20_000)
    (tmp_path / "code.py.txt").write_text(code)
    monkeypatch.chdir(tmp_path)
    tiny = ["model.n_layer=1", "model.n_head=2", "model.n_embd=32", "model.block_size=32", "data.block_size=32",
            "data.name=text", "data.path=code.py.txt", "sample.max_new_tokens=10"]
    run = tmp_path / "run"
    sets = [arg for override in tiny for arg in ("--set", override)]
    assert main(["train", str(CONFIGS / "lm_python.toml"), "--out", str(run), *FAST, *sets]) == 0
    capsys.readouterr()
    assert main(["sample", str(run), "-n", "1", "--prompt", "def ", "--max-new-tokens", "12"]) == 0
    passage = capsys.readouterr().out.split("\n", 1)[1]
    assert passage.startswith("def ") and len(passage.rstrip("\n")) >= len("def ") + 12 - 1

    assert main(["eval", str(run)]) == 0
    report = json.loads((run / "eval.json").read_text())
    vocab = "".join(sorted(set(code)))
    ids = torch.tensor([vocab.index(ch) for ch in code])
    n = int(len(ids) * 0.9)
    expected = bigram_nats_per_char(ids[:n], ids[n:], len(vocab))
    assert report["baseline"]["nats_per_char"] == pytest.approx(expected, rel=1e-6)
    assert f"(bigram baseline {expected:.4f})" in capsys.readouterr().out

    (tmp_path / "code.py.txt").write_text(code + "€")  # edited since training: other characters
    assert main(["eval", str(run)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "other characters than" in error
