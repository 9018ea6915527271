"""Training that survives bad numbers and kills, and the trainer's choices that each family informs.

- NaN guard: a non-finite loss or gradient skips the update (weights and optimizer moments untouched),
  is counted in ``metrics.jsonl``, and after ``max_nonfinite_steps`` in a row stops training with one
  line naming the step and the quantity, the last good checkpoint intact.
- Kill safety: SIGKILL while a checkpoint is being written, again and again: every time ``last.pt``
  is a valid checkpoint and the run resumes from it to the end.
- ``best.pt`` follows each family's ``checkpoint_score``; the EMA averages parameters and copies
  buffers; the learning-rate schedule follows a time budget when that ends first.
- Data parallelism's pieces that the two-process tests cannot single out: the slices of the batch,
  each rank's own noise, and the global batch dividing evenly.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genzoo.checkpoint import load_checkpoint
from genzoo.config import TrainConfig
from genzoo.distributed import World, shard
from genzoo.errors import ConfigError, TrainingDiverged
from genzoo.model import optimize
from genzoo.trainer import Trainer, warmup_cosine
from helpers import CONFIGS, trainer_for

TINY = [  # a VAE of a few milliseconds a step
    "model.latent_dim=4", "model.encoder_channels=[4, 8]", "model.decoder_channels=[8, 4]", "model.iw_samples=2",
    "data.batch_size=8", "data.download=false", "train.eval_every=100", "train.sample_every=100",
    "train.checkpoint_every=4", "train.eval_batches=1", "train.log_every=1", "train.n_samples=2",
    "train.warmup_steps=2", "train.max_minutes=0", "train.device=cpu",
]


def tiny_vae(run_dir: Path, *extra: str) -> Trainer:
    return trainer_for(CONFIGS / "vae_mnist.toml", run_dir, [*TINY, *extra])


def train_records(run_dir: Path) -> list[dict]:
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [r for r in records if r["split"] == "train"]


class NanGradient(torch.autograd.Function):
    """The identity forward; a gradient of nan backward: a finite loss with a non-finite gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * math.nan


def poison(trainer: Trainer, bad_steps: set[int], where: str = "loss") -> None:
    """Make the training loss (``where="loss"``) or its gradient (``"gradient"``) non-finite at ``bad_steps``."""
    real_loss = trainer.model.loss

    def loss(batch):
        value, metrics = real_loss(batch)
        if trainer.model.training and trainer.step in bad_steps:
            if where == "loss":
                value, metrics["loss"] = value * math.nan, math.nan
            else:
                value = NanGradient.apply(value)
        return value, metrics

    trainer.model.loss = loss  # the instance attribute shadows the method


# ---------------------------------------------------------------------------------------------- NaN guard


def test_optimize_skips_a_non_finite_update_and_leaves_the_optimizer_untouched():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    opt = torch.optim.Adam([w], lr=0.1)
    assert math.isfinite(optimize(opt, (w**2).sum()))  # one good step: Adam has moments now
    before_w, before_state = w.detach().clone(), {k: v.clone() for k, v in opt.state[w].items()}
    for bad in ((w**2).sum() * math.inf, (w**2).sum() * math.nan, NanGradient.apply((w**2).sum())):
        assert math.isnan(optimize(opt, bad))
        assert torch.equal(w.detach(), before_w)
        assert all(torch.equal(opt.state[w][k], v) for k, v in before_state.items())
    assert math.isfinite(optimize(opt, (w**2).sum())) and not torch.equal(w.detach(), before_w)


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_non_finite_steps_are_skipped_counted_and_training_goes_on(tmp_path, where):
    trainer = tiny_vae(tmp_path, "train.max_steps=8", "train.max_nonfinite_steps=3")
    poison(trainer, {3, 4}, where)  # the 4th and 5th steps (trainer.step counts the steps done)
    trainer.fit(stop_at=3)
    weights = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.fit(stop_at=5)
    assert all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())  # skipped
    trainer.fit()
    assert trainer.step == 8
    assert not all(torch.equal(v, weights[k]) for k, v in trainer.model.state_dict().items())  # trained on
    records = train_records(tmp_path)
    assert [r["skipped_updates"] for r in records] == [0, 0, 0, 1, 2, 2, 2, 2]
    assert math.isnan(records[3]["grad_norm"]) and math.isfinite(records[5]["grad_norm"])


@pytest.mark.parametrize("where, named", [("loss", "the loss"), ("gradient", "the gradient (grad_norm)")])
def test_a_diverging_run_stops_with_one_line_and_keeps_its_last_good_checkpoint(tmp_path, where, named):
    trainer = tiny_vae(tmp_path, "train.max_steps=20", "train.max_nonfinite_steps=3", "train.checkpoint_every=2")
    poison(trainer, set(range(5, 20)), where)  # every step from the 6th on: step 6's checkpoint is not written
    with pytest.raises(TrainingDiverged) as stopped:
        trainer.fit()
    message = str(stopped.value)
    assert "\n" not in message and "step 8" in message and named in message and "3 steps in a row" in message
    assert f"{tmp_path / 'last.pt'} (step 4)" in message and "train.lr" in message
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["step"] == 4  # the checkpoint due at step 6 fell inside the non-finite steps: not written
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())
    assert trainer.step == 8 and train_records(tmp_path)[-1]["step"] == 7  # stopped before logging step 8


# ---------------------------------------------------------------------------------------------- kill safety


def test_sigkill_while_writing_a_checkpoint_never_loses_the_run(tmp_path):
    """Kill -9 the moment a checkpoint's temporary file appears, five times; each time ``last.pt``
    loads and the run resumes; the last resume trains to the end and clears the partial files.

    The default-size VAE (a 3.8 MB checkpoint with its Adam moments, written and fsynced every step)
    keeps each write open long enough for the kill to land inside it."""
    run = tmp_path / "run"
    overrides = ["data.batch_size=8", "data.download=false", "train.max_steps=300", "train.checkpoint_every=1",
                 "train.eval_every=1000", "train.sample_every=1000", "train.max_minutes=0", "train.device=cpu"]
    sets = [arg for s in overrides for arg in ("--set", s)]
    first = [sys.executable, "-m", "genzoo", "train", str(CONFIGS / "vae_mnist.toml"), "--out", str(run), *sets]
    resume = [sys.executable, "-m", "genzoo", "train", "--resume", str(run)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps, seen, mid_write = [], set(), 0
    for attempt in range(5):
        process = subprocess.Popen(first if attempt == 0 else resume, env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        partial = wait_for_a_checkpoint_write(run, process, seen)
        process.send_signal(signal.SIGKILL)
        process.wait()
        mid_write += any(p.exists() for p in partial)  # still there after the kill: the write never finished
        seen |= {p.name for p in run.glob(".last.pt.*.tmp")} | {p.name for p in partial}
        steps.append(load_checkpoint(run / "last.pt")["step"])  # raises if the kill broke the file
    assert mid_write >= 3, f"only {mid_write} of 5 kills landed inside a checkpoint write"
    assert all(a < b for a, b in zip(steps, steps[1:]))  # each resume went on from the one before
    end = steps[-1] + 3  # a short last leg: resume, three steps, the end-of-run checkpoint
    done = subprocess.run(resume + ["--set", f"train.max_steps={end}"], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert load_checkpoint(run / "last.pt")["step"] == end
    assert not list(run.glob(".*.tmp"))  # the partial writes were cleared on resume


def wait_for_a_checkpoint_write(run: Path, process: subprocess.Popen, seen: set[str]) -> list[Path]:
    """Poll until ``process`` has begun at least two checkpoint writes (so one may have finished) and
    is inside one; the temporary files of that write."""
    deadline, started = time.monotonic() + 120, set()
    while time.monotonic() < deadline:
        assert process.poll() is None, "the training process ended before it could be killed"
        partial = [p for p in run.glob(".last.pt.*.tmp") if p.name not in seen]
        started |= {p.name for p in partial}
        if partial and len(started) >= 2:
            return partial
        time.sleep(0.0002)
    raise AssertionError("no checkpoint write seen in 120 s")


# ---------------------------------------------------------------------------------------------- what the trainer is told


def test_best_checkpoint_follows_each_familys_score(tmp_path):
    vae = tiny_vae(tmp_path / "vae", "train.max_steps=4", "train.eval_every=2")
    vae.fit()
    vals = [json.loads(line)["loss"] for line in (tmp_path / "vae" / "metrics.jsonl").read_text().splitlines()
            if json.loads(line)["split"] == "val"]
    assert vae.best_val == min(vals) and load_checkpoint(tmp_path / "vae" / "best.pt")["best_val"] == min(vals)
    gan = trainer_for(CONFIGS / "gan_mnist.toml", tmp_path / "gan", [
        "model.latent_dim=8", "model.channels=[8, 4]", "model.label_dim=4", "data.batch_size=8", "data.download=false",
        "train.max_steps=4", "train.eval_every=2", "train.eval_batches=1", "train.n_samples=2", "train.max_minutes=0",
    ])
    gan.fit()
    assert not (tmp_path / "gan" / "best.pt").exists() and gan.best_val == math.inf  # D's loss ranks nothing
    ring = trainer_for(CONFIGS / "gan_ring.toml", tmp_path / "ring", [
        "model.hidden=16", "train.max_steps=4", "train.eval_every=2", "train.eval_batches=1", "train.n_samples=8",
    ])
    ring.fit()
    scored = [json.loads(line) for line in (tmp_path / "ring" / "metrics.jsonl").read_text().splitlines()
              if json.loads(line)["split"] == "val"]
    assert ring.best_val == min(-(m["modes"] + m["high_quality"]) for m in scored)
    assert (tmp_path / "ring" / "best.pt").exists()


def test_ema_averages_parameters_and_copies_buffers(tmp_path):
    gan = trainer_for(CONFIGS / "gan_mnist.toml", tmp_path, [  # batch norm in G, spectral norm's u in D
        "model.latent_dim=8", "model.channels=[8, 4]", "model.label_dim=4", "data.batch_size=8", "data.download=false",
        "train.max_steps=5", "train.eval_every=100", "train.sample_every=100", "train.ema_decay=0.9",
        "train.max_minutes=0", "train.n_samples=2",
    ])
    gan.fit(stop_at=5)
    live, averaged = dict(gan.model.named_buffers()), dict(gan.ema.module.named_buffers())
    assert any(k.endswith("running_mean") for k in live) and any(k.endswith(".u") for k in live)
    assert all(torch.equal(averaged[k], v) for k, v in live.items())
    live_params, averaged_params = dict(gan.model.named_parameters()), dict(gan.ema.module.named_parameters())
    moved = [k for k, v in live_params.items() if not torch.equal(averaged_params[k], v)]
    assert len(moved) >= len(live_params) // 2  # the parameters are an average, lagging the live ones


# ---------------------------------------------------------------------------------------------- schedules


def test_schedule_follows_the_budget_when_it_ends_first():
    cfg = TrainConfig(lr=1.0, warmup_steps=10, max_steps=1010, min_lr_ratio=0.1)
    spent = {"share": 0.0}
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = warmup_cosine(opt, cfg, lambda: spent["share"])
    for step in range(1, 110):  # 100 steps after warmup: 10% of the steps
        spent["share"] = step / 200  # ... but 55% of the time budget
        opt.step()
        sched.step()
    expected = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 109 / 200))
    assert sched.get_last_lr()[0] == pytest.approx(expected)
    spent["share"] = 0.0  # the steps are further along than the budget: they rule
    opt.step()
    sched.step()
    assert sched.get_last_lr()[0] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 100 / 1000)))


@pytest.mark.parametrize("follows", ["budget", "steps"])
def test_a_time_capped_run_ends_its_schedule(tmp_path, follows):
    trainer = tiny_vae(tmp_path, "train.max_steps=100000", "train.max_minutes=0.02", "train.lr=0.01",
                       "train.min_lr_ratio=0.1", f"train.schedule_follows={follows}")
    run = trainer.fit()
    assert 10 < run.step < 100000  # the 1.2 s budget ended the run
    last_lr = train_records(tmp_path)[-1]["lr"]
    if follows == "budget":  # at the floor 0.001, but for the last step's share of the budget (a few %)
        assert 0.001 <= last_lr < 0.00105
    else:
        assert last_lr > 0.0099  # a step-based schedule has barely begun its decay


def test_schedule_follows_must_be_budget_or_steps(tmp_path):
    with pytest.raises(ConfigError, match="schedule_follows"):
        tiny_vae(tmp_path, "train.schedule_follows=time")


# ---------------------------------------------------------------------------------------------- data parallelism


def test_each_rank_takes_its_own_contiguous_slice_of_the_global_batch():
    x, y = torch.arange(12).view(6, 2), torch.arange(6)
    slices = [shard((x, y), World(rank, 3)) for rank in range(3)]
    assert torch.equal(torch.cat([s[0] for s in slices]), x) and torch.equal(torch.cat([s[1] for s in slices]), y)
    assert [s[1].tolist() for s in slices] == [[0, 1], [2, 3], [4, 5]]
    assert shard((x, y), World()) == (x, y)


def test_ranks_draw_different_noise_and_rank_0_that_of_one_process(tmp_path):
    base = tiny_vae(tmp_path / "base", "train.max_steps=2")
    draws = []
    for world in (World(), World(0, 2), World(1, 2)):
        torch.manual_seed(0)  # where the model's construction leaves torch's generator
        Trainer(base.model, base.data, base.cfg, tmp_path / f"{world.rank}-{world.size}", world=world)
        draws.append(torch.randn(4))  # the first noise the rank's training step would draw
    assert torch.equal(draws[0], draws[1]) and not torch.equal(draws[1], draws[2])


def test_global_batch_must_divide_over_the_processes(tmp_path):
    trainer = tiny_vae(tmp_path, "data.batch_size=9")
    with pytest.raises(ConfigError, match="batch_size 9 .* 2 processes"):
        Trainer(trainer.model, trainer.data, trainer.cfg, tmp_path / "two", world=World(0, 2))
