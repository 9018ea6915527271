"""Train the pixel transformer on MNIST, then show what an autoregressive image model gives you: digits
drawn pixel by pixel (the drawing itself, frame by frame), samples at several temperatures, exact bits/dim
over training, then ``genzoo eval``'s numbers (written to eval.json): sample quality through genzoo's
evaluator and the exact bits/dim of every test digit.

    python train/pixel.py                                  # configs/pixel_mnist.toml: 20 min training, ~6 min eval
    python train/pixel.py --set train.max_minutes=2        # any config value can be overridden
    python train/pixel.py --eval-samples 1000              # fewer samples for the evaluator (sampling is sequential)
    python train/pixel.py --resume runs/pixel_mnist-...    # continue an interrupted run
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.plots import plot_metrics, save_grid, trajectory_strip
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "pixel_mnist.toml"
TEMPERATURES = (0.7, 0.8, 0.9, 1.0)


def drawing(model, n: int = 4, frames: int = 10) -> torch.Tensor:
    """One row per sample: the image after 1/10, 2/10, ..., all of its pixels are drawn."""
    generator = torch.Generator(model.device).manual_seed(0)
    return trajectory_strip(model.trajectory(n, generator=generator), frames)  # (n * frames, 1, H, W)


def temperature_grid(model, temperatures=TEMPERATURES, n: int = 10) -> torch.Tensor:
    """Rows: temperatures; columns: one sample each (digits 0..9 for a class-conditional model)."""
    rows = []
    for t in temperatures:
        rows.append(model.sample(n, generator=torch.Generator(model.device).manual_seed(0), temperature=t))
    return torch.cat(rows)  # (len(temperatures) * n, 1, H, W)


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
    model, out = run.sampling_model.eval(), run.run_dir
    save_grid(drawing(model), out / "drawing.png", nrow=10)
    save_grid(temperature_grid(model), out / "temperatures.png", nrow=10)
    plot_metrics(out / "metrics.jsonl", out / "bits_per_dim.png", key="bits_per_dim", label="bits/dim (exact)")
    report = evaluate_run(out, args.eval_samples, data_root=args.data_root)
    print(headline(report))
    print(f"figures: {out}/drawing.png, temperatures.png, bits_per_dim.png, samples/; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
