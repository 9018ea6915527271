"""Train a class-conditional DDPM on MNIST, then show what diffusion gives you: samples, the denoising
strip from noise to digit, classifier-free guidance, and a likelihood bound in bits/dim.

    python train/ddpm.py                                # configs/ddpm_mnist.toml: ~15 min training + ~8 min eval, 2 CPU cores
    python train/ddpm.py --set train.max_minutes=2      # any config value can be overridden
    python train/ddpm.py --resume runs/ddpm_mnist-...   # continue an interrupted run

At the end, ``genzoo eval``'s numbers (written to eval.json): sample quality through genzoo's evaluator
and the variational bound on every test image, with ``--bound-timesteps`` stratified timesteps each.
Figures (in the run folder): samples.png (10 of each digit, the config's [sample] options),
denoising.png (x_T -> x_0, one row per digit), guidance.png (rows the digits 0-9, columns the
guidance scales, the same starting noise along each row).
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.plots import save_grid, trajectory_strip
from genzoo.recipe import config_and_run_dir, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.trainer import Trainer

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "ddpm_mnist.toml"
GUIDANCE = (0.0, 0.5, 1.0, 2.0, 4.0)


def denoising_strip(model, options: dict) -> torch.Tensor:
    """One row per digit 0..9 (or sample): 10 evenly spaced x_t from x_T to x_0, (100, C, H, W)."""
    labels = list(range(10)) if model.conditional else ()
    generator = torch.Generator(model.device).manual_seed(0)
    return trajectory_strip(model.trajectory(10, generator=generator, **{**options, "labels": labels}))


def guidance_grid(model, options: dict, scales=GUIDANCE) -> torch.Tensor:
    """Rows the digits 0..9, columns the guidance scales; each column starts from the same noise."""
    columns = []
    for w in scales:
        generator = torch.Generator(model.device).manual_seed(0)
        columns.append(model.sample(10, generator=generator, **{**options, "guidance": w, "labels": list(range(10))}))
    return torch.stack(columns, dim=1).flatten(0, 1)  # (10 * len(scales), C, H, W)


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--bound-timesteps", type=int, default=20, help="K of the stratified test bound (0: all T)")
    parser.add_argument("--eval-samples", type=int, default=1_000, help="samples scored by the evaluator")
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
    if model.conditional:
        options.setdefault("labels", list(range(10)))
    x = model.sample(100, generator=torch.Generator(model.device).manual_seed(0), **options)
    save_grid(x, out / "samples.png", nrow=10)
    save_grid(denoising_strip(model, options), out / "denoising.png", nrow=10)
    if model.conditional:
        save_grid(guidance_grid(model, options), out / "guidance.png", nrow=len(GUIDANCE))
    K = args.bound_timesteps or model.T - 1  # an unbiased estimate of the bound's sum over t (DDPM.log_prob)
    report = evaluate_run(out, args.eval_samples, log_prob_options={"timesteps": K}, data_root=args.data_root)
    print(headline(report))
    print(f"  (the bound sums {K} stratified timesteps per test image)")
    print(f"figures: {out}/samples.png, denoising.png, guidance.png, loss.png; numbers: {out}/eval.json")


if __name__ == "__main__":
    main()
