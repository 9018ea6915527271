"""Measure a trained run (``genzoo eval``) and put runs side by side (``genzoo compare``).

``evaluate_run`` writes ``eval.json`` into a run folder: sample quality through the shipped evaluator
(MNIST and FashionMNIST images; for other images, CIFAR-10 or a user's folder, one line says why there is
none), the likelihood on the held-out data where the family has one (text: beside a bigram table's), and
what the model costs.
Every image report carries its own floor (real training digits scored the same way) and ceilings
(Gaussian noise, blank images), measured with the same number of samples, so a number can be read
without knowing the metric. ``compare`` turns several reports into ``compare.md`` and ``compare.png``.
"""

from __future__ import annotations

import datetime
import json
import math
import textwrap
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genzoo.baselines import bigram_nats_per_char
from genzoo.checkpoint import load_model
from genzoo.config import check_options
from genzoo.data import Data, ExampleData
from genzoo.errors import CheckpointError, DataError
from genzoo.evaluator import evaluator_path, load_evaluator
from genzoo.metrics import heldout_nll, image_metrics, mean_metrics, reference_points
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8, to_uint8
from genzoo.plots import read_metrics
from genzoo.runtime import machine, peak_memory_mb, pick_device
from genzoo.sources import load_data
from genzoo.specs import ImageSpec, TextSpec


def evaluate_run(
    run: str | Path,
    n_samples: int = 5_000,
    *,
    which: str = "last",
    sample_options: dict[str, Any] | None = None,
    log_prob_options: dict[str, Any] | None = None,
    data_root: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Evaluate the run folder ``run`` and write ``run/eval.json``; returns the report.

    Images: ``n_samples`` samples (EMA weights when kept) scored against the whole test set, with floor
    and ceilings; the bound or exact bits/dim on the whole test set. Text: nats and bits per character
    on the whole validation text, a bigram table's beside them (``baseline``), and the time to sample
    1,000 characters.
    """
    run = Path(run)
    if not (run / f"{which}.pt").is_file():
        raise CheckpointError(f"{run} has no {which}.pt: give a run folder written by `genzoo train`")
    model, cfg, spec = load_model(run, which)
    check_options(model.sample, sample_options or {}, "sampling option --")
    check_options(model.log_prob, log_prob_options or {}, "--log-prob option ")
    model.to(pick_device(cfg.train.device))
    data = load_data(cfg.data, data_root)
    options = {**cfg.sample, **(sample_options or {})}
    generator = torch.Generator(model.device).manual_seed(seed)
    report: dict[str, Any] = {
        "run": str(run), "family": cfg.family, "dataset": cfg.data.name, "data": data.source,
        "date": datetime.date.today().isoformat(), "machine": machine(), "torch": torch.__version__,
        "checkpoint": which, "sample_options": options,
        "cost": training_cost(run, model),
        "control": {"conditional": model.conditional, "latent": model.latent, "likelihood": model.likelihood},
    }
    if isinstance(spec, TextSpec):
        if data.spec != spec:  # a text file edited since training: its ids would mean other characters
            raise DataError(f"the {cfg.data.name} data now has other characters than {run} was trained on: "
                            "evaluate it on the text it was trained on")
        report.update(text_report(model, data, cfg.data.batch_size, options, generator, run))
    else:
        report.update(image_report(model, data, n_samples, options, generator, run))
        report["likelihood"] = likelihood_report(model, data, log_prob_options or {})
    report["cost"]["eval_peak_memory_mb"] = round(peak_memory_mb(model.device), 1)
    (run / "eval.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def training_cost(run: Path, model: GenerativeModel) -> dict[str, Any]:
    """Parameters, and steps, wall time and peak memory of training from ``metrics.jsonl``."""
    records = read_metrics(run / "metrics.jsonl")
    peaks = [r["peak_memory_mb"] for r in records if "peak_memory_mb" in r]
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_steps": records[-1]["step"] if records else 0,
        "train_seconds": records[-1]["time_s"] if records else 0.0,
        "train_peak_memory_mb": max(peaks) if peaks else None,
    }


def draw_images(
    model: GenerativeModel, n: int, options: dict[str, Any], generator: torch.Generator, batch_size: int = 500
) -> tuple[Tensor, float]:
    """``n`` samples quantised to 8 bits, as a user would save them (CPU, [-1, 1]), and the seconds taken."""
    started, chunks = time.perf_counter(), []
    for start in range(0, n, batch_size):
        x = model.sample(min(batch_size, n - start), generator=generator, **options)
        chunks.append(from_uint8(to_uint8(x.detach().cpu())))
    return torch.cat(chunks), time.perf_counter() - started


GRID_SAMPLES = 64  # the samples eval_samples.png shows


def no_quality_metrics(name: str) -> str:
    """The one line ``genzoo eval`` prints for images genzoo has no evaluator for (CIFAR-10, a user's folder)."""
    return (f"no sample-quality metrics for {name}: genzoo's shipped evaluator covers MNIST and FashionMNIST only, "
            "and an Inception-based FID needs ImageNet weights that cannot be downloaded offline; bits/dim is "
            "reported where the family has a likelihood")


def image_report(
    model: GenerativeModel, data: ExampleData, n: int, options: dict[str, Any], generator: torch.Generator, run: Path
) -> dict[str, Any]:
    model.eval()
    has_evaluator = evaluator_path(data.spec.name).exists()
    unscored_images = isinstance(data.spec, ImageSpec) and not has_evaluator  # CIFAR-10, a user's folder
    if unscored_images:
        n = min(n, GRID_SAMPLES)  # nothing scores them: draw only the grid (a CIFAR-10 DDPM takes hours for 5,000)
    samples, seconds = draw_images(model, n, options, generator)
    data.spec.save_samples(samples[:GRID_SAMPLES], run / "eval_samples")
    report: dict[str, Any] = {"sampling": {"samples": n, "seconds": round(seconds, 3), "ms_per_image": 1000 * seconds / n}}
    if not has_evaluator:
        no_evaluator = f"genzoo ships no evaluator for {data.spec.name}"
        report["quality"] = {"skipped": no_quality_metrics(data.spec.name) if unscored_images else no_evaluator}
        return report
    evaluator = load_evaluator(data.spec.name)
    real = from_uint8(data.test_x)
    started = time.perf_counter()
    quality = image_metrics(samples, real, evaluator)
    quality["seconds"] = round(time.perf_counter() - started, 3)
    report["quality"] = {"evaluator": evaluator.name, "evaluator_accuracy": evaluator.accuracy, **quality}
    report["references"] = reference_points(from_uint8(data.train_x), real, evaluator, n)
    return report


def likelihood_report(model: GenerativeModel, data: ExampleData, options: dict[str, Any]) -> dict[str, Any]:
    """Bits/dim of the whole test set, labelled exact or bound; skipped where there is none to compute."""
    if model.likelihood == "none":
        return {"kind": "none"}
    torch.manual_seed(0)  # bounds estimated by sampling (VAE, DDPM) repeat exactly
    try:
        result = heldout_nll(model, data.test_batches(500), **options)
    except ValueError as err:  # e.g. a class-conditional VAE only bounds log p(x | y)
        return {"kind": model.likelihood, "skipped": str(err)}
    return {"kind": model.likelihood, "options": options, **result}


def text_report(
    model: GenerativeModel, data: Data, batch_size: int, options: dict[str, Any], generator: torch.Generator, run: Path
) -> dict[str, Any]:
    model.eval()
    device = model.device
    started = time.perf_counter()
    val = mean_metrics([model.evaluate((x.to(device), y.to(device))) for x, y in data.test_batches(batch_size)])
    eval_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ids = model.sample(1, generator=generator, **{**options, "max_new_tokens": 1000})
    seconds = time.perf_counter() - started
    data.spec.save_samples(ids, run / "eval_samples")
    bigram = bigram_nats_per_char(data.train_ids, data.val_ids, data.spec.vocab_size)  # what almost nothing achieves
    return {
        "likelihood": {"kind": model.likelihood, "nats_per_char": val["nats_per_char"],
                       "bits_per_char": val["bits_per_char"], "seconds": round(eval_seconds, 3)},
        "baseline": {"model": "bigram table counted on the training text (genzoo.baselines)",
                     "nats_per_char": bigram, "bits_per_char": bigram / math.log(2)},
        "sampling": {"characters": 1000, "seconds": round(seconds, 3), "seconds_per_1000_chars": seconds},
    }


FID_NAMES = {"mnist": "FID-MNIST", "fashion_mnist": "FID-FashionMNIST"}  # not Inception FID: named apart


def headline(report: dict[str, Any]) -> str:
    """The few numbers a recipe prints at its end."""
    lines = [f"{report['family']} on {report['data']}"]
    quality, likelihood, sampling = report.get("quality", {}), report.get("likelihood", {}), report["sampling"]
    if "fid" in quality:
        real = report["references"]["real train images"]
        spread = f", other subsets {real['fid_min']:.0f} to {real['fid_max']:.0f}" if "fid_min" in real else ""
        lines.append(
            f"  quality ({quality['samples']:,} samples, evaluator {quality['evaluator']}): {FID_NAMES[report['dataset']]} "
            f"{quality['fid']:.0f} (real images {real['fid']:.0f}{spread}), precision {quality['precision']:.3f}, "
            f"recall {quality['recall']:.3f}, recognizable {quality['recognizability']:.1%}, "
            f"class coverage {quality['coverage']:.3f}"
        )
    if "skipped" in quality:
        lines.append(f"  quality: {quality['skipped']}")
    if "bits_per_dim" in likelihood:
        lines.append(f"  likelihood ({likelihood['kind']}): {likelihood['bits_per_dim']:.4f} bits/dim on "
                     f"{likelihood['examples']:,} test images")
    if "bits_per_char" in likelihood:
        bigram = f" (bigram baseline {report['baseline']['nats_per_char']:.4f})" if "baseline" in report else ""
        lines.append(f"  likelihood ({likelihood['kind']}): {likelihood['nats_per_char']:.4f} nats/char{bigram}, "
                     f"{likelihood['bits_per_char']:.4f} bits/char on the validation text")
    if "ms_per_image" in sampling:
        lines.append(f"  sampling: {sampling['ms_per_image']:.2f} ms per image")
    else:
        lines.append(f"  sampling: {sampling['seconds_per_1000_chars']:.2f} s per 1,000 characters")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Side by side.

COLUMNS = (
    "family", "data", "FID-MNIST ↓", "precision ↑", "recall ↑", "recognizable ↑", "coverage ↑",
    "likelihood ↓", "training", "sampling", "parameters", "conditional", "latent space",
)


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def table_row(report: dict[str, Any]) -> list[str]:
    quality, likelihood, cost = report.get("quality", {}), report.get("likelihood", {}), report["cost"]
    if "bits_per_dim" in likelihood:
        nll = f"{likelihood['bits_per_dim']:.3f} bits/dim ({likelihood['kind']})"
    elif "bits_per_char" in likelihood:
        nll = f"{likelihood['bits_per_char']:.3f} bits/char ({likelihood['kind']})"
    else:
        nll = f"– ({likelihood.get('kind', 'none')})"
    sampling = report["sampling"]
    speed = (f"{sampling['ms_per_image']:.2f} ms/image" if "ms_per_image" in sampling
             else f"{sampling['seconds_per_1000_chars']:.2f} s/1k chars")
    training = f"{cost['train_seconds'] / 60:.1f} min, {cost['train_steps']:,} steps"
    control = report["control"]
    return [
        report["family"], report["dataset"], _fmt(quality.get("fid"), 0), _fmt(quality.get("precision")),
        _fmt(quality.get("recall")), _fmt(quality.get("recognizability")), _fmt(quality.get("coverage")),
        nll, training, speed, f"{cost['parameters'] / 1e6:.2f} M",
        "yes" if control["conditional"] else "no", control["latent"] or "none",
    ]


def reference_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, m in report.get("references", {}).items():
        kind = "floor" if name.startswith("real") else "ceiling"
        rows.append([f"*{name}* ({kind})", report["dataset"], _fmt(m["fid"], 0), _fmt(m["precision"]),
                     _fmt(m["recall"]), _fmt(m["recognizability"]), _fmt(m["coverage"])] + [""] * 6)
    return rows


def spread_note(image_reports: list[dict[str, Any]]) -> str:
    """How far FID-MNIST moves between random subsets of real digits at the first report's n, if measured."""
    real = image_reports[0]["references"]["real train images"] if image_reports else {}
    if "fid_min" not in real:
        return ""
    return (f" At {real['samples']:,} images, {real['fid_draws']} random subsets of real training digits score"
            f" FID-MNIST {real['fid_min']:.0f} to {real['fid_max']:.0f}: smaller differences between rows are noise.")


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def compare(reports: list[dict[str, Any]], out: str | Path) -> tuple[Path, Path]:
    """Write ``compare.md`` (one row per run, then the floor and ceilings) and ``compare.png``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = [table_row(r) for r in reports]
    image_reports = [r for r in reports if "references" in r]
    if image_reports:
        rows += reference_rows(image_reports[0])
    sample_counts = sorted({r["quality"]["samples"] for r in image_reports})
    notes = [
        f"Measured {datetime.date.today().isoformat()} on {machine()}, torch {torch.__version__}.",
        f"Quality: {', '.join(map(str, sample_counts)) or 'no'} samples per image model against the whole test set,"
        " through genzoo's own MNIST classifier (FID-MNIST is not Inception FID: do not compare it with"
        " published FIDs). Floor and ceilings use as many images (the floor: at most all training images)."
        + spread_note(image_reports),
        "Likelihood: bits/dim of the 8-bit test images (exact or a bound, as labelled), or bits/char of the"
        " validation text. Training: wall time of the optimisation steps. Sampling: on this machine.",
        "", "Runs: " + ", ".join(f"`{r['run']}`" for r in reports),
    ]
    md = out / "compare.md"
    md.write_text("# genzoo: families side by side\n\n" + markdown_table(rows) + "\n\n" + "\n".join(notes) + "\n")
    return md, compare_figure(reports, out / "compare.png")


def text_panel(text: str, width: int = 36, lines: int = 30) -> str:
    """The start of a text sample as at most ``lines`` lines of at most ``width`` characters, which fit
    a 3-inch panel in 6-point monospace: long lines are wrapped, not left to run across the next panel."""
    wrapped = [part for line in text.splitlines() for part in (textwrap.wrap(line, width) or [""])]
    return "\n".join(wrapped[:lines])


def compare_figure(reports: list[dict[str, Any]], path: Path) -> Path:
    """Top: each run's samples; bottom: FID-MNIST against training time, with the floor and ceiling."""
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    fig = Figure(figsize=(3 * max(2, len(reports)), 7))
    grid = fig.add_gridspec(2, len(reports), height_ratios=(1, 1))
    for i, r in enumerate(reports):
        ax = fig.add_subplot(grid[0, i])
        ax.set_title(r["family"])
        ax.axis("off")
        png, txt = Path(r["run"]) / "eval_samples.png", Path(r["run"]) / "eval_samples.txt"
        if png.is_file():
            ax.imshow(imread(png), cmap="gray")
        elif txt.is_file():
            ax.text(0, 1, text_panel(txt.read_text()), va="top", family="monospace", fontsize=6,
                    transform=ax.transAxes, clip_on=True)
    ax = fig.add_subplot(grid[1, :])
    for r in reports:
        if "fid" in r.get("quality", {}):
            minutes = r["cost"]["train_seconds"] / 60
            ax.scatter(minutes, r["quality"]["fid"])
            ax.annotate(r["family"], (minutes, r["quality"]["fid"]), textcoords="offset points", xytext=(5, 5))
    refs = next((r["references"] for r in reports if "references" in r), {})
    for name, style in (("real train images", "--"), ("Gaussian noise", ":")):
        if name in refs:
            ax.axhline(refs[name]["fid"], linestyle=style, color="grey", label=name)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("FID-MNIST (lower is better)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    if refs:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path
