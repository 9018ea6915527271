"""Train a normalizing flow on MNIST (or 2-D points), then show what an exact likelihood gives you:
samples at several temperatures, bits/dim over training, and for 2-D data the learned density itself.

    python train/flow.py                                   # configs/flow_mnist.toml: <= 20 min training + eval, 2 CPU cores
    python train/flow.py configs/flow_moons.toml           # the two moons: about a minute
    python train/flow.py --set train.max_minutes=2         # any config value can be overridden
    python train/flow.py --resume runs/flow_mnist-...      # continue an interrupted run

At the end, ``genzoo eval``'s numbers (written to eval.json): sample quality through genzoo's evaluator
(images) and bits/dim of every test example. Figures (in the run folder): temperatures.png (images:
one row per temperature 0.5 ... 1.0, the same latent direction down each column) or density.png
(points: the data next to the learned density p(x) on a grid), and bits_per_dim.png (train and
validation bits/dim against step, from metrics.jsonl).
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from genzoo.checkpoint import build_model
from genzoo.plots import density_panel, plot_metrics, points_panel, save_grid, square_grid
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.specs import PointSpec
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "flow_mnist.toml"
TEMPERATURES = (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def temperature_grid(model, temperatures=TEMPERATURES, n: int = 10) -> torch.Tensor:
    """Rows: temperatures; columns: one unit-temperature latent z, scaled by each temperature."""
    z = model.prior.sample(n, 1.0, torch.Generator(model.device).manual_seed(0), model.device)
    return torch.cat([model.decode(t * z) for t in temperatures])  # (len(temperatures) * n, C, H, W)


def density_figure(model, data, path: Path, extent: float = 1.6, cells: int = 200) -> Path:
    """The test points (left) and exp(log_prob) of the flow on a grid (right)."""
    with torch.no_grad():
        density = model.log_prob(square_grid(extent, cells).to(model.device)).exp()
    fig = Figure(figsize=(8, 4))
    left, right = fig.subplots(1, 2)
    points = data.test_x[:2000]
    points_panel(left, points, extent)
    left.set_title(f"{data.spec.name}: {len(points):,} test points")
    density_panel(right, density.view(cells, cells).cpu(), extent)
    right.set_title("learned density p(x)")
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
    model, out = run.sampling_model.eval(), run.run_dir
    if isinstance(data.spec, PointSpec):
        figure = density_figure(model, data, out / "density.png").name
    else:
        x = temperature_grid(model)
        save_grid(x, out / "temperatures.png", nrow=10)
        figure = "temperatures.png"
    plot_metrics(out / "metrics.jsonl", out / "bits_per_dim.png", label="bits/dim (the loss)")
    report = evaluate_run(out, args.eval_samples, data_root=args.data_root)
    print(headline(report))
    print(f"figures: {out}/{figure}, bits_per_dim.png, samples/; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
