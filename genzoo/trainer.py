"""One training loop for every family.

The trainer knows no family: it calls ``model.training_step`` for updates, ``model.evaluate`` for
validation and ``model.sample`` for sample grids, and leaves everything family-specific to them.
What it owns is what every family shares: optimizers' learning-rate schedules (linear warmup then
cosine decay), EMA weights, step and wall-clock budgets, ``metrics.jsonl``, sample grids, the loss
plot, checkpoints that resume exactly (model, optimizers, schedulers, EMA, data order, RNG, step),
the guard that skips non-finite updates and stops a diverging run, and data-parallel training over
processes under ``torchrun`` (``genzoo/distributed.py``).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch.optim.lr_scheduler import LambdaLR
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

with warnings.catch_warnings():  # in Jupyter without ipywidgets, tqdm.auto falls back to a text bar: fine
    warnings.filterwarnings("ignore", message="IProgress not found")
    from tqdm.auto import tqdm

from genzoo import distributed
from genzoo.checkpoint import load_checkpoint, remove_partial_writes, save_checkpoint
from genzoo.config import Config, TrainConfig, config_to_dict, to_toml
from genzoo.distributed import World
from genzoo.errors import ConfigError, TrainingDiverged
from genzoo.metrics import mean_metrics
from genzoo.model import GenerativeModel, OptimConfig
from genzoo.plots import plot_metrics
from genzoo.runtime import peak_memory_mb, pick_device


@dataclass
class Run:
    """What ``Trainer.fit`` leaves behind."""

    run_dir: Path
    model: GenerativeModel  # the trained weights
    sampling_model: GenerativeModel  # the EMA weights when EMA is on, else ``model``
    step: int
    best_val: float  # the best checkpoint's score (``GenerativeModel.checkpoint_score``); inf if none was kept
    interrupted: bool
    main_process: bool = True  # False on the ranks of a torchrun run that write nothing (rank > 0)


class Trainer:
    """Trains any ``GenerativeModel`` on any ``Data``.

    The call chain of one run::

        fit()
          _train_until(stop_at)                  every step:
            _train_step()                        next(stream) -> model.training_step(batch, optimizers, step, clip)
                                                 then the schedulers' step and the EMA update
            _validate_and_log()                  every eval_every steps: validation_metrics() -> model.evaluate(batch),
                                                 and data.score_samples(model.sample(...)) where the data scores samples
            save_samples()                       every sample_every steps: model.sample -> data.spec.save_samples
            save_last()                          every checkpoint_every steps: state_dict() -> last.pt, unless the
                                                 latest updates were skipped as non-finite
          _finish()                              a last validation, samples and last.pt

    What it expects of ``data``: ``spec`` (``save_samples``, ``to_dict``), ``train_stream(batch_size,
    seed)`` (an iterator of ``(x, y)`` batches with ``state_dict``/``load_state_dict``),
    ``val_batches(batch_size, n_batches)``, ``samples_to_score`` / ``score_samples(x)``, and
    ``sample_quality(metrics)`` (the data's ranking of samples, for ``best.pt``).
    Of the model: ``configure_optimizers``, ``training_step``, ``evaluate`` and ``sample``
    (``genzoo.model.GenerativeModel``).
    """

    def __init__(
        self, model: GenerativeModel, data: Any, cfg: Config, run_dir: str | Path, world: World | None = None
    ):
        """``world``: which data-parallel process this is; by default read from torchrun's environment
        (one process outside torchrun)."""
        self.cfg, self.tcfg, self.data = cfg, cfg.train, data
        self.run_dir = Path(run_dir)
        self.device = distributed.local_device(pick_device(self.tcfg.device))
        self.world = world or World.from_environment(self.device)
        if cfg.data.batch_size % self.world.size:
            raise ConfigError(
                f"data.batch_size {cfg.data.batch_size} is the global batch and must divide evenly over "
                f"{self.world.size} processes (each trains on batch_size / {self.world.size})"
            )
        self.model = model.to(self.device)
        distributed.broadcast_state(self.model)  # every process starts from rank 0's weights
        if self.tcfg.compile:
            compile_networks(self.model)
        self.step, self.elapsed, self.best_val = 0, 0.0, math.inf
        self.skipped_updates, self.nonfinite_in_a_row, self.last_saved_step = 0, 0, -1
        optim_cfg = OptimConfig(lr=self.tcfg.lr, weight_decay=self.tcfg.weight_decay, betas=self.tcfg.betas)
        self.optimizers = model.configure_optimizers(optim_cfg)
        if self.tcfg.schedule_follows not in ("budget", "steps"):
            raise ConfigError(f"train.schedule_follows must be 'budget' or 'steps', got {self.tcfg.schedule_follows!r}")
        budget = self.budget_progress if self.tcfg.max_minutes > 0 and self.tcfg.schedule_follows == "budget" else None
        self.schedulers = {name: warmup_cosine(opt, self.tcfg, budget) for name, opt in self.optimizers.items()}
        self.ema = None
        if self.tcfg.ema_decay > 0:
            avg_fn = get_ema_multi_avg_fn(self.tcfg.ema_decay)
            # parameters are averaged; buffers (batch-norm statistics, the EBM's replay buffer) are copied
            # from the trained model after each update, as StyleGAN's generator average does
            self.ema = AveragedModel(model, multi_avg_fn=avg_fn, use_buffers=False)
        self.stream = data.train_stream(cfg.data.batch_size, self.tcfg.seed)
        self._seed_this_rank()

    def _seed_this_rank(self) -> None:
        """Ranks above 0 draw their own noise (z, SGLD, dropout), seeded by seed, rank and step; rank 0
        keeps the stream of a one-process run."""
        if self.world.rank > 0:
            torch.manual_seed(self.tcfg.seed + 1_000_003 * self.world.rank + 7_919 * self.step)

    def budget_progress(self) -> float:
        """The share of the ``max_minutes`` budget spent (what the learning-rate schedule follows with a budget)."""
        return self.elapsed / (60 * self.tcfg.max_minutes)

    @property
    def sampling_model(self) -> GenerativeModel:
        """The weights that validation and samples use: the EMA when kept, else the trained ones."""
        return self.ema.module if self.ema is not None else self.model

    # ----------------------------------------------------------------------------- the loop
    def fit(self, stop_at: int | None = None) -> Run:
        """Train until ``max_steps`` (or ``stop_at``), the ``max_minutes`` budget, or Ctrl-C.

        Ctrl-C saves ``last.pt`` and returns cleanly; ``resume`` continues from it exactly.
        """
        if self.world.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_partial_writes(self.run_dir)  # left by a process killed while writing a checkpoint
            (self.run_dir / "config.toml").write_text(to_toml(config_to_dict(self.cfg)))
        stop_at = min(stop_at or self.tcfg.max_steps, self.tcfg.max_steps)
        interrupted = False
        bar = tqdm(total=stop_at, initial=self.step, desc=self.cfg.family, dynamic_ncols=True, mininterval=1.0,
                   disable=not self.world.is_main)
        try:
            self._train_until(stop_at, bar)
        except KeyboardInterrupt:
            interrupted = True
            if self.world.is_main:
                bar.write(f"interrupted at step {self.step}; {self.save_last()} (resume with --resume {self.run_dir})")
        finally:
            bar.close()
        if not interrupted:
            self._finish()
        return Run(self.run_dir, self.model, self.sampling_model, self.step, self.best_val, interrupted,
                   self.world.is_main)

    def _train_until(self, stop_at: int, bar: tqdm) -> None:
        window: list[dict[str, float]] = []  # the train metrics since the last log line
        while self.step < stop_at and not self._out_of_time():
            started = time.perf_counter()
            window.append(self._train_step())
            self.elapsed = self._slowest(self.elapsed + time.perf_counter() - started)
            self.step += 1
            bar.update(1)
            self._count_skipped_update(window[-1])
            if self.step % self.tcfg.log_every == 0 or self.step == stop_at:
                self._log("train", self._window_metrics(window))
                bar.set_postfix(loss=f"{window[-1]['loss']:.4f}")
                window = []
            if not self.world.is_main:
                continue  # validation, samples and checkpoints are rank 0's
            if self.step % self.tcfg.eval_every == 0:
                bar.write(self._validate_and_log())
            if self.step % self.tcfg.sample_every == 0:
                self.save_samples()
            if self.step % self.tcfg.checkpoint_every == 0:
                self.save_last()

    def _train_step(self) -> dict[str, float]:
        # every process draws the same global batch and trains on its own slice of it
        x, y = distributed.shard(next(self.stream), self.world)
        batch = (x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
        self.model.train()
        with self._autocast():
            metrics = self.model.training_step(batch, self.optimizers, self.step, self.tcfg.grad_clip)
        for sched in self.schedulers.values():
            sched.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)
            with torch.no_grad():
                for averaged, live in zip(self.ema.module.buffers(), self.model.buffers()):
                    averaged.copy_(live)
        return metrics

    def _count_skipped_update(self, metrics: dict[str, float]) -> None:
        """``optimize`` skips an update whose loss or gradient is not finite and reports its gradient norm
        as nan; after ``max_nonfinite_steps`` such steps in a row, stop with the last good checkpoint kept."""
        skipped = [k for k, v in metrics.items() if k.endswith("grad_norm") and not math.isfinite(v)]
        if not skipped:
            self.nonfinite_in_a_row = 0
            return
        self.skipped_updates += 1
        self.nonfinite_in_a_row += 1
        if self.nonfinite_in_a_row < self.tcfg.max_nonfinite_steps:
            return
        quantity = "the loss" if not math.isfinite(metrics["loss"]) else f"the gradient ({skipped[0]})"
        kept = "none was written yet"
        if self.last_saved_step >= 0:
            kept = f"{self.run_dir / 'last.pt'} (step {self.last_saved_step})"
        raise TrainingDiverged(
            f"training stopped at step {self.step}: {quantity} was not finite for {self.nonfinite_in_a_row} "
            f"steps in a row (those updates were skipped); last good checkpoint: {kept}; try a lower train.lr, "
            "a train.grad_clip above 0 or longer train.warmup_steps, then --resume the run"
        )

    def _window_metrics(self, window: list[dict[str, float]]) -> dict[str, float]:
        """The mean of the steps since the last log line over every process, and the updates skipped so far."""
        finite = [m for m in window if all(math.isfinite(v) for v in m.values())] or window
        metrics = mean_metrics(finite)
        if self.world.size > 1:
            names = sorted(metrics)
            values = torch.tensor([metrics[k] for k in names], dtype=torch.float64, device=self.device)
            distributed.all_reduce_(values)
            metrics = {k: float(v) / self.world.size for k, v in zip(names, values)}
        return {**metrics, "skipped_updates": self.skipped_updates}

    def _slowest(self, elapsed: float) -> float:
        """The training time of the slowest process, so that every process stops at the same step."""
        if self.world.size == 1:
            return elapsed
        return float(distributed.all_reduce_(torch.tensor([elapsed], dtype=torch.float64, device=self.device), "max"))

    def _finish(self) -> None:
        """End of training: a last validation, samples and checkpoint (rank 0)."""
        if not self.world.is_main:
            return
        tqdm.write(self._validate_and_log())
        self.save_samples()
        if self.nonfinite_in_a_row:
            tqdm.write(self.save_last())
        else:
            self.save_last()

    def _out_of_time(self) -> bool:
        return self.tcfg.max_minutes > 0 and self.elapsed >= 60 * self.tcfg.max_minutes

    def _autocast(self) -> contextlib.AbstractContextManager:
        # bf16 autocast only on CUDA: on CPUs without AMX it is far slower than fp32.
        if self.device.type == "cuda" and self.tcfg.autocast:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ----------------------------------------------------------------------------- evaluation and output
    def validation_metrics(self) -> dict[str, float]:
        """Mean validation metrics of the sampling weights over ``eval_batches`` fixed batches, and the
        data's sample scores (the ring's modes) where it has them."""
        model = self.sampling_model
        model.eval()
        with self._fork_rng(), self._autocast():
            batches = self.data.val_batches(self.cfg.data.batch_size, self.tcfg.eval_batches)
            metrics = mean_metrics(
                [model.evaluate((x.to(self.device), y.to(self.device))) for x, y in batches]
            )
            if self.data.samples_to_score:
                generator = torch.Generator(self.device).manual_seed(self.tcfg.seed)
                samples = model.sample(self.data.samples_to_score, generator=generator, **self.cfg.sample)
                metrics.update(self.data.score_samples(samples))
        return metrics

    def _validate_and_log(self) -> str:
        """Validate, append to ``metrics.jsonl``, keep ``best.pt``, redraw ``loss.png``; the line to show."""
        metrics = self.validation_metrics()
        self._log("val", metrics)
        # each family says what makes a checkpoint best, from the metrics and the data's ranking of samples
        score = self.sampling_model.checkpoint_score(metrics, self.data.sample_quality(metrics))
        if score is not None and score < self.best_val:
            self.best_val = score
            self.save("best.pt")
        plot_metrics(self.run_dir / "metrics.jsonl", self.run_dir / "loss.png")
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        return f"step {self.step}: val {shown}"

    def save_samples(self) -> Path:
        """A sample grid (images) or text file (tokens) from a fixed seed, so grids compare over time."""
        model = self.sampling_model
        model.eval()
        (self.run_dir / "samples").mkdir(exist_ok=True)
        generator = torch.Generator(self.device).manual_seed(self.tcfg.seed)
        with self._fork_rng(), self._autocast():
            x = model.sample(self.tcfg.n_samples, generator=generator, **self.cfg.sample)
        return self.data.spec.save_samples(x, self.run_dir / "samples" / f"step_{self.step:06d}")

    def _log(self, split: str, metrics: dict[str, float]) -> None:
        if not self.world.is_main:
            return
        record = {"step": self.step, "split": split, "time_s": round(self.elapsed, 3), **metrics}
        record["peak_memory_mb"] = round(peak_memory_mb(self.device), 1)
        if split == "train":
            record["lr"] = next(iter(self.schedulers.values())).get_last_lr()[0]
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")

    def _fork_rng(self) -> contextlib.AbstractContextManager:
        """Evaluation and sampling must not move the training RNG, or resuming would not be exact."""
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        return torch.random.fork_rng(devices=devices)

    # ----------------------------------------------------------------------------- checkpoint state
    def state_dict(self) -> dict[str, Any]:
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "best_val": self.best_val,
            "skipped_updates": self.skipped_updates,
            "config": config_to_dict(self.cfg),
            "spec": self.data.spec.to_dict(),
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {k: opt.state_dict() for k, opt in self.optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self.schedulers.items()},
            "stream": self.stream.state_dict(),
            "rng": rng,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in self.schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        self.stream.load_state_dict(state["stream"])
        torch.set_rng_state(state["rng"]["torch"])
        if "cuda" in state["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.step, self.elapsed, self.best_val = state["step"], state["elapsed"], state["best_val"]
        self.skipped_updates, self.last_saved_step = state.get("skipped_updates", 0), state["step"]
        self._seed_this_rank()

    def resume(self, path: str | Path) -> None:
        """Continue from a checkpoint file, or from ``last.pt`` in a run folder."""
        path = Path(path)
        self.load_state_dict(load_checkpoint(path / "last.pt" if path.is_dir() else path))

    def save_last(self) -> str:
        """Write ``last.pt``, unless the latest steps' updates were skipped as non-finite: their state may
        carry the damage (the EBM writes its chains to the replay buffer before the update it skips), so
        the checkpoint from before them is kept. The line to show."""
        if self.nonfinite_in_a_row:
            return (f"kept last.pt of step {self.last_saved_step}: the last {self.nonfinite_in_a_row} steps' "
                    "updates were skipped as non-finite")
        return f"saved {self.save()}"

    def save(self, name: str = "last.pt") -> Path:
        path = self.run_dir / name
        save_checkpoint(self.state_dict(), path)
        if name == "last.pt":
            self.last_saved_step = self.step
        return path


def warmup_cosine(
    optimizer: torch.optim.Optimizer, cfg: TrainConfig, budget_progress: Callable[[], float] | None = None
) -> LambdaLR:
    """Learning rate factor: linear warmup over ``warmup_steps``, then cosine decay to ``min_lr_ratio``.

    The decay's progress is the share of ``max_steps`` done after warmup, or, given ``budget_progress``
    (the share of a time budget spent, 0..1), whichever of the two is further along: a run capped by
    ``max_minutes`` on a slow machine still ends its schedule at the floor. That progress depends on
    the machine's speed, so such runs are neither bitwise reproducible across machines nor resumed
    bitwise; without ``budget_progress`` (no time cap, or ``schedule_follows = "steps"``) they are.
    """
    warmup, total, floor = cfg.warmup_steps, cfg.max_steps, cfg.min_lr_ratio

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        if budget_progress is not None:
            progress = max(progress, min(1.0, budget_progress()))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def compile_networks(model: torch.nn.Module) -> None:
    """``torch.compile`` in place (``Module.compile`` keeps state_dict keys): the model if it has a
    ``forward``, else each network it wraps (``VAE(encoder, decoder)`` compiles both)."""
    if type(model).forward is not torch.nn.Module.forward:
        model.compile()
        return
    for child in model.children():
        child.compile()
