"""What the image benchmarks do the same way: train a config, time sampling, score samples
(the machine and peak memory come from ``genzoo.runtime``).

The benchmarks import it by name (``from harness import ...``): ``python bench/<name>.py`` puts
``bench/`` first on the import path.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from genzoo.cli import make_trainer
from genzoo.pixels import from_uint8, to_uint8


def train(args: Any) -> tuple[Any, dict, Any]:
    """Train the config of ``args`` (the ``genzoo train`` arguments); the run, what to record, the data."""
    trainer = make_trainer(args)
    started = time.perf_counter()
    run = trainer.fit()
    info = {"steps": run.step, "train_seconds": trainer.elapsed, "train_wall_seconds": time.perf_counter() - started,
            "run_dir": str(run.run_dir), "data": trainer.data.source, "sample_options": dict(trainer.cfg.sample),
            "parameters": sum(p.numel() for p in run.sampling_model.parameters())}
    return run, info, trainer.data


def seconds_per_image(model: Any, n: int, repeats: int = 1, **options: Any) -> float:
    """Seconds per image of ``model.sample(n, **options)``: the best of ``repeats`` timed batches
    (more than one where a batch is so short that timing noise matters)."""
    generator = torch.Generator(model.device).manual_seed(0)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.sample(n, generator=generator, **options)
        times.append((time.perf_counter() - started) / n)
    return min(times)


def sample_quality(model: Any, n: int, data: Any, evaluator: Any, grid: Path, batch_size: int = 100,
                   **options: Any) -> dict:
    """genzoo.metrics' of n samples (quantised to 8 bits) against every test image; the first
    100 samples are drawn to ``grid``."""
    from genzoo.metrics import image_metrics

    generator = torch.Generator(model.device).manual_seed(1)
    started = time.perf_counter()
    samples = torch.cat([from_uint8(to_uint8(model.sample(batch_size, generator=generator, **options).cpu()))
                         for _ in range(n // batch_size)])
    seconds = time.perf_counter() - started
    data.spec.save_samples(samples[:100], grid)
    return {"options": options, "sampling_seconds": seconds, **image_metrics(samples, data.test_x, evaluator)}
