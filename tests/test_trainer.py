"""The trainer: schedules, exact resume, atomic and safe checkpoints, Ctrl-C, the run folder."""

import json
import math

import pytest
import torch

from genzoo.checkpoint import load_checkpoint, load_model, save_checkpoint
from genzoo.config import TrainConfig, load_config
from genzoo.errors import CheckpointError
from genzoo.trainer import warmup_cosine
from helpers import CONFIGS, assert_same_weights, trainer_for  # tests/helpers.py

TINY = [
    "data.batch_size=16",
    "train.eval_every=4",
    "train.eval_batches=2",
    "train.sample_every=4",
    "train.checkpoint_every=4",
    "train.log_every=2",
    "train.n_samples=4",
    "train.warmup_steps=2",
    "train.ema_decay=0.9",
    "train.max_minutes=0",  # exact resume is a promise of step-based schedules
]


def make_trainer(run_dir, max_steps=8, extra=()):
    return trainer_for(CONFIGS / "vae_mnist.toml", run_dir, TINY + [f"train.max_steps={max_steps}", *extra])


def test_warmup_then_cosine_to_the_floor():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = warmup_cosine(opt, cfg)
    lrs = []
    for _ in range(cfg.max_steps):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert sched.get_last_lr()[0] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))


def test_resume_is_exact(tmp_path):
    straight = make_trainer(tmp_path / "a")
    straight.fit()
    halves = make_trainer(tmp_path / "b")
    halves.fit(stop_at=4)
    resumed = make_trainer(tmp_path / "b")
    resumed.resume(tmp_path / "b")
    assert resumed.step == 4
    resumed.fit()
    assert resumed.step == straight.step == 8
    assert_same_weights(straight, resumed)


def test_run_folder_is_self_describing(tmp_path):
    run = make_trainer(tmp_path / "run").fit()
    names = {p.name for p in run.run_dir.iterdir()}
    assert {"config.toml", "metrics.jsonl", "loss.png", "last.pt", "best.pt", "samples"} <= names
    assert sorted(p.name for p in (run.run_dir / "samples").iterdir())[-1] == "step_000008.png"
    records = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert {r["split"] for r in records} == {"train", "val"}
    assert all(math.isfinite(r["loss"]) for r in records)
    assert load_config(run.run_dir / "config.toml").train.max_steps == 8
    model, cfg, spec = load_model(run.run_dir)
    assert torch.equal(next(iter(model.state_dict().values())), next(iter(run.sampling_model.state_dict().values())))


def test_max_minutes_budget_stops_training(tmp_path):
    trainer = make_trainer(tmp_path / "run", max_steps=1000, extra=["train.max_minutes=0.0001"])
    run = trainer.fit()
    assert 1 <= run.step < 1000


def test_ctrl_c_saves_last_checkpoint_and_resumes(tmp_path, monkeypatch):
    trainer = make_trainer(tmp_path / "run")
    real_step = trainer.model.training_step

    def step_then_interrupt(batch, optimizers, step, clip):
        if step == 3:
            raise KeyboardInterrupt
        return real_step(batch, optimizers, step, clip)

    monkeypatch.setattr(trainer.model, "training_step", step_then_interrupt)
    run = trainer.fit()
    assert run.interrupted and run.step == 3
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 3
    again = make_trainer(tmp_path / "run")
    again.resume(tmp_path / "run")
    assert again.fit().step == 8


def test_crash_mid_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"step": 1, "w": torch.ones(3)}, path)

    def crash(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError):
        save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    state = load_checkpoint(path)
    assert state["step"] == 1 and torch.equal(state["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class Payload:
    def __reduce__(self):
        return (print, ("this code must never run",))


def test_checkpoint_with_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "genzoo-checkpoint-1", "model": Payload()}, path)
    with pytest.raises(CheckpointError, match="refusing"):
        load_checkpoint(path)
    assert "never run" not in capsys.readouterr().out


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(corrupt)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a genzoo checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
