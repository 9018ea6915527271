"""What every recipe in ``train/`` does around its four steps: read its arguments, resolve the config
and the run folder, and start (or resume) the run.

A recipe shows the four steps itself::

    cfg, run_dir = config_and_run_dir(args)                   # 1. config
    data = load_data(cfg.data, args.data_root)                 # 2. data
    model = build_model(cfg, data.spec, seed=cfg.train.seed)   # 3. model
    trainer = Trainer(model, data, cfg, run_dir)               # 4. trainer
    start_or_resume(trainer, args.resume)
    run = trainer.fit()

``make_trainer`` is the same steps for ``genzoo train``, ``genzoo compare --train`` and the benchmarks.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genzoo.checkpoint import build_model
from genzoo.config import Config, load_config
from genzoo.errors import ConfigError
from genzoo.sources import load_data
from genzoo.trainer import Trainer


def train_arguments(default_config: str | None = None) -> argparse.ArgumentParser:
    """The arguments of ``genzoo train``, shared with the recipes in ``train/`` and the benchmarks."""
    parser = argparse.ArgumentParser(prog="genzoo train", description="Train a model from a TOML config.")
    parser.add_argument("config", nargs="?", default=default_config, help="a TOML file in configs/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    parser.add_argument("--out", help="run folder (default: runs/<config>-<time>)")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    return parser


def config_and_run_dir(args: argparse.Namespace) -> tuple[Config, Path]:
    """The resolved config and the run folder of ``train_arguments``' answers.

    Resuming, the run's own ``config.toml``; else the config file, into ``--out`` or
    ``runs/<config stem>-<time>``. ``--set`` overrides apply on top of either.
    """
    if args.resume:
        run_dir = Path(args.resume)
        return load_config(run_dir / "config.toml", args.overrides), run_dir
    if not args.config:
        raise ConfigError("give a config file (see `genzoo list`) or --resume RUN")
    cfg = load_config(args.config, args.overrides)
    return cfg, Path(args.out or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")


def start_or_resume(trainer: Trainer, resume: str | None) -> None:
    """Continue ``trainer`` from the run folder ``resume`` (its ``last.pt``) when given, else leave it at
    step 0; either way, say on stderr what trains on which data, into which run folder."""
    if resume:
        trainer.resume(resume)
    if not trainer.world.is_main:
        return
    workers = f" ({trainer.world.size} processes)" if trainer.world.size > 1 else ""
    where = f"run folder {trainer.run_dir}{workers}"
    print(f"genzoo: {trainer.cfg.family} on {trainer.data.source}; {where}", file=sys.stderr)


def make_trainer(args: argparse.Namespace) -> Trainer:
    """Config -> data -> model -> Trainer, continued from ``args.resume`` when given."""
    cfg, run_dir = config_and_run_dir(args)
    data = load_data(cfg.data, args.data_root)
    trainer = Trainer(build_model(cfg, data.spec, seed=cfg.train.seed), data, cfg, run_dir)
    start_or_resume(trainer, args.resume)
    return trainer
