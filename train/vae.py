"""Train a VAE on MNIST, then show what a VAE gives you: samples, reconstructions, a walk through
latent space, then the evaluator's numbers: sample quality and a likelihood bound in bits/dim on the
held-out digits (``genzoo eval``; written to the run's eval.json).

    python train/vae.py                                # configs/vae_mnist.toml, ~5 minutes on 2 CPU cores
    python train/vae.py --set train.max_minutes=1      # any config value can be overridden
    python train/vae.py --resume runs/vae_mnist-...    # continue an interrupted run
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.plots import save_grid
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "vae_mnist.toml"


def reconstructions(model, x: torch.Tensor) -> torch.Tensor:
    """Originals on odd rows, their reconstructions (decoded posterior means) on the rows below."""
    recon = model.reconstruct(x)  # (B, 1, 28, 28)
    return torch.stack([x.view(-1, 8, *x.shape[1:]), recon.view(-1, 8, *x.shape[1:])], 1).flatten(0, 2)


def interpolations(model, x: torch.Tensor, steps: int = 10) -> torch.Tensor:
    """One row per pair of digits (x[0] with x[1], x[2] with x[3], ...): decode z = (1 - t) mu_a + t mu_b for t from 0 to 1."""
    with torch.no_grad():
        mu, _ = model.encode(x)  # (B, D)
        a, b = mu[0::2], mu[1::2]  # (B/2, D) each
        t = torch.linspace(0, 1, steps, device=mu.device)[None, :, None]  # (1, S, 1)
        z = (1 - t) * a[:, None] + t * b[:, None]  # (B/2, S, D)
        return model.decode(z.flatten(0, 1))  # (B/2 * S, 1, 28, 28)


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--eval-k", type=int, default=100, help="importance samples for the test bound")
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
    x, _ = data.test_examples_of_every_class(32)  # pairs of different digits for the interpolations
    x = x.to(model.device)
    save_grid(reconstructions(model, x), out / "reconstructions.png", nrow=8)
    save_grid(interpolations(model, x[:16]), out / "interpolation.png", nrow=10)
    report = evaluate_run(out, args.eval_samples, log_prob_options={"k": args.eval_k}, data_root=args.data_root)
    print(headline(report))
    print(f"figures: {out}/samples, reconstructions.png, interpolation.png, loss.png; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
