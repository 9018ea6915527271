"""Inpainting: fill the missing part of an image given the rest, with any image family.

A mask ``known`` is a bool tensor (B, 1, H, W) or (1, 1, H, W), True where a pixel is given. Every
image family has ``inpaint(x, known, *, generator=None, **options)``, which returns images whose
known pixels are exactly those of ``x`` (``paste``, its last line). Each family fills the rest the way
it naturally can:

    DDPM   RePaint: reverse diffusion, the known region replaced at every step by q(x_{t-1} | x_0) of
           the known image, with jumps back by forward noise to harmonise them (Lugmayr et al. 2022, Alg. 1)
    EBM    Langevin dynamics on the unknown pixels only, the known ones held fixed: a sampler of
           p(x_unknown | x_known), proportional to exp(-E(x))
    VAE, GAN, flow   the MAP latent: z maximising log p(known pixels | z) + log N(z; 0, I) (``fit_latent``,
           written once here; ``fit_best_latent`` from several starts or labels), decoded, and pasted
           under the known pixels

``inpainting_report`` measures a family on labelled test images: how often the shipped evaluator gives
the filled digit the original's label (``agreement``), the squared error on the missing pixels, and
the time per image, beside three fills that need no model (the masked input itself, the training
digits' mean image, and the original: the ceiling).

References:
    Lugmayr et al. 2022: A. Lugmayr, M. Danelljan, A. Romero, F. Yu, R. Timofte, L. Van Gool, "RePaint:
        Inpainting using Denoising Diffusion Probabilistic Models", CVPR 2022, arXiv:2201.09865.
    Bora et al. 2017: A. Bora, A. Jalal, E. Price, A. G. Dimakis, "Compressed Sensing using Generative
        Models", ICML 2017, arXiv:1703.03208 (fitting a generator's latent to partial observations).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from genzoo.data import ExampleData
from genzoo.errors import ConfigError
from genzoo.evaluator import Evaluator, evaluator_path, load_evaluator
from genzoo.model import GenerativeModel
from genzoo.pixels import from_uint8
from genzoo.plots import labelled_rows

BACKGROUND = -1.0  # what a missing pixel reads as before it is filled: MNIST's black

# ----------------------------------------------------------------------------- masks


def bottom_half(height: int, width: int) -> Tensor:
    """(1, 1, H, W) bool: the top H // 2 rows known, the bottom half missing."""
    known = torch.zeros(1, 1, height, width, dtype=torch.bool)
    known[:, :, : height // 2] = True
    return known


def random_patches(
    n: int, height: int, width: int, *, patch: int = 10, count: int = 2, generator: torch.Generator | None = None
) -> Tensor:
    """(n, 1, H, W) bool: ``count`` square holes of side ``patch`` per image, the rest known.

    Each hole lies wholly inside the central box that leaves a border of H // 7 rows and W // 7 columns
    (rows and columns 4..23 of a 28x28 image: the 20x20 box MNIST draws its digits in), its corner
    uniform there; holes may overlap. The defaults hide 100 to 200 of 784 pixels (13% to 26%).
    """
    top, left = height // 7, width // 7
    if patch > min(height - 2 * top, width - 2 * left):
        raise ValueError(f"a {patch}-pixel hole does not fit in the central box of a {height}x{width} image")
    known = torch.ones(n, 1, height, width, dtype=torch.bool)
    rows = torch.randint(top, height - top - patch + 1, (n, count), generator=generator)
    cols = torch.randint(left, width - left - patch + 1, (n, count), generator=generator)
    for i in range(n):
        for r, c in zip(rows[i].tolist(), cols[i].tolist()):
            known[i, :, r : r + patch, c : c + patch] = False
    return known


MASKS = ("bottom", "patches")


def make_mask(name: str, n: int, height: int, width: int, generator: torch.Generator | None = None) -> Tensor:
    """(n, 1, H, W) bool masks by name: "bottom" (``bottom_half``) or "patches" (``random_patches``, defaults)."""
    if name == "bottom":
        return bottom_half(height, width).expand(n, 1, height, width)
    if name == "patches":
        return random_patches(n, height, width, generator=generator)
    raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {name!r}")


def hide(x: Tensor, known: Tensor) -> Tensor:
    """x with its missing pixels set to the background: what a family is given to fill."""
    return torch.where(known, x, torch.full_like(x, BACKGROUND))


def paste(x: Tensor, fill: Tensor, known: Tensor) -> Tensor:
    """The known pixels of x, exactly, and the fill everywhere else (B, C, H, W)."""
    return torch.where(known, x, fill)


# ----------------------------------------------------------------------------- the MAP latent


def latent_objective(data_term: Callable[[Tensor], Tensor], z: Tensor) -> Tensor:
    """(N,) -log p(known | z) - log N(z; 0, I), up to a constant: ``data_term(z)`` + ||z||^2 / 2."""
    return data_term(z) + 0.5 * z.pow(2).flatten(1).sum(1)


def fit_latent(data_term: Callable[[Tensor], Tensor], z: Tensor, *, steps: int, lr: float) -> Tensor:
    """The MAP latent for partial observations (Bora et al. 2017): Adam on z, starting from ``z`` (N, D),
    for ``steps`` steps on ``latent_objective``; returns z (N, D), detached. (A flow's z has the
    image's shape: any (N, ...) works.)

    data_term: z (N, D) -> (N,), the negative log-likelihood of each image's known pixels (its own
        row of z only: a model in eval mode, so batch norm does not mix the rows). Only z is updated
        and only z's gradient is taken: the model's weights and their .grad are left alone.
    """
    z = z.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    with torch.enable_grad():  # also inside torch.no_grad(): the fit needs d objective / dz
        for _ in range(steps):
            (z.grad,) = torch.autograd.grad(latent_objective(data_term, z).sum(), z)  # rows independent
            optimizer.step()
    return z.detach()


def best_of(candidates: Tensor, objective: Tensor, k: int) -> Tensor:
    """Per image, the candidate with the lowest objective: candidates (k B, ...) in k blocks of B
    (block j holds every image's j-th candidate), objective (k B,) -> (B, ...)."""
    B = len(candidates) // k
    pick = objective.view(k, B).argmin(0)  # (B,)
    return candidates.view(k, B, *candidates.shape[1:])[pick, torch.arange(B, device=pick.device)]


def fit_best_latent(
    data_term: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    z: Tensor,
    labels: Tensor | None,
    k: int,
    *,
    steps: int,
    lr: float,
) -> tuple[Tensor, Tensor | None]:
    """``fit_latent`` from k starts per image, the best kept: each image's MAP latent (B, D) and label (B,).

    z: (k B, D) starts in k blocks of B (block j holds every image's j-th start); labels: (k B,) the
        class each start is fitted with (a conditional model's candidates), or None.
    data_term: (z (N, D), image (N,) which image in 0..B-1 each row is of, labels (N,) or None) -> (N,).
    All k B starts are fitted for the first quarter of the steps, then only each image's best (by
    ``latent_objective``) for the rest: most of the fit costs one start per image, not k.
    """
    B = len(z) // k
    image = torch.arange(B, device=z.device)
    if k > 1:

        def every_start(z: Tensor) -> Tensor:
            return data_term(z, image.repeat(k), labels)

        z = fit_latent(every_start, z, steps=steps // 4, lr=lr)
        with torch.no_grad():
            objective = latent_objective(every_start, z)  # (k B,)
        z, labels = best_of(z, objective, k), None if labels is None else best_of(labels, objective, k)
        steps -= steps // 4

    def best_start(z: Tensor) -> Tensor:
        return data_term(z, image, labels)

    return fit_latent(best_start, z, steps=steps, lr=lr), labels


# ----------------------------------------------------------------------------- measuring a family


def fill_images(
    model: GenerativeModel,
    masked: Tensor,
    known: Tensor,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 100,
    **options: Any,
) -> tuple[Tensor, float]:
    """``model.inpaint`` in batches: fills (N, C, H, W) on the CPU, and the wall seconds taken.
    ``masked`` holds only the known pixels (``hide``); ``known`` is (N, 1, H, W)."""
    fills, started = [], time.perf_counter()
    for x, m in zip(masked.split(batch_size), known.split(batch_size)):
        fill = model.inpaint(x.to(model.device), m.to(model.device), generator=generator, **options)
        fills.append(fill.detach().cpu())
    return torch.cat(fills), time.perf_counter() - started


def agreement(evaluator: Evaluator, images: Tensor, labels: Tensor) -> float:
    """The share of images the evaluator gives the label ``labels``."""
    _, probs = evaluator.embed(images)
    return (probs.argmax(1) == labels.cpu()).float().mean().item()


def missing_mse(fills: Tensor, images: Tensor, known: Tensor) -> float:
    """Mean squared error over the missing pixels only, in [0, 1] pixel units (so 1 is white for black)."""
    error = ((fills.clamp(-1, 1) - images) / 2) ** 2  # [-1, 1] -> [0, 1] units
    return error[~known.expand_as(images)].mean().item()


def score_fills(
    fills: Tensor,
    images: Tensor,
    labels: Tensor,
    known: Tensor,
    evaluator: Evaluator,
    mean_image: Tensor | None = None,
) -> dict[str, Any]:
    """The numbers of ``inpainting_report`` for given fills, with the fills that need no model beside them."""
    references = {"masked input": hide(images, known)}  # the missing pixels left at the background
    if mean_image is not None:
        references["training mean"] = paste(images, mean_image.expand_as(images), known)
    references["original"] = images  # the ceiling
    return {
        "images": len(images),
        "known_fraction": known.expand(len(images), 1, *images.shape[2:]).float().mean().item(),
        "known_kept_exactly": bool(torch.equal(fills[known.expand_as(fills)], images[known.expand_as(images)])),
        "agreement": agreement(evaluator, fills, labels),
        "missing_mse": missing_mse(fills, images, known),
        "references": {
            name: {"agreement": agreement(evaluator, ref, labels), "missing_mse": missing_mse(ref, images, known)}
            for name, ref in references.items()
        },
    }


def inpainting_report(
    model: GenerativeModel,
    images: Tensor,
    labels: Tensor,
    known: Tensor,
    evaluator: Evaluator,
    *,
    generator: torch.Generator | None = None,
    batch_size: int = 100,
    mean_image: Tensor | None = None,
    figure: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Fill test images (N, 1, 28, 28) in [-1, 1] with ``model.inpaint`` (``options``) and measure the fills.

    known: (N, 1, H, W) or (1, 1, H, W) bool, True where a pixel is given; the model sees only those
        (the rest set to the background, -1). mean_image: (1, C, H, W), the training digits' per-pixel
        mean, a fill that needs no model; None leaves that reference out. figure: where to draw the
        first ten fills (``inpainting_figure``); None draws none.
    Returns ``agreement`` (the share of fills the evaluator gives the original's true label),
    ``missing_mse`` (mean squared error over the missing pixels only, pixels in [0, 1] units),
    ``ms_per_image`` (wall time of ``inpaint``), ``known_kept_exactly``, and under ``references`` the
    same two numbers for the masked input (missing = background), the training mean and the original.
    """
    known = known.expand(len(images), 1, *images.shape[2:])
    fills, seconds = fill_images(
        model, hide(images, known), known, generator=generator, batch_size=batch_size, **options
    )
    report = score_fills(fills, images, labels, known, evaluator, mean_image)
    report.update(seconds=round(seconds, 3), ms_per_image=1000 * seconds / len(images))
    if figure is not None:
        inpainting_figure(images, known, {model.family: fills}, figure)
    return report


def inpainting_figure(
    images: Tensor, known: Tensor, fills: dict[str, Tensor], path: str | Path, n: int = 10
) -> Path:
    """Rows of the first ``n`` images: the masked input (missing pixels drawn mid-grey, so the hole
    shows), each fill in ``fills`` (a row per family, by name), then the original."""
    known = known.expand(len(images), 1, *images.shape[2:])[:n]
    masked = torch.where(known, images[:n], torch.zeros_like(images[:n]))
    rows = {"masked": masked, **{name: fill[:n] for name, fill in fills.items()}, "original": images[:n]}
    return labelled_rows(rows, path)


# ----------------------------------------------------------------------------- a run on the test digits


def inpaint_test_digits(
    model: GenerativeModel,
    data: ExampleData,
    *,
    mask: str = "bottom",
    n: int = 100,
    seed: int = 0,
    batch_size: int = 100,
    figure: str | Path | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``inpainting_report`` on ``n`` test images of ``data`` (the classes in turn), masked by ``mask``
    (``make_mask``, seeded by ``seed``, as are the fills), with the training digits' mean image as a
    reference; the figure goes to ``figure`` if given. What ``genzoo inpaint`` runs."""
    if not evaluator_path(data.spec.name).exists():
        raise ConfigError(f"inpainting is measured with genzoo's shipped evaluator, which covers MNIST and "
                          f"FashionMNIST only, not {data.spec.name}")
    images, labels = data.test_examples_of_every_class(n)
    known = make_mask(mask, n, *images.shape[2:], generator=torch.Generator().manual_seed(seed))
    report = inpainting_report(
        model, images, labels, known, load_evaluator(data.spec.name),
        generator=torch.Generator(model.device).manual_seed(seed), batch_size=batch_size,
        mean_image=from_uint8(data.train_x).mean(0, keepdim=True), figure=figure, **options,
    )  # fmt: skip
    return {"family": model.family, "data": data.source, "mask": mask, "options": options, **report}


def report_lines(report: dict[str, Any]) -> str:
    """The report as one line per number, each beside the fills that need no model."""
    lines = [
        f"{report['family']} on {report['data']}, mask {report['mask']}: {report['images']} test images, "
        f"{report['known_fraction']:.1%} of pixels known, options {report['options'] or 'default'}",
        f"  agreement     {report['agreement']:.3f}  (share of fills the evaluator labels as the original's digit)",
        f"  missing_mse   {report['missing_mse']:.4f}  (squared error on the missing pixels, pixels in [0, 1])",
        f"  ms_per_image  {report['ms_per_image']:.1f}  ({report['seconds']:.1f} s in all)",
        f"  known pixels kept exactly: {report['known_kept_exactly']}",
    ]
    for name, ref in report["references"].items():
        lines.append(f"  {name + ':':15s} agreement {ref['agreement']:.3f}, missing_mse {ref['missing_mse']:.4f}")
    return "\n".join(lines)
