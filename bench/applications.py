"""Measure what each family is used for (issue 16): anomaly detection in both directions, inpainting,
and synthetic training data, on MNIST-5k / FashionMNIST, with one command:

    GENZOO_DATA=../shared/data python bench/applications.py

It first trains the runs it needs into ``runs/applications/`` (a run already there is reused, or resumed
when interrupted), with the small step budgets of ``RUNS`` below, chosen so that the whole set trains in
about an hour on 2 CPU cores; then it measures and writes ``bench/results/applications.json``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from harness import ROOT, new_record, write_record

from genzoo.anomaly import anomaly_run
from genzoo.plots import score_histograms
from genzoo.recipe import make_trainer, train_arguments

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", default=str(ROOT / "runs" / "applications"), help="where the runs live")
    parser.add_argument("--only", default=",".join(RUNS), help="comma-separated names of RUNS to train")
    parser.add_argument("--train-only", action="store_true", help="train the runs, measure nothing")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "applications.json"))
    parser.add_argument("--figures", default=str(ROOT / "docs"), help="where the figures go")
    parser.add_argument("--data-root", help="dataset folder (default: $GENZOO_DATA, then ~/.cache/genzoo)")
    args = parser.parse_args(argv)
    train_runs(Path(args.runs), args.only.split(","), args.data_root)
    if args.train_only:
        return 0
    figures = Path(args.figures)
    figures.mkdir(parents=True, exist_ok=True)
    record = new_record("applications", {"runs": args.runs, "budgets": {k: v[1] for k, v in RUNS.items()}})
    record["anomaly"] = measure_anomaly(Path(args.runs), args.data_root, figures)
    write_record(record, Path(args.json), "see docs/applications.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
