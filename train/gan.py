"""Train a class-conditional DCGAN on MNIST, then show what a GAN gives you: one-pass samples, a walk
through the latent space, and the two players' losses over training.

    python train/gan.py                                    # configs/gan_mnist.toml: ~9 min training + ~1 min eval, 2 CPU cores
    python train/gan.py configs/gan_ring.toml              # the 2-D ring of 8 Gaussians: every mode
    python train/gan.py configs/gan_ring_collapse.toml     # the same ring, collapsing on purpose
    python train/gan.py --set train.max_minutes=2          # any config value can be overridden
    python train/gan.py --resume runs/gan_mnist-...        # continue an interrupted run

Figures (in the run folder): samples/step_*.png (sample grids over training, written by the trainer),
samples.png (images: 10 of each digit, one row per digit), interpolation.png (images: each row a
spherical walk between two latents z0 -> z1 with the label held fixed), losses.png (d_loss, g_loss,
D(x) and D(G(z)) over training; on the ring also the modes covered and the high-quality share).
At the end, images: ``genzoo eval``'s numbers (FID-MNIST, precision, recall, recognizability, class
coverage; written to eval.json); points: the ring's modes covered and high-quality share.
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from genzoo.checkpoint import build_model
from genzoo.metrics import ring8_quality
from genzoo.plots import read_metrics, save_grid
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.specs import ImageSpec
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "gan_mnist.toml"


def loss_curves(metrics_path: Path, path: Path) -> Path:
    """The two players' losses and D's outputs over training (train records); the ring's scores (val)."""
    records = read_metrics(metrics_path)
    train = [r for r in records if r["split"] == "train"]
    val = [r for r in records if r["split"] == "val" and "modes" in r]
    fig = Figure(figsize=(12 if val else 8, 3.2))
    axes = fig.subplots(1, 3 if val else 2)
    steps = [r["step"] for r in train]
    for key in ("d_loss", "g_loss"):
        axes[0].plot(steps, [r[key] for r in train], label=key)
    axes[0].set_title("the players' losses", fontsize=9)
    for key, label in (("d_real", "D(x), real"), ("d_fake", "D(G(z)), generated")):
        axes[1].plot(steps, [r[key] for r in train], label=label)
    axes[1].axhline(0.5, color="grey", linestyle=":")
    axes[1].set_title("D's probability of 'real' (0.5: D cannot tell)", fontsize=9)
    if val:
        axes[2].plot([r["step"] for r in val], [r["modes"] for r in val], "o-", label="modes covered (of 8)")
        twin = axes[2].twinx()
        twin.plot([r["step"] for r in val], [r["high_quality"] for r in val], "s--", color="C1", label="high quality")
        twin.set_ylim(0, 1)
        axes[2].set_ylim(0, 8.5)
        axes[2].set_title("ring8: modes covered (o), high-quality share (s)", fontsize=9)
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend(), axes[1].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--eval-samples", type=int, default=5_000, help="samples scored by the evaluator")
    args = parser.parse_args()
    cfg, run_dir = config_and_run_dir(args)                   # 1. config: the file + --set, or the resumed run's
    data = load_data(cfg.data, args.data_root)                 # 2. data
    model = build_model(cfg, data.spec, seed=cfg.train.seed)   # 3. model: the seed fixes its initial weights
    trainer = Trainer(model, data, cfg, run_dir)               # 4. trainer
    start_or_resume(trainer, args.resume)                      #    continuing --resume's run from its last.pt
    run = trainer.fit()
    if run.interrupted or not run.main_process:  # under torchrun, rank 0 alone goes on
        return
    model, out, options = run.sampling_model.eval(), run.run_dir, dict(cfg.sample)  # the EMA generator
    loss_curves(out / "metrics.jsonl", out / "losses.png")
    if not isinstance(data.spec, ImageSpec):  # 2-D points: the ring's mode-collapse scores
        x = model.sample(1000, generator=torch.Generator(model.device).manual_seed(0), **options)
        print(f"{data.spec.name}: {ring8_quality(x)} (1,000 samples); figures: {out}/samples/, losses.png")
        return
    labels = list(range(10)) if model.conditional else ()
    x = model.sample(100, generator=torch.Generator(model.device).manual_seed(0), **{**options, "labels": labels})
    rows = x.view(10, 10, *x.shape[1:]).transpose(0, 1).flatten(0, 1) if model.conditional else x  # a row per digit
    save_grid(rows, out / "samples.png", nrow=10)
    strip = model.interpolate(10, steps=10, generator=torch.Generator(model.device).manual_seed(0), labels=labels)
    save_grid(strip.flatten(0, 1), out / "interpolation.png", nrow=10)
    report = evaluate_run(out, args.eval_samples, data_root=args.data_root)
    print(headline(report))
    print(f"figures: {out}/samples.png, interpolation.png, losses.png, samples/; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
