"""What the benchmarks do the same way: their arguments, training a config or loading a trained run,
the record's header, writing the record, timing sampling and scoring samples (the machine and peak
memory come from ``genzoo.runtime``).

The benchmarks import it by name (``from harness import ...``): ``python bench/<name>.py`` puts
``bench/`` first on the import path. Each one's ``main`` reads::

    args = bench_arguments(NAME, __doc__) + its own flags, parsed
    model, data, info = trained_or_loaded(args)
    record, out = new_record(NAME, info), results_path(args)
    ... its measurements, into record ...
    write_record(record, out, headline)
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

from genzoo.checkpoint import load_model
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8, to_uint8
from genzoo.recipe import make_trainer, train_arguments
from genzoo.runtime import cpu_name, peak_rss_mb
from genzoo.sources import load_data

ROOT = Path(__file__).resolve().parents[1]


def bench_arguments(name: str, doc: str) -> argparse.ArgumentParser:
    """``genzoo train``'s arguments for ``configs/<name>.toml`` (run folder ``runs/bench-<name>-<time>``),
    with ``--from-run`` and ``--json`` (default ``bench/results/<name>.json``); ``doc``'s first line describes it."""
    parser = train_arguments(str(ROOT / "configs" / f"{name}.toml"))
    parser.description = doc.splitlines()[0]
    parser.set_defaults(out=f"runs/bench-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    parser.add_argument("--from-run", help="measure this trained run instead of training one")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / f"{name}.json"))
    return parser


def trained_or_loaded(args: argparse.Namespace) -> tuple[GenerativeModel, Any, dict]:
    """The model to measure (its EMA weights where the run kept them), its data, and what to record of
    the run: the run in ``--from-run``, else one trained now from the ``genzoo train`` arguments."""
    if args.from_run:
        model, cfg, _ = load_model(args.from_run)
        data = load_data(cfg.data, args.data_root)
        return model, data, {"run_dir": args.from_run, "data": data.source, "sample_options": dict(cfg.sample)}
    trainer = make_trainer(args)
    started = time.perf_counter()
    run = trainer.fit()
    info = {"steps": run.step, "train_seconds": trainer.elapsed, "train_wall_seconds": time.perf_counter() - started,
            "run_dir": str(run.run_dir), "data": trainer.data.source, "sample_options": dict(trainer.cfg.sample),
            "parameters": sum(p.numel() for p in run.sampling_model.parameters())}
    return run.sampling_model.eval(), trainer.data, info


def results_path(args: argparse.Namespace) -> Path:
    """The ``--json`` path, its folder created: the sample grids go beside it."""
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def new_record(name: str, info: dict) -> dict:
    """The record's header: the benchmark, when, on what machine and torch, the command, then ``info``."""
    return {"benchmark": name, "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": f"{cpu_name()}, {torch.get_num_threads()} threads", "torch": torch.__version__,
            "command": " ".join([Path(sys.executable).name] + sys.argv), **info}


def write_record(record: dict, path: Path, headline: str) -> None:
    """Add the peak resident memory of the whole benchmark, write the record to ``path`` as JSON, and
    print one line: the benchmark, its ``headline`` numbers, the training it measured, memory, the file."""
    record["peak_rss_mb"] = peak_rss_mb()
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{record['benchmark']}: {headline} | {record.get('steps', '?')} steps in "
          f"{record.get('train_seconds', 0):.0f} s | peak RSS {record['peak_rss_mb']:.0f} MB | {path}")


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
