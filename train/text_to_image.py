"""Text-to-image in miniature: train a VAE (when there is none yet), then latent diffusion in its latent
space with a text encoder, then show what it gives you: the same prompts at several guidance scales,
a prompt's denoising path decoded, and ``genzoo eval``'s numbers (written to eval.json).

    python train/text_to_image.py                          # ~5 min for runs/vae_mnist, then ~14 min (2 CPU cores)
    python train/text_to_image.py --set train.max_minutes=2   # any config value can be overridden
    python train/text_to_image.py --resume runs/ldm_mnist-...  # continue an interrupted run
    genzoo sample runs/ldm_mnist-... --prompt "the number after six" --guidance 3

The VAE is the run in ``model.autoencoder`` (``runs/vae_mnist``): an interrupted one is resumed, a
finished one reused. Its own recipe, ``train/vae.py``, would also draw its figures and evaluate it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from genzoo.checkpoint import build_model
from genzoo.plots import prompt_guidance_grid, save_grid, trajectory_strip
from genzoo.recipe import config_and_run_dir, make_trainer, start_or_resume, train_arguments
from genzoo.report import evaluate_run, headline
from genzoo.sources import load_data
from genzoo.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "ldm_mnist.toml"
VAE_CONFIG = ROOT / "configs" / "vae_mnist.toml"
PROMPTS = ("a seven", "the number after six", "the digit seven", "an 8", "the number before one")
SCALES = (0.0, 1.0, 3.0, 5.0)


def train_autoencoder(run: Path, data_root: str | None) -> None:
    """Train configs/vae_mnist.toml into ``run``, or resume it there; a finished run is left as it is."""
    argv = ["--resume", str(run)] if (run / "last.pt").is_file() else [str(VAE_CONFIG), "--out", str(run)]
    if data_root:
        argv += ["--data-root", data_root]
    make_trainer(train_arguments().parse_args(argv)).fit()


def prompts_by_guidance(model, prompts=PROMPTS, scales=SCALES, n: int = 6) -> dict[str, list[torch.Tensor]]:
    """For each prompt, n samples at each guidance scale, from the same noise."""
    return {p: [model.sample(n, generator=torch.Generator(model.device).manual_seed(0), prompt=p, guidance=s)
                for s in scales] for p in prompts}


def denoising_path(model, prompt: str = "a seven", n: int = 4, frames: int = 10) -> torch.Tensor:
    """One row per sample: the VAE's decoding of z_t at ``frames`` steps from z_T to z_0."""
    generator = torch.Generator(model.device).manual_seed(0)
    states = model.trajectory(n, generator=generator, prompt=prompt)
    with torch.no_grad():
        return model.autoencoder.decode(trajectory_strip(states, frames))  # (n * frames, 1, H, W)


def main() -> None:
    parser = train_arguments(str(CONFIG))
    parser.add_argument("--eval-samples", type=int, default=5_000, help="samples scored by the evaluator")
    args = parser.parse_args()
    cfg, run_dir = config_and_run_dir(args)                   # 1. config: the file + --set, or the resumed run's
    train_autoencoder(Path(cfg.model.autoencoder), args.data_root)  # 0. the VAE whose latent space it samples
    data = load_data(cfg.data, args.data_root)                 # 2. data
    model = build_model(cfg, data.spec, seed=cfg.train.seed)   # 3. model: loads and freezes the VAE
    trainer = Trainer(model, data, cfg, run_dir)               # 4. trainer
    start_or_resume(trainer, args.resume)                      #    continuing --resume's run from its last.pt
    run = trainer.fit()
    if run.interrupted or not run.main_process:  # under torchrun, rank 0 alone goes on
        return
    model, out = run.sampling_model.eval(), run.run_dir
    prompt_guidance_grid(prompts_by_guidance(model), list(SCALES), out / "prompts_by_guidance.png")
    save_grid(denoising_path(model), out / "denoising.png", nrow=10)
    report = evaluate_run(out, args.eval_samples, data_root=args.data_root)
    print(headline(report))
    print(f"figures: {out}/prompts_by_guidance.png, denoising.png, samples/; numbers: {out}/eval.json; "
          f"prompt accuracy by guidance: python bench/text_to_image.py {out}")


if __name__ == "__main__":
    main()
