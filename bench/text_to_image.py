"""Measure text-to-image (latent diffusion with a text encoder): against the pixel DDPM and the VAE's
prior samples, and prompt accuracy by guidance scale on training, held-out and arithmetic phrasings.

    GENZOO_DATA=../shared/data python bench/text_to_image.py runs/ldm_mnist --pixel-ddpm runs/ddpm_mnist

Writes ``bench/results/text_to_image.json`` and ``docs/text_to_image.png`` (prompts x guidance scales);
``--parts`` re-measures some parts, keeping the others (each part's date is under ``parts``).

- comparison: FID-MNIST, precision, recall, recognizability and coverage of ``--n`` samples each of the
  latent diffusion (its [sample] options: prompts cycling through the ten digits' names) and of the
  same VAE's prior samples; the VAE's reconstructions of ``--n`` training digits (decoded posterior means:
  the detail this decoder gives back to real codes); the time per image of each, and of
  the pixel DDPM's sampling (its own [sample] options), timed here on the same machine. The pixel DDPM's
  sample quality is not re-measured (5,000 samples take about half an hour): the record points to it.
- guidance: for each scale s and each set of phrasings (``genzoo/prompts.py``), ``--per-cell`` samples with
  the set's captions in turn: prompt accuracy, class-conditional recall, FID-MNIST and the rest.
- arithmetic: each arithmetic caption on its own (100 samples at s = 3): right, the numeral drawn, the
  most frequent digit.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from harness import ROOT, new_record, write_record

import torch
from torch import Tensor

from genzoo.checkpoint import load_model
from genzoo.evaluator import load_evaluator
from genzoo.metrics import image_metrics, prompt_metrics
from genzoo.pixels import from_uint8, to_uint8
from genzoo.plots import prompt_guidance_grid
from genzoo.prompts import ARITHMETIC_PHRASINGS, HELDOUT_PHRASINGS, TRAINING_PHRASINGS, captions
from genzoo.report import draw_images, training_cost
from genzoo.sources import load_data

PARTS = ("comparison", "guidance", "arithmetic", "figure")
PHRASINGS = {"training": TRAINING_PHRASINGS, "held-out": HELDOUT_PHRASINGS, "arithmetic": ARITHMETIC_PHRASINGS}
FIGURE_PROMPTS = {  # row label: prompt
    "a seven (training)": "a seven",
    "the number after six (training)": "the number after six",
    "the digit seven (held out)": "the digit seven",
    "an 8 (held out)": "an 8",
    "the number after 2 (arithmetic)": "the number after 2",
}


def every_caption(phrasings: tuple[str, ...]) -> tuple[list[str], Tensor]:
    """All captions of a set of phrasings, digit by digit, and the digit each asks for."""
    pairs = [(text, d) for p in phrasings for d in range(10) for text in captions([p], d)]
    return [text for text, _ in pairs], torch.tensor([d for _, d in pairs])


def seeded() -> torch.Generator:
    return torch.Generator().manual_seed(1)


def draw_prompted(model, prompts: list[str], options: dict, batch_size: int = 500) -> tuple[Tensor, float]:
    """``genzoo.report.draw_images`` with one prompt per sample: each batch of ``batch_size`` is given its
    own slice of ``prompts`` (the model would repeat a whole list from its start in every batch)."""
    generator, started, chunks = seeded(), time.perf_counter(), []
    for start in range(0, len(prompts), batch_size):
        part = prompts[start : start + batch_size]
        chunks.append(draw_images(model, len(part), {**options, "prompt": part}, generator, batch_size)[0])
    return torch.cat(chunks), time.perf_counter() - started


def comparison(model, options: dict, pixel_ddpm, data, evaluator, n: int) -> dict:
    real = from_uint8(data.test_x)
    rows = {}
    samples, seconds = draw_images(model, n, options, seeded())
    rows["latent diffusion"] = {"options": options, "ms_per_image": 1000 * seconds / n,
                                **image_metrics(samples, real, evaluator)}
    samples, seconds = draw_images(model.autoencoder, n, {}, seeded())
    rows["VAE prior samples"] = {"options": "z ~ N(0, I), decoder mean", "ms_per_image": 1000 * seconds / n,
                                 **image_metrics(samples, real, evaluator)}
    with torch.no_grad():
        train = from_uint8(data.train_x[:n])
        recon = from_uint8(to_uint8(model.autoencoder.reconstruct(train)))
    rows["VAE reconstructions"] = {"options": f"decoded posterior means of {len(train)} training digits",
                                   **image_metrics(recon, real, evaluator)}
    rows["real training digits"] = {"options": f"{len(train)} digits", **image_metrics(train, real, evaluator)}
    if pixel_ddpm is not None:
        ddpm, ddpm_options = pixel_ddpm
        _, seconds = draw_images(ddpm, 100, ddpm_options, seeded(), batch_size=100)
        rows["pixel DDPM"] = {"options": ddpm_options, "ms_per_image": 1000 * seconds / 100,
                              "quality": "not re-measured here: see README's comparison table (configs/ddpm_mnist.toml)"}
    return rows


def guidance_table(model, options: dict, data, evaluator, scales: list[float], per_cell: int) -> list[dict]:
    real, labels = from_uint8(data.test_x), data.test_y
    rows = []
    for name, phrasings in PHRASINGS.items():
        texts, digits = every_caption(phrasings)
        reps = -(-per_cell // len(texts))
        prompts, wanted = (texts * reps)[:per_cell], digits.repeat(reps)[:per_cell]
        for s in scales:
            samples, seconds = draw_prompted(model, prompts, {**options, "guidance": s})
            metrics = prompt_metrics(samples, wanted, real, labels, evaluator)
            rows.append({"phrasings": name, "guidance": s, "captions": len(texts), "seconds": seconds, **metrics})
            print(f"{name:10s} s={s:<4g} accuracy {metrics['prompt_accuracy']:.3f} class recall "
                  f"{metrics['class_recall']:.3f} FID {metrics['fid']:.0f}", flush=True)
    return rows


def arithmetic_by_digit(model, options: dict, evaluator, n: int = 100, guidance: float = 3.0) -> list[dict]:
    """For each arithmetic caption ("the number after 6"), n samples: how often the evaluator reads the
    digit asked for, the numeral in the caption, and which digit most often."""
    rows = []
    for phrasing in ARITHMETIC_PHRASINGS:
        for digit in range(1, 10):
            text = captions([phrasing], digit)[0]
            x, _ = draw_images(model, n, {**options, "prompt": text, "guidance": guidance}, seeded())
            counts = torch.bincount(evaluator.embed(x)[1].argmax(1), minlength=10)
            rows.append({"caption": text, "wanted": digit, "guidance": guidance, "right": int(counts[digit]) / n,
                         "the_numeral": int(counts[digit - 1]) / n, "most_often": int(counts.argmax()),
                         "most_often_share": int(counts.max()) / n})
    return rows


def figure(model, options: dict, scales: list[float], path: Path, per_cell: int = 4) -> Path:
    images = {}
    for label, prompt in FIGURE_PROMPTS.items():
        images[label] = [model.sample(per_cell, generator=torch.Generator().manual_seed(0),
                                      **{**options, "guidance": s, "prompt": prompt}) for s in scales]
    return prompt_guidance_grid(images, scales, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a trained latent-diffusion run (configs/ldm_mnist.toml)")
    parser.add_argument("--pixel-ddpm", help="a pixel DDPM run (configs/ddpm_mnist.toml) to time beside it")
    parser.add_argument("--n", type=int, default=5_000, help="samples for the comparison")
    parser.add_argument("--per-cell", type=int, default=1_000, help="samples per guidance scale and phrasing set")
    parser.add_argument("--scales", type=float, nargs="+", default=[0.0, 1.0, 2.0, 3.0, 5.0, 8.0])
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="measure only these parts, keeping the others of an existing record")
    parser.add_argument("--data-root")
    parser.add_argument("--json", default=str(ROOT / "bench" / "results" / "text_to_image.json"))
    parser.add_argument("--figure", default=str(ROOT / "docs" / "text_to_image.png"))
    args = parser.parse_args()
    model, cfg, _ = load_model(args.run)
    data = load_data(cfg.data, args.data_root)
    evaluator = load_evaluator("mnist")
    cost = training_cost(Path(args.run), model)
    record = new_record("text_to_image", {"run_dir": args.run, "data": data.source, "sample_options": dict(cfg.sample),
                                          "cost": cost, "steps": cost["train_steps"], "train_seconds": cost["train_seconds"]})
    pixel = None
    if args.pixel_ddpm:
        ddpm, ddpm_cfg, _ = load_model(args.pixel_ddpm)
        pixel = (ddpm, dict(ddpm_cfg.sample))
        record["pixel_ddpm_run"] = args.pixel_ddpm
    old = json.loads(Path(args.json).read_text()) if Path(args.json).is_file() and len(args.parts) < len(PARTS) else {}
    made = old.get("parts") or {part: {"date": old["date"], "command": old["command"]} for part in PARTS if old}
    now = {"date": record["date"], "command": record["command"]}
    record = {**old, **record, "parts": {**made, **{part: now for part in args.parts}}}  # each part's provenance
    options = dict(cfg.sample)
    torch.manual_seed(0)
    if "comparison" in args.parts:
        record["comparison"] = comparison(model, options, pixel, data, evaluator, args.n)
    if "guidance" in args.parts:
        record["guidance"] = guidance_table(model, options, data, evaluator, args.scales, args.per_cell)
    if "arithmetic" in args.parts:
        record["arithmetic_by_digit"] = arithmetic_by_digit(model, options, evaluator)
    if "figure" in args.parts:
        record["figure"] = str(figure(model, options, args.scales[:5], Path(args.figure)))
    best = max((r for r in record["guidance"] if r["phrasings"] == "held-out"), key=lambda r: r["prompt_accuracy"])
    latent = record["comparison"]["latent diffusion"]
    write_record(record, Path(args.json), f"FID-MNIST {latent['fid']:.0f}, held-out prompt accuracy "
                 f"{best['prompt_accuracy']:.3f} at s = {best['guidance']:g}")


if __name__ == "__main__":
    main()
