"""The ``genzoo`` command: train, sample, list, data.

    genzoo train CONFIG [--set section.key=value ...] [--out DIR] [--data-root DIR]
    genzoo train --resume RUN [--set ...]
    genzoo sample RUN [-n N] [--out PATH] [--seed S] [--best] [--no-ema] [--OPTION VALUE ...]
    genzoo list
    genzoo data [--data-root DIR]

Family sampling options are passed through by name (``--prompt "ROMEO:"``, ``--temperature 0.8``)
and checked against the family's ``sample`` signature.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Sequence

import torch

from genzoo.checkpoint import build_model, load_model
from genzoo.config import check_options, load_config, parse_override
from genzoo.errors import ConfigError, GenzooError
from genzoo.trainer import Trainer, pick_device

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def train_arguments(default_config: str | None = None) -> argparse.ArgumentParser:
    """The arguments of ``genzoo train``, shared with the recipes in ``train/``."""
    parser = argparse.ArgumentParser(prog="genzoo train", description="Train a model from a TOML config.")
    parser.add_argument("config", nargs="?", default=default_config, help="a TOML file in configs/")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.lr=3e-4 (repeatable)")
    parser.add_argument("--out", help="run folder (default: runs/<config>-<time>)")
    parser.add_argument("--resume", metavar="RUN", help="continue the run in this folder from its last.pt")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    return parser


def make_trainer(args: argparse.Namespace) -> Trainer:
    """Config -> data -> model -> Trainer, resuming from ``args.resume`` when given."""
    from genzoo.data import load_data

    if args.resume:
        run_dir = Path(args.resume)
        cfg = load_config(run_dir / "config.toml", args.overrides)
    elif args.config:
        cfg = load_config(args.config, args.overrides)
        run_dir = Path(args.out or f"runs/{Path(args.config).stem}-{time.strftime('%Y%m%d-%H%M%S')}")
    else:
        raise ConfigError("give a config file (see `genzoo list`) or --resume RUN")
    data = load_data(cfg.data, args.data_root)
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(build_model(cfg, data.spec), data, cfg, run_dir)
    if args.resume:
        trainer.resume(run_dir)
    print(f"genzoo: {cfg.family} on {data.source}; run folder {run_dir}", file=sys.stderr)
    return trainer


def show_samples(path: Path) -> None:
    """Print where samples went; text samples are printed too."""
    print(f"samples: {path}")
    if path.suffix == ".txt":
        print(path.read_text().split("\n\n=====\n\n")[0])


def cmd_train(argv: Sequence[str]) -> int:
    trainer = make_trainer(train_arguments().parse_args(argv))
    run = trainer.fit()
    if run.interrupted:
        return 0
    samples = sorted((run.run_dir / "samples").glob("step_*"))
    if samples:
        show_samples(samples[-1])
    print(f"run: {run.run_dir} (step {run.step}, best val loss {run.best_val:.4f})")
    return 0


def parse_sample_options(extra: Sequence[str]) -> dict:
    """``["--prompt", "ROMEO:", "--top-k=5"]`` -> {"prompt": "ROMEO:", "top_k": 5} (values read as TOML)."""
    options, items = {}, list(extra)
    while items:
        flag = items.pop(0)
        if not flag.startswith("--"):
            raise ConfigError(f"unexpected argument {flag!r}; sampling options look like --name value")
        name, _, value = flag[2:].partition("=")
        if not value:
            if not items:
                raise ConfigError(f"option {flag} needs a value")
            value = items.pop(0)
        _, options[name.replace("-", "_")] = parse_override(f"v={value}")
    return options


def cmd_sample(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="genzoo sample", description="Sample from a trained run.")
    parser.add_argument("run", help="a run folder or a checkpoint file")
    parser.add_argument("-n", type=int, default=16, help="number of samples")
    parser.add_argument("--out", help="output file (default: RUN/sample.png or RUN/sample.txt)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--best", action="store_true", help="use best.pt instead of last.pt")
    parser.add_argument("--no-ema", action="store_true", help="use the raw weights even if EMA was kept")
    args, extra = parser.parse_known_args(argv)
    model, cfg, spec = load_model(args.run, "best" if args.best else "last", use_ema=not args.no_ema)
    options = {**cfg.sample, **parse_sample_options(extra)}
    check_options(model.sample, options, "sampling option --")
    device = pick_device(cfg.train.device)
    model.to(device)
    generator = torch.Generator(device).manual_seed(args.seed)
    x = model.sample(args.n, generator=generator, **options)
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    show_samples(spec.save_samples(x, Path(args.out) if args.out else run_dir / "sample"))
    return 0


def cmd_list(argv: Sequence[str]) -> int:
    from genzoo.models import FAMILIES

    print("families:")
    for name, cls in FAMILIES.items():
        print(f"  {name:6s} {cls.__name__:15s} likelihood={cls.likelihood}")
    configs = sorted(REPO_CONFIGS.glob("*.toml")) + sorted(Path("configs").glob("*.toml"))
    print("configs:")
    for path in dict.fromkeys(p.resolve() for p in configs):
        print(f"  {path}")
    return 0


def cmd_data(argv: Sequence[str]) -> int:
    from genzoo.data import describe_datasets

    parser = argparse.ArgumentParser(prog="genzoo data", description="Where each dataset is, and its state.")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_args(argv)
    for row in describe_datasets(args.data_root):
        print(f"{row['name']:16s} {row['status']:37s} {row['path']}")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample, "list": cmd_list, "data": cmd_data}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        return COMMANDS[argv[0]](argv[1:])
    except GenzooError as err:
        print(f"genzoo: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
