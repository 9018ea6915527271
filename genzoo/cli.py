"""The ``genzoo`` command: train, sample, eval, compare, anomaly, inpaint, synthetic, list, data.

    genzoo train CONFIG [--set section.key=value ...] [--out DIR] [--data-root DIR]
    genzoo train --resume RUN [--set ...]
    genzoo sample RUN [-n N] [--out PATH] [--seed S] [--best] [--no-ema] [--OPTION VALUE ...]
    genzoo eval RUN [-n N] [--best] [--data-root DIR] [--log-prob KEY=VALUE ...] [--OPTION VALUE ...]
    genzoo compare RUN [RUN ...] [--out DIR] [-n N]
    genzoo compare --train --minutes M [--out DIR] [--families vae,lm,...]
    genzoo anomaly RUN --ood DATASET [-n N] [--out PNG] [--data-root DIR] [KEY=VALUE ...]
    genzoo inpaint RUN [--mask bottom|patches] [-n N] [--out PATH] [--seed S] [--best] [KEY=VALUE ...]
    genzoo synthetic RUN [-n N] [--seed S] [--augment-real N] [--classifier-steps N] [--out PATH] [--OPTION VALUE ...]
    genzoo list
    genzoo data [--data-root DIR]

Family sampling options are passed through by name (``--prompt "ROMEO:"``, ``--temperature 0.8``)
and checked against the family's ``sample`` signature; ``inpaint``'s options (``steps=25 resample=10``)
against its ``inpaint`` signature, and ``anomaly``'s (``timesteps=10``) against the family's score.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Sequence

import torch

from genzoo.checkpoint import load_model
from genzoo.config import check_options, parse_override
from genzoo.errors import ConfigError, GenzooError
from genzoo.recipe import make_trainer, train_arguments
from genzoo.runtime import pick_device

REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# The config `genzoo compare --train` trains for each family: the one its recipe in train/ uses.
DEFAULT_CONFIGS = {
    "lm": "lm_shakespeare.toml", "vae": "vae_mnist.toml", "ddpm": "ddpm_mnist.toml",
    "gan": "gan_mnist.toml", "flow": "flow_mnist.toml", "ebm": "ebm_mnist.toml", "pixel": "pixel_mnist.toml",
}


def show_samples(path: Path) -> None:
    """Print where samples went; text samples are printed too."""
    print(f"samples: {path}")
    if path.suffix == ".txt":
        print(path.read_text().split("\n\n=====\n\n")[0])


def cmd_train(argv: Sequence[str]) -> int:
    trainer = make_trainer(train_arguments().parse_args(argv))
    run = trainer.fit()
    if run.interrupted or not run.main_process:
        return 0
    samples = sorted((run.run_dir / "samples").glob("step_*"))
    if samples:
        show_samples(samples[-1])
    best = "no best.pt: nothing ranks this family's samples"
    if math.isfinite(run.best_val):
        best = f"best.pt's score {run.best_val:.4f}"
    print(f"run: {run.run_dir} (step {run.step}, {best})")
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


def parse_key_values(items: Sequence[str], flag: str) -> dict:
    """``["k=100"]`` -> {"k": 100} (values read as TOML)."""
    options = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{flag} {item!r} must look like KEY=VALUE (e.g. {flag} k=100)")
        key, value = parse_override(item)
        options[".".join(key)] = value
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


def cmd_eval(argv: Sequence[str]) -> int:
    from genzoo.report import evaluate_run, headline

    parser = argparse.ArgumentParser(prog="genzoo eval", description="Measure a trained run; writes RUN/eval.json.")
    parser.add_argument("run", help="a run folder written by `genzoo train`")
    parser.add_argument("-n", type=int, default=5_000, help="samples to score (image families)")
    parser.add_argument("--best", action="store_true", help="use best.pt instead of last.pt")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    parser.add_argument("--log-prob", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the family's log_prob, e.g. --log-prob k=100 for the VAE")
    args, extra = parser.parse_known_args(argv)
    report = evaluate_run(
        args.run, args.n, which="best" if args.best else "last", sample_options=parse_sample_options(extra),
        log_prob_options=parse_key_values(args.log_prob, "--log-prob"),
        data_root=args.data_root, seed=args.seed,
    )
    print(headline(report))
    print(f"report: {Path(args.run) / 'eval.json'}")
    return 0


def cmd_anomaly(argv: Sequence[str]) -> int:
    from genzoo.anomaly import anomaly_run
    from genzoo.plots import score_histograms

    parser = argparse.ArgumentParser(prog="genzoo anomaly", description="AUROC of the run's anomaly score, "
                                     "its held-out data against another data set.")
    parser.add_argument("run", help="a run folder written by `genzoo train`")
    parser.add_argument("--ood", required=True, help="the outliers: an image data set (fashion_mnist, mnist, ...), "
                        "or python (the standard library's source) for a text run")
    parser.add_argument("-n", type=int, default=1_000, help="examples of each set to score")
    parser.add_argument("--best", action="store_true", help="use best.pt instead of last.pt")
    parser.add_argument("--out", help="the histogram figure (default: RUN/anomaly_<ood>.png)")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE",
                        help="options of the family's score: timesteps=10 (DDPM), k=10 (VAE)")
    args = parser.parse_intermixed_args(argv)  # options may come before or after the flags
    report = anomaly_run(args.run, args.ood, n=args.n, which="best" if args.best else "last",
                         data_root=args.data_root, **parse_key_values(args.options, "genzoo anomaly RUN"))
    scores = report.pop("scores")
    print(f"{report['family']} trained on {report['dataset']}, outliers {report['ood']}: "
          f"{report['n_in']:,} + {report['n_out']:,} examples")
    print(f"AUROC {report['auroc']:.3f} (the simplest model of the same data: {report['baseline']['auroc']:.3f})")
    panels = {"anomaly score": (scores["in"], scores["out"], report["auroc"])}
    if "corrected_auroc" in report:
        print(f"AUROC, complexity-corrected (Serra et al. 2020): {report['corrected_auroc']:.3f} "
              f"(the simplest model: {report['baseline']['corrected_auroc']:.3f}; PNG size alone: "
              f"{report['png_bits_auroc']:.3f})")
        panels["-log2 p(x) - PNG bits"] = (scores["corrected_in"], scores["corrected_out"], report["corrected_auroc"])
    out = Path(args.out) if args.out else Path(args.run) / f"anomaly_{args.ood}.png"
    print(f"figure: {score_histograms(panels, out, (report['dataset'], report['ood']))}")
    return 0




def cmd_synthetic(argv: Sequence[str]) -> int:
    from genzoo.synthetic import ClassifierTraining, score_run

    parser = argparse.ArgumentParser(
        prog="genzoo synthetic",
        description="Classification accuracy score: a classifier trained on a conditional run's samples, tested "
                    "on the real test set, beside one trained on the real training digits (RUN/synthetic.json).")
    parser.add_argument("run", help="a run folder of a class-conditional model (model.conditional = true)")
    parser.add_argument("-n", type=int, default=10_000, help="synthetic digits to train on")
    parser.add_argument("--seed", type=int, default=0, help="seed of the samples")
    parser.add_argument("--best", action="store_true", help="use best.pt instead of last.pt")
    parser.add_argument("--augment-real", type=int, default=500,
                        help="real digits (class-balanced) of the augmentation case, alone and with the samples")
    parser.add_argument("--classifier-steps", type=int, default=ClassifierTraining.steps,
                        help="training steps of every classifier (the same for every case)")
    parser.add_argument("--out", help="where the report goes (default: RUN/synthetic.json)")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args, extra = parser.parse_known_args(argv)
    report = score_run(
        args.run, args.n, which="best" if args.best else "last", sample_options=parse_sample_options(extra),
        augment_real=args.augment_real, training=ClassifierTraining(steps=args.classifier_steps),
        data_root=args.data_root, seed=args.seed,
    )
    out = Path(args.out) if args.out else Path(args.run) / "synthetic.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(synthetic_lines(report))
    print(f"report: {out}")
    return 0


def synthetic_lines(report: dict) -> str:
    """``genzoo synthetic``'s report, one number a line."""
    t = report["training"]
    return "\n".join([
        f"{report['family']} on {report['data']}, sampling options {report['sample_options']}",
        f"classifier: a fresh EvaluatorNet, {t['steps']} AdamW steps of batch {t['batch_size']}, lr {t['lr']}, "
        f"seed {t['seed']} (the same for every case); tested on {report['real_test']:,} real test images",
        f"cas (trained on {report['samples']:,} samples): {report['cas']:.4f}",
        f"real (trained on {report['real_train']:,} real images): {report['real']:.4f}",
        f"ratio cas / real: {report['ratio']:.4f}",
        f"real subset ({report['augment_real']:,} real images): {report['real_subset']:.4f}",
        f"real subset + samples ({report['augment_real']:,} real + {report['samples']:,} samples): "
        f"{report['real_subset_plus_synthetic']:.4f}",
        f"sampling: {report['ms_per_image']:.2f} ms per image ({report['sample_seconds']:.1f} s)",
        f"training: {report['train_seconds']:.1f} s per classifier (on the samples)",
    ])


def cmd_compare(argv: Sequence[str]) -> int:
    from genzoo.report import compare, evaluate_run

    parser = argparse.ArgumentParser(prog="genzoo compare", description="Runs side by side: compare.md, compare.png.")
    parser.add_argument("runs", nargs="*", help="run folders (evaluated first if they have no eval.json)")
    parser.add_argument("--out", default="runs/compare", help="where compare.md and compare.png go")
    parser.add_argument("-n", type=int, default=5_000, help="samples to score for runs not yet evaluated")
    parser.add_argument("--train", action="store_true", help="first train every family's default config")
    parser.add_argument("--minutes", type=float, default=5.0, help="training budget per family with --train")
    parser.add_argument("--families", default=",".join(DEFAULT_CONFIGS), help="families to train with --train")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_args(argv)
    runs = [Path(r) for r in args.runs]
    if args.train:
        runs += train_defaults(args.families.split(","), args.minutes, Path(args.out), args.data_root)
    if not runs:
        raise ConfigError("give run folders to compare, or --train --minutes M to train every family first")
    reports = []
    for run in runs:
        if not (run / "eval.json").is_file():
            evaluate_run(run, args.n, data_root=args.data_root)
        reports.append(json.loads((run / "eval.json").read_text()))
    md, png = compare(reports, args.out)
    print(md.read_text())
    print(f"table: {md}\nfigure: {png}")
    return 0


def cmd_inpaint(argv: Sequence[str]) -> int:
    from genzoo.inpaint import MASKS, inpaint_test_digits, report_lines
    from genzoo.model import GenerativeModel
    from genzoo.sources import load_data

    parser = argparse.ArgumentParser(prog="genzoo inpaint", description="Fill the missing part of test digits: "
                                     "prints the numbers, writes a figure and the numbers beside it (.json).")
    parser.add_argument("run", help="a run folder written by `genzoo train` (an image family)")
    parser.add_argument("options", nargs="*", metavar="KEY=VALUE", help="options of the family's inpaint (steps=50)")
    parser.add_argument("--mask", choices=MASKS, default="bottom",
                        help="bottom: the bottom half missing; patches: two random 10x10 holes on the digit")
    parser.add_argument("-n", type=int, default=100, help="test images to fill (the classes in turn)")
    parser.add_argument("--out", help="the figure (default: RUN/inpaint_MASK.png); the .json goes beside it")
    parser.add_argument("--seed", type=int, default=0, help="seeds the masks and the fills")
    parser.add_argument("--best", action="store_true", help="use best.pt instead of last.pt")
    parser.add_argument("--batch-size", type=int, default=100, help="images per inpaint call")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_intermixed_args(argv)  # options may come before or after the flags
    model, cfg, _ = load_model(args.run, "best" if args.best else "last")
    if type(model).inpaint is GenerativeModel.inpaint:
        raise ConfigError(f"the {cfg.family} family does not inpaint; the image families do")
    options = parse_key_values(args.options, "genzoo inpaint RUN")
    check_options(model.inpaint, options, "inpainting option ")
    model.to(pick_device(cfg.train.device))
    run_dir = Path(args.run) if Path(args.run).is_dir() else Path(args.run).parent
    figure = Path(args.out) if args.out else run_dir / f"inpaint_{args.mask}.png"
    report = inpaint_test_digits(
        model, load_data(cfg.data, args.data_root), mask=args.mask, n=args.n, seed=args.seed,
        batch_size=args.batch_size, figure=figure, **options,
    )  # fmt: skip
    figure.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    print(report_lines(report))
    print(f"figure: {figure}\nreport: {figure.with_suffix('.json')}")
    return 0


def train_defaults(families: list[str], minutes: float, out: Path, data_root: str | None) -> list[Path]:
    """Train each family's default config for ``minutes`` (or its max_steps, if sooner) into out/<family>."""
    from genzoo.models import FAMILIES

    runs = []
    for family in families:
        config = REPO_CONFIGS / DEFAULT_CONFIGS.get(family, f"{family}.toml")
        if family not in FAMILIES or not config.is_file():
            print(f"genzoo: skipping {family}: not in this version of genzoo ({config.name} missing)", file=sys.stderr)
            continue
        argv = [str(config), "--set", f"train.max_minutes={minutes}", "--out", str(out / family)]
        args = train_arguments().parse_args(argv + (["--data-root", data_root] if data_root else []))
        run = make_trainer(args).fit()
        if not run.interrupted:
            runs.append(run.run_dir)
    return runs


def cmd_list(argv: Sequence[str]) -> int:
    from genzoo.models import FAMILIES

    print("families:")
    for name, cls in FAMILIES.items():
        print(f"  {name:6s} {cls.__name__:16s} likelihood={cls.likelihood}")
    configs = sorted(REPO_CONFIGS.glob("*.toml")) + sorted(Path("configs").glob("*.toml"))
    print("configs:")
    for path in dict.fromkeys(p.resolve() for p in configs):
        print(f"  {path}")
    return 0


def cmd_data(argv: Sequence[str]) -> int:
    from genzoo.sources import describe_datasets

    parser = argparse.ArgumentParser(prog="genzoo data", description="Where each dataset is, and its state.")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_args(argv)
    for row in describe_datasets(args.data_root):
        print(f"{row['name']:16s} {row['status']:37s} {row['path']}")
    return 0


COMMANDS = {
    "train": cmd_train, "sample": cmd_sample, "eval": cmd_eval, "compare": cmd_compare,
    "anomaly": cmd_anomaly, "inpaint": cmd_inpaint, "synthetic": cmd_synthetic,
    "list": cmd_list, "data": cmd_data,
}


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
