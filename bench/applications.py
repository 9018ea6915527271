"""Measure what each family is used for (issue 16): anomaly detection in both directions, inpainting,
and synthetic training data, on MNIST-5k / FashionMNIST, with one command:

    GENZOO_DATA=../shared/data python bench/applications.py

It first trains the runs it needs into ``runs/applications/`` (a run already there is reused, or resumed
when interrupted), with the small step budgets of ``RUNS`` below, chosen so that the whole set trains in
about an hour on 2 CPU cores; then it measures and writes ``bench/results/applications.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, Sequence

from harness import ROOT, new_record, write_record

import torch

from genzoo.anomaly import anomaly_run
from genzoo.checkpoint import load_model
from genzoo.config import DataConfig
from genzoo.evaluator import load_evaluator
from genzoo.inpaint import fill_images, hide, inpainting_figure, make_mask, score_fills
from genzoo.pixels import from_uint8
from genzoo.plots import score_histograms
from genzoo.recipe import make_trainer, train_arguments
from genzoo.sources import load_data
from genzoo.synthetic import classification_accuracy_score, real_baselines

# name: (config, step budget, extra overrides). Step budgets, not minutes, so the runs do not depend on
# what else shares the machine; every schedule still warms up and decays within its budget.
RUNS: dict[str, tuple[str, int, list[str]]] = {
    "vae_mnist": ("configs/vae_mnist.toml", 1500, []),
    "flow_mnist": ("configs/flow_mnist.toml", 400, []),
    "gan_mnist": ("configs/gan_mnist.toml", 1500, []),
    "ebm_mnist": ("configs/ebm_mnist.toml", 400, []),
    "ddpm_mnist": ("configs/ddpm_mnist.toml", 500, []),
    "vae_mnist_conditional": ("configs/vae_mnist.toml", 1000, ["model.conditional=true"]),
    "vae_fashion": ("configs/vae_mnist.toml", 800, ["data.name=fashion_mnist"]),
    "flow_fashion": ("configs/flow_mnist.toml", 300, ["data.name=fashion_mnist"]),
    "gan_fashion": ("configs/gan_mnist.toml", 700, ["data.name=fashion_mnist"]),
    "ebm_fashion": ("configs/ebm_mnist.toml", 300, ["data.name=fashion_mnist"]),
    "ddpm_fashion": ("configs/ddpm_mnist.toml", 300, ["data.name=fashion_mnist"]),
    "lm_shakespeare": ("configs/lm_shakespeare.toml", 800, []),
}


def train_runs(out: Path, names: list[str], data_root: str | None, shorten: Sequence[str] = ()) -> None:
    """Train (or resume, or keep) each run of ``RUNS`` named in ``names`` into ``out/<name>``; ``shorten``
    overrides come last (the notebook's short mode trains a few steps)."""
    for name in names:
        config, steps, overrides = RUNS[name]
        run = out / name
        sets = [f"train.max_steps={steps}", "train.max_minutes=120", "train.schedule_follows=steps",
                f"train.eval_every={max(steps // 2, 1)}", f"train.checkpoint_every={max(steps // 4, 1)}",
                *overrides, *shorten]
        args = ["--resume", str(run)] if (run / "last.pt").is_file() else [str(ROOT / config), "--out", str(run)]
        args += [arg for item in sets for arg in ("--set", item)]
        args += ["--data-root", data_root] if data_root else []
        make_trainer(train_arguments().parse_args(args)).fit()


# family: (its run trained on MNIST, its run trained on FashionMNIST, the options of its score, n per set).
# The VAE's bound uses k = 10 importance samples and the DDPM's 10 stratified timesteps (its bound costs
# 11 network passes per image): the bounds are noisier per image than eval's, and affordable on a CPU.
ANOMALY = {
    "vae": ("vae_mnist", "vae_fashion", {"k": 10}, 1000),
    "flow": ("flow_mnist", "flow_fashion", {}, 1000),
    "ddpm": ("ddpm_mnist", "ddpm_fashion", {"timesteps": 10}, 500),
    "ebm": ("ebm_mnist", "ebm_fashion", {}, 1000),
    "gan": ("gan_mnist", "gan_fashion", {}, 1000),
}
DIRECTIONS = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}  # trained on -> outliers


def measure_anomaly(runs: Path, data_root: str | None, figures: Path) -> dict[str, Any]:
    """Every family's AUROC in both directions (and the text LM's against Python source), with a
    histogram figure per direction in ``figures``."""
    results: dict[str, Any] = {}
    for trained_on, ood in DIRECTIONS.items():
        panels = {}
        for family, (on_mnist, on_fashion, options, n) in ANOMALY.items():
            run = runs / (on_mnist if trained_on == "mnist" else on_fashion)
            report = anomaly_run(run, ood, n=n, data_root=data_root, **options)
            scores = report.pop("scores")
            results.setdefault(family, {})[f"{trained_on}_vs_{ood}"] = report
            panels[f"{family}: score"] = (scores["in"], scores["out"], report["auroc"])
            if "corrected_auroc" in report:
                panels[f"{family}: score - PNG bits"] = (scores["corrected_in"], scores["corrected_out"],
                                                        report["corrected_auroc"])
            print(f"anomaly {family} {trained_on} vs {ood}: AUROC {report['auroc']:.3f}"
                  f" corrected {report.get('corrected_auroc', float('nan')):.3f}", flush=True)
        score_histograms(panels, figures / f"anomaly_{trained_on}.png", (trained_on, ood), columns=4)
    report = anomaly_run(runs / "lm_shakespeare", "python", n=500, data_root=data_root)
    scores = report.pop("scores")
    score_histograms({"lm: nats per character": (scores["in"], scores["out"], report["auroc"])},
                     figures / "anomaly_text.png", ("Shakespeare", "Python"))
    results["lm"] = {"shakespeare_vs_python": report}
    return results


# family: (run, inpaint options, test digits per mask). Each family's own defaults (see its ``inpaint``);
# the DDPM's RePaint at 25 steps and U = 4 resamplings (97 U-Net passes per digit; its default U = 10
# costs 241) on fewer digits.
INPAINT = {
    "vae": ("vae_mnist", {}, 200),
    "flow": ("flow_mnist", {}, 200),
    "gan": ("gan_mnist", {}, 200),
    "ebm": ("ebm_mnist", {}, 200),
    "ddpm": ("ddpm_mnist", {"steps": 25, "resample": 4}, 100),
}


def measure_inpainting(runs: Path, data_root: str | None, figures: Path) -> dict[str, Any]:
    """Every image family fills the same test digits (the classes in turn) under each mask; one figure
    per mask with every family's fills of the first ten."""
    data = load_data(DataConfig(name="mnist"), data_root)
    evaluator = load_evaluator("mnist")
    n = max(count for _, _, count in INPAINT.values())
    images, labels = data.test_examples_of_every_class(n)
    mean_image = from_uint8(data.train_x).mean(0, keepdim=True)
    results: dict[str, Any] = {}
    for mask in ("bottom", "patches"):
        known = make_mask(mask, n, *images.shape[2:], generator=torch.Generator().manual_seed(0))
        fills = {}
        for family, (run, options, count) in INPAINT.items():
            model = load_model(runs / run)[0]
            generator = torch.Generator().manual_seed(0)
            fill, seconds = fill_images(model, hide(images[:count], known[:count]), known[:count],
                                        generator=generator, **options)
            report = score_fills(fill, images[:count], labels[:count], known[:count], evaluator, mean_image)
            report.update(ms_per_image=1000 * seconds / count, options=options)
            results.setdefault(family, {})[mask] = report
            fills[family] = fill
            print(f"inpaint {family} {mask}: agreement {report['agreement']:.3f} missing MSE "
                  f"{report['missing_mse']:.4f} {report['ms_per_image']:.1f} ms/image", flush=True)
        inpainting_figure(images, known, fills, figures / f"inpainting_{mask}.png")
    return results


# family: (class-conditional run, sampling options, synthetic digits). The DDPM samples with 10 DDIM
# steps, and 2,000 digits: 10,000 at its default 50 steps would take hours on 2 CPU cores.
SYNTHETIC = {
    "gan": ("gan_mnist", {}, 10_000),
    "vae": ("vae_mnist_conditional", {}, 10_000),
    "ddpm": ("ddpm_mnist", {"steps": 10}, 2_000),
}


def measure_synthetic(runs: Path, data_root: str | None) -> dict[str, Any]:
    """The classification accuracy score of every class-conditional run, the real-data numbers once."""
    data = load_data(DataConfig(name="mnist"), data_root)
    train, test = (data.train_x, data.train_y), (data.test_x, data.test_y)
    baselines = real_baselines(train, test)
    results: dict[str, Any] = {"real": baselines}
    for family, (run, options, n) in SYNTHETIC.items():
        model, cfg, _ = load_model(runs / run)
        options = {**cfg.sample, **options}
        score = classification_accuracy_score(model, train, test, n=n, baselines=baselines,
                                              generator=torch.Generator().manual_seed(0), **options)
        results[family] = score
        print(f"synthetic {family}: CAS {score['cas']:.3f} (real {score['real']:.3f}), 500 real "
              f"{score['real_subset']:.3f} -> with synthetic {score['real_subset_plus_synthetic']:.3f}", flush=True)
    return results


def _cell(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def markdown_tables(record: dict[str, Any]) -> str:
    """The record as docs/applications.md's tables: one row per family, the baselines as their own rows."""
    anomaly, inpainting, synthetic = record["anomaly"], record["inpainting"], record["synthetic"]
    lines = ["| family | AUROC, trained on MNIST (FashionMNIST outliers) | AUROC, trained on FashionMNIST (MNIST "
             "outliers) | the same, complexity-corrected | inpainting agreement, bottom half | missing-pixel MSE | "
             "agreement, patches | ms per fill | CAS / real |", "|---" * 9 + "|"]
    for family in ANOMALY:
        forward, backward = anomaly[family]["mnist_vs_fashion_mnist"], anomaly[family]["fashion_mnist_vs_mnist"]
        bottom, patches = inpainting[family]["bottom"], inpainting[family]["patches"]
        cas = synthetic.get(family)
        lines.append(f"| {family} | {_cell(forward['auroc'])} | {_cell(backward['auroc'])} | "
                     f"{_cell(backward.get('corrected_auroc'))} | {_cell(bottom['agreement'])} | "
                     f"{_cell(bottom['missing_mse'], 4)} | {_cell(patches['agreement'])} | "
                     f"{bottom['ms_per_image']:.1f} | {_cell(cas and cas['ratio'])} |")
    forward, backward = anomaly["flow"]["mnist_vs_fashion_mnist"], anomaly["flow"]["fashion_mnist_vs_mnist"]
    bottom, patches = inpainting["vae"]["bottom"]["references"], inpainting["vae"]["patches"]["references"]
    lines.append(f"| *independent pixels* | {_cell(forward['baseline']['auroc'])} | {_cell(backward['baseline']['auroc'])} | "
                 f"{_cell(backward['baseline']['corrected_auroc'])} | | | | | |")
    lines.append(f"| *PNG code length alone* | {_cell(forward['png_bits_auroc'])} | {_cell(backward['png_bits_auroc'])} | "
                 "| | | | | |")
    for name in bottom:
        lines.append(f"| *fill: {name}* | | | | {_cell(bottom[name]['agreement'])} | "
                     f"{_cell(bottom[name]['missing_mse'], 4)} | {_cell(patches[name]['agreement'])} | | |")
    real = synthetic["real"]
    lines.append(f"| *real digits* | | | | | | | | 1 ({_cell(real['real'])} accuracy) |")
    return "\n".join(lines)


MEASURES = {
    "anomaly": measure_anomaly,
    "inpainting": measure_inpainting,
    "synthetic": lambda runs, data_root, figures: measure_synthetic(runs, data_root),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "applications"), help="where the runs live")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated names of RUNS to train")
    parser.add_argument("--train-only", action="store_true", help="train the runs, measure nothing")
    parser.add_argument("--table", action="store_true", help="print the recorded tables as markdown, measure nothing")
    parser.add_argument("--parts", default=",".join(MEASURES), help="what to measure (each replaces its part "
                        "of an existing record)")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "applications.json"))
    parser.add_argument("--figures", default=str(ROOT / "docs"), help="where the figures go")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_args(argv)
    if args.table:
        print(markdown_tables(json.loads(Path(args.json).read_text())))
        return 0
    train_runs(Path(args.runs), args.only.split(","), args.data_root)
    if args.train_only:
        return 0
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    out = Path(args.json)
    for part in args.parts.split(","):  # each part lands in the record as soon as it is measured
        record = json.loads(out.read_text()) if out.is_file() else {}
        header = new_record("applications", {"runs": args.runs, "budgets": {k: v[1] for k, v in RUNS.items()}})
        record.update(header)  # the header of the latest part; each part keeps its own under "parts"
        record.setdefault("parts", {})[part] = {key: header[key] for key in ("date", "machine", "torch", "command")}
        record[part] = MEASURES[part](Path(args.runs), args.data_root, figures)
        write_record(record, out, f"{part} measured")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
