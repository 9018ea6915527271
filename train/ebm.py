"""Train an energy-based model on MNIST (or a 2-D toy set), then show what an EBM gives you: samples from
the replay buffer and from noise, a Langevin chain, the energy as an out-of-distribution score.

    python train/ebm.py                                  # configs/ebm_mnist.toml: ~19 min training, 2 CPU cores
    python train/ebm.py configs/ebm_ring.toml            # the ring of 8 Gaussians: seconds, plus its energy landscape
    python train/ebm.py --set train.max_minutes=2        # any config value can be overridden
    python train/ebm.py --resume runs/ebm_mnist-...      # continue an interrupted run (the buffer included)

Figures (in the run folder). Images: samples_buffer.png (chains continued from the replay buffer, the
config's [sample] options), samples_noise.png (chains from uniform noise, ``--noise-steps`` steps),
sgld_chain.png (one row per chain, noise on the left), energy_hist.png (energies of MNIST test digits,
of samples and of FashionMNIST test images). Points: landscape.png (the data beside exp(-E) and E).
At the end, ``genzoo eval``'s numbers (written to eval.json) and, for MNIST, the out-of-distribution
AUROC of the energy separating FashionMNIST test images from MNIST test digits.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.config import DataConfig
from genzoo.errors import DataError
from genzoo.metrics import ring8_quality
from genzoo.models.ebm import EBM, energy_scores, ood_auroc
from genzoo.pixels import from_uint8
from genzoo.plots import density_panel, points_panel, save_grid, square_grid, trajectory_strip
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.specs import PointSpec
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ebm_mnist.toml"


def energy_histogram(energies: dict[str, torch.Tensor], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3), dpi=100)
    ax = fig.subplots()
    for name, e in energies.items():
        ax.hist(e.numpy(), bins=60, alpha=0.5, density=True, label=f"{name} ({len(e):,})")
    ax.set_xlabel("energy E(x) (low: the model finds x likely)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def energy_landscape(model: EBM, data_points: torch.Tensor, path: Path, extent: float = 1.6, cells: int = 200) -> None:
    """The data beside exp(-E(x)) (unnormalised density) and E(x) on a grid, with samples on top."""
    from matplotlib.figure import Figure

    grid = square_grid(extent, cells)  # (cells * cells, 2)
    energy = energy_scores(model, grid, batch_size=4096).view(cells, cells)
    samples = model.sample(1000, generator=torch.Generator(model.device).manual_seed(0)).cpu()
    fig = Figure(figsize=(11, 3.6), dpi=100)
    axes = fig.subplots(1, 3)
    points_panel(axes[0], data_points[:2000], extent)
    axes[0].set_title("data", fontsize=9)
    density_panel(axes[1], (-(energy - energy.min())).exp(), extent)
    axes[1].scatter(*samples.T, s=1, c="white", alpha=0.4)
    axes[1].set_title("exp(-E(x)) and 1,000 samples (white)", fontsize=9)
    image = density_panel(axes[2], energy, extent, cmap="magma")
    side = grid[:cells, 0]  # the grid's x coordinates, which are also its y coordinates
    axes[2].contour(side, side, energy, levels=15, colors="white", linewidths=0.4)
    fig.colorbar(image, ax=axes[2], fraction=0.046)
    axes[2].set_title("energy E(x)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)


def image_figures(model: EBM, data, options: dict, out: Path, noise_steps: int, data_root: str | None) -> float | None:
    """Sample grids, the SGLD strip and the energy histogram; returns the OOD AUROC (None without FashionMNIST)."""
    generator = torch.Generator(model.device).manual_seed(0)
    from_buffer = model.sample(100, generator=generator, **{**options, "from_buffer": True})
    save_grid(from_buffer, out / "samples_buffer.png", nrow=10)
    noise_options = {**options, "from_buffer": False, "mcmc_steps": noise_steps}
    save_grid(model.sample(100, generator=generator, **noise_options), out / "samples_noise.png", nrow=10)
    chains = model.trajectory(10, generator=torch.Generator(model.device).manual_seed(0), mcmc_steps=noise_steps,
                              from_buffer=False)
    save_grid(trajectory_strip(chains), out / "sgld_chain.png", nrow=10)  # one row per chain, noise on the left
    mnist = from_uint8(data.test_x)
    energies = {"MNIST test": energy_scores(model, mnist), "samples (buffer)": energy_scores(model, from_buffer)}
    try:
        fashion = from_uint8(load_data(DataConfig(name="fashion_mnist"), data_root).test_x)
    except DataError as err:
        print(f"no out-of-distribution score: {err}")
        energy_histogram(energies, out / "energy_hist.png")
        return None
    energies["FashionMNIST test"] = energy_scores(model, fashion)
    energy_histogram(energies, out / "energy_hist.png")
    return ood_auroc(model, mnist, fashion)


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--eval-samples", type=int, default=1_000, help="samples scored by the evaluator")
    parser.add_argument("--noise-steps", type=int, default=200, help="SGLD steps of the samples drawn from noise")
    args = parser.parse_args()
    cfg, run_dir = config_and_run_dir(args)                   # 1. config: the file + --set, or the resumed run's
    data = load_data(cfg.data, args.data_root)                 # 2. data
    model = build_model(cfg, data.spec, seed=cfg.train.seed)   # 3. model: the seed fixes its initial weights
    trainer = Trainer(model, data, cfg, run_dir)               # 4. trainer
    start_or_resume(trainer, args.resume)                      #    continuing --resume's run from its last.pt
    run = trainer.fit()
    if run.interrupted or not run.main_process:  # under torchrun, rank 0 alone goes on
        return
    model, out, options = run.sampling_model.eval(), run.run_dir, dict(cfg.sample)
    if isinstance(data.spec, PointSpec):
        energy_landscape(model, data.train_x, out / "landscape.png")
        auc, figures = None, "landscape.png"
        quality = ring8_quality(model.sample(1000, generator=torch.Generator(model.device).manual_seed(0), **options))
        print(f"samples: {quality['modes']:.0f} of 8 modes, {quality['high_quality']:.1%} high quality (ring8 only)")
    else:
        auc = image_figures(model, data, options, out, args.noise_steps, args.data_root)
        figures = "samples_buffer.png, samples_noise.png, sgld_chain.png, energy_hist.png"
    report = evaluate_run(out, args.eval_samples, data_root=args.data_root)
    print(headline(report))
    if auc is not None:
        print(f"  out-of-distribution: AUROC {auc:.4f} of the energy, MNIST test (in) vs FashionMNIST test (out)")
    print(f"figures: {out}/{figures}, loss.png; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
