"""Colour and size: a folder of images the tests write themselves, every image family at 1 or 3 channels
and 28, 32 or 64 pixels, training and evaluating on colour images, and the CIFAR-10 GPU configs.

Everything is offline: the images are PNGs written here, the models are tiny (config overrides), and
the CIFAR-10 configs are only built, never trained. The CIFAR-10 loader's tests are in test_sources.py.
"""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from genzoo.checkpoint import build_model, load_model
from genzoo.cli import main
from genzoo.config import DataConfig, fill_dataclass, load_config
from genzoo.data import ExampleData
from genzoo.errors import ConfigError, DataError
from genzoo.models import FAMILIES
from genzoo.pixels import DiscretizedLogistic, PerChannel
from genzoo.report import no_quality_metrics
from genzoo.sources import held_out_mask, load_data
from genzoo.specs import ImageSpec
from helpers import CONFIGS, FAST  # tests/helpers.py

DOCS = Path(__file__).resolve().parents[1] / "docs"
PER_CLASS = 10  # images per class sub-folder: one of each is held out
RED, BLUE = (255, 0, 0), (0, 0, 255)


def save_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.astype(np.uint8)).save(path)


def wide_image(i: int) -> np.ndarray:
    """32 x 128 (H x W): red | green of level 100 + i | blue; the centre 32 x 32 crop is all green, nothing resized."""
    image = np.zeros((32, 128, 3))
    image[:, :48], image[:, 48:80, 1], image[:, 80:] = RED, 100 + i, BLUE
    return image


def tall_image(i: int) -> np.ndarray:
    """96 x 32: red above, blue of level 100 + i in the middle, green below; the crop is the middle third."""
    image = np.zeros((96, 32, 3))
    image[:32], image[32:64, :, 2], image[64:, :, 1] = RED, 100 + i, 255
    return image


def grey_quadrants(i: int) -> np.ndarray:
    """64 x 64 grey ("L" mode) quadrants 10 + i, 250, 128, 60: halved to 32 x 32, each corner keeps its level."""
    image = np.zeros((64, 64))
    image[:32, :32], image[:32, 32:], image[32:, :32], image[32:, 32:] = 10 + i, 250, 128, 60
    return image


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    """``labelled``: three class sub-folders of PER_CLASS images each (wide, tall, grey; one nested a level
    deeper); ``flat``: 12 images of different sizes directly in the folder, one of them grey."""
    root = tmp_path_factory.mktemp("images")
    for i in range(PER_CLASS):
        save_png(root / "labelled" / "a_wide" / f"{i}.png", wide_image(i))
        save_png(root / "labelled" / "b_tall" / f"{i}.png", tall_image(i))
        nested = "more/" if i >= PER_CLASS // 2 else ""  # ImageFolder reads a class folder's sub-folders too
        save_png(root / "labelled" / "c_grey" / f"{nested}{i}.png", grey_quadrants(i))
    sizes = [(40, 40), (28, 50), (77, 33), (64, 64), (33, 100), (120, 90)] * 2
    for i, (h, w) in enumerate(sizes):
        save_png(root / "flat" / f"{i:02d}.png", np.full((h, w, 3), (20 * i, 100, 255 - 20 * i)))
    save_png(root / "flat" / "12.png", np.full((50, 30), 200))  # grey, read as RGB
    return {"labelled": root / "labelled", "flat": root / "flat"}


def load_folder(path: Path, **fields) -> ExampleData:
    return load_data(DataConfig(name="image_folder", path=str(path), **fields))


# -- the folder: shapes, labels, the crop, the split ---------------------------------------------


def test_sub_folders_are_the_classes_sorted_by_name(folders):
    data = load_folder(folders["labelled"])
    assert data.spec == ImageSpec("image_folder", (3, 32, 32), 3)
    assert data.train_x.dtype == torch.uint8 and data.train_x.shape == (27, 3, 32, 32)
    assert data.test_x.shape == (3, 3, 32, 32)
    labels = torch.cat([data.train_y, data.test_y])
    assert torch.bincount(labels).tolist() == [PER_CLASS] * 3
    assert "labelled by sub-folder, 3 classes (a_wide, b_tall, c_grey)" in data.source
    assert "(27 train / 3 test)" in data.source and "3x32x32" in data.source


def test_the_centre_crop_keeps_the_middle_of_wide_and_tall_images(folders):
    data = load_folder(folders["labelled"])
    x, y = torch.cat([data.train_x, data.test_x]), torch.cat([data.train_y, data.test_y])
    wide, tall, grey = x[y == 0], x[y == 1], x[y == 2]
    green = wide[:, 1, 0, 0]
    assert sorted(green.tolist()) == list(range(100, 100 + PER_CLASS))  # every image once
    assert (wide[:, [0, 2]] == 0).all() and (wide[:, 1] == green.view(-1, 1, 1)).all()  # no red, no blue
    blue = tall[:, 2, 0, 0]
    assert sorted(blue.tolist()) == list(range(100, 100 + PER_CLASS))
    assert (tall[:, :2] == 0).all() and (tall[:, 2] == blue.view(-1, 1, 1)).all()
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 0], grey[:, 2])  # grey read as RGB
    corners = grey[:, 0, [0, 0, 31, 31], [0, 31, 0, 31]]  # (N, 4): resized 64 -> 32, the corners keep their level
    assert sorted(corners[:, 0].tolist()) == list(range(10, 10 + PER_CLASS))
    assert (corners[:, 1:] == torch.tensor([250, 128, 60], dtype=torch.uint8)).all()


def image_ids(x: torch.Tensor, y: torch.Tensor) -> set[tuple[int, int]]:
    """(class, the level that tells the class's images apart): green, blue or the top-left grey."""
    channel = {0: 1, 1: 2, 2: 0}
    return {(c, int(image[channel[c], 0, 0])) for image, c in zip(x, y.tolist())}


def test_the_split_holds_out_a_tenth_of_each_class_the_same_every_time(folders):
    data, again = load_folder(folders["labelled"]), load_folder(folders["labelled"])
    assert torch.equal(data.test_x, again.test_x) and torch.equal(data.train_y, again.train_y)
    assert data.test_y.tolist() == [0, 1, 2]
    train, test = image_ids(data.train_x, data.train_y), image_ids(data.test_x, data.test_y)
    assert len(train) == 27 and len(test) == 3 and not train & test  # no image in both splits
    labels = torch.tensor([0] * 100 + [1] * 30 + [2] * 2 + [3])
    held_out = held_out_mask(labels)
    assert [int(held_out[labels == c].sum()) for c in range(4)] == [10, 3, 1, 0]
    assert torch.equal(held_out, held_out_mask(labels)) and not torch.equal(held_out, held_out_mask(labels, seed=1))


def test_images_directly_in_the_folder_are_one_unlabelled_class(folders):
    data = load_folder(folders["flat"])
    assert data.spec == ImageSpec("image_folder", (3, 32, 32), 0)
    assert (len(data.train_x), len(data.test_x)) == (12, 1)
    assert not torch.cat([data.train_y, data.test_y]).any()
    assert "unlabelled: the images lie directly in the folder, one class" in data.source
    x = torch.cat([data.train_x, data.test_x])
    solid = [tuple(int(v) for v in image[:, 16, 16]) for image in x]  # every image is one colour
    assert (200, 200, 200) in solid and (0, 100, 255) in solid and (220, 100, 35) in solid
    assert all((image == image[:, :1, :1]).all() for image in x)


def test_image_size_and_grey_channels_are_configured(folders):
    small = load_folder(folders["flat"], image_size=16)
    assert small.spec.shape == (3, 16, 16) and small.train_x.shape[1:] == (3, 16, 16)
    grey = load_folder(folders["labelled"], image_size=28, channels=1)
    assert grey.spec.shape == (1, 28, 28) and grey.train_x.shape[1:] == (1, 28, 28)
    wide = torch.cat([grey.train_x, grey.test_x])[torch.cat([grey.train_y, grey.test_y]) == 0]
    luma = [(38470 * (100 + i) + 2**15) >> 16 for i in range(PER_CLASS)]  # PIL's ITU-R 601-2 L of pure green
    assert sorted(wide[:, 0, 14, 14].tolist()) == luma  # resized 32 -> 28: the band's edges blur, its middle not
    assert (wide[..., 2:26] == wide[:, :, :1, 2:3]).all()


# -- the folder's one-line errors ----------------------------------------------------------------


def one_line(err: pytest.ExceptionInfo) -> str:
    text = str(err.value)
    assert "\n" not in text
    return text


def test_a_missing_folder_an_empty_one_and_a_bad_setting_are_one_line(tmp_path):
    with pytest.raises(DataError) as err:
        load_folder(tmp_path / "nowhere")
    assert "is not a folder" in one_line(err) and str(tmp_path / "nowhere") in one_line(err)
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "no images found" in one_line(err) and ".png" in one_line(err) and ".jpg" in one_line(err)
    with pytest.raises(ConfigError, match="needs data.path"):
        load_data(DataConfig(name="image_folder"))
    with pytest.raises(ConfigError, match="data.channels must be 3"):
        load_folder(tmp_path, channels=2)


def test_an_unreadable_image_and_a_mixed_layout_are_one_line(tmp_path):
    save_png(tmp_path / "good.png", np.zeros((8, 8, 3)))
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert f"cannot read the image {tmp_path / 'broken.png'}" in one_line(err)
    (tmp_path / "broken.png").unlink()
    save_png(tmp_path / "cats" / "1.png", np.zeros((8, 8, 3)))
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "both directly in it and in sub-folders (cats)" in one_line(err)
    (tmp_path / "good.png").unlink()
    with pytest.raises(DataError) as err:
        load_folder(tmp_path)
    assert "too few images" in one_line(err)


# -- every image family at every size --------------------------------------------------------------

TINY = {  # model overrides that keep each family to a few thousand parameters
    "vae": {"encoder_channels": [8, 8], "decoder_channels": [8, 8], "latent_dim": 4, "iw_samples": 2},
    "gan": {"channels": [16, 8], "latent_dim": 8},
    "ddpm": {"channels": [8, 16], "timesteps": 10, "bound_timesteps": 4},
    "flow": {"checkerboard": 2, "checkerboard_hidden": 8, "steps": 1, "hidden": 8},
    "ebm": {"channels": [8, 8], "buffer_size": 16, "sgld_steps": 2},
}
SHAPES = [(1, 28, 28), (1, 32, 32), (3, 32, 32), (3, 64, 64)]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("family", list(TINY))
def test_each_image_family_builds_samples_and_scores_at_each_size(family, shape):
    torch.manual_seed(0)
    model = FAMILIES[family].from_config(fill_dataclass(FAMILIES[family].Config, TINY[family], "model"),
                                         ImageSpec("t", shape, 10))
    x = torch.rand(2, *shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    loss, _ = model.loss((x, torch.tensor([1, 2])))
    loss.backward()
    assert math.isfinite(loss.item()) and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    samples = model.sample(3, generator=torch.Generator().manual_seed(2))
    assert samples.shape == (3, *shape) and samples.isfinite().all()
    if model.likelihood != "none":
        with torch.no_grad():
            nats = -model.log_prob(x)
        assert nats.shape == (2,) and nats.isfinite().all() and (nats > 0).all()  # -log P of discrete data >= 0


def test_the_colour_vae_scores_each_channel_with_the_one_channel_likelihood():
    pixels, colour = DiscretizedLogistic(2), PerChannel(DiscretizedLogistic(2), 3)
    g = torch.Generator().manual_seed(0)
    params = torch.randn(4, 3 * 6, 5, 5, generator=g)  # channel c's six numbers at [6c, 6c + 6)
    x = torch.randint(0, 256, (4, 3, 5, 5), generator=g).float() / 127.5 - 1
    by_hand = sum(pixels.log_prob(params[:, 6 * c : 6 * c + 6], x[:, c : c + 1]) for c in range(3))
    assert torch.allclose(colour.log_prob(params, x), by_hand)
    mean = colour.mean(params)
    assert mean.shape == (4, 3, 5, 5) and torch.allclose(mean[:, 2:], pixels.mean(params[:, 12:]))
    vae = FAMILIES["vae"].from_config(FAMILIES["vae"].Config(n_mix=2), ImageSpec("t", (3, 32, 32), 10))
    assert vae.decoder(torch.zeros(1, 16)).shape == (1, 18, 32, 32) and vae.encoder.features[0].in_channels == 3


MNIST_PARAMETERS = {"vae": 316_841, "gan": 842_018, "ddpm": 721_249, "flow": 122_008, "ebm": 90_401}  # before colour


def test_the_mnist_configs_build_the_same_models_as_before_colour():
    spec = ImageSpec("mnist", (1, 28, 28), 10)
    for family, parameters in MNIST_PARAMETERS.items():
        cfg = load_config(CONFIGS / f"{family}_mnist.toml")
        assert sum(p.numel() for p in build_model(cfg, spec, seed=0).parameters()) == parameters, family


# -- training and evaluating on the folder, through `genzoo train` and `genzoo eval` -----------------


def train_on(folder: Path, family: str, run: Path) -> Path:
    """Three steps of ``configs/<family>_mnist.toml`` on ``folder`` with the TINY networks, through the CLI."""
    tiny = [f"model.{key}={json.dumps(value)}" for key, value in TINY[family].items()]
    sets = ["data.name=image_folder", f"data.path={folder}", *tiny]
    sets += {"ddpm": ["sample.steps=5"], "ebm": ["sample.mcmc_steps=2"]}.get(family, [])
    args = [str(CONFIGS / f"{family}_mnist.toml"), "--out", str(run), *FAST]
    assert main(["train", *args, *(arg for s in sets for arg in ("--set", s))]) == 0
    return run


@pytest.fixture(scope="module")
def runs(folders, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {family: train_on(folders["labelled"], family, root / family) for family in TINY}


@pytest.mark.parametrize("family", list(TINY))
def test_each_image_family_trains_and_samples_on_a_colour_folder(family, runs):
    records = [json.loads(line) for line in (runs[family] / "metrics.jsonl").read_text().splitlines()]
    losses = [value for r in records for key, value in r.items() if "loss" in key and isinstance(value, float)]
    assert losses and all(map(math.isfinite, losses))
    trained, cfg, spec = load_model(runs[family], use_ema=False)
    assert spec.shape == (3, 32, 32) and spec.num_classes == 3 and max(r["step"] for r in records) == 3
    fresh = build_model(cfg, spec, seed=cfg.train.seed)
    changed = [not torch.equal(p, q) for p, q in zip(trained.state_dict().values(), fresh.state_dict().values())]
    assert any(changed)  # three optimizer steps moved the weights
    samples = trained.eval().sample(4, generator=torch.Generator().manual_seed(0), **cfg.sample)
    assert samples.shape == (4, 3, 32, 32) and samples.min() >= -1 - 1e-6 and samples.max() <= 1 + 1e-6


def test_a_conditional_model_on_an_unlabelled_folder_is_one_line(folders, tmp_path, capsys):
    args = [str(CONFIGS / "gan_mnist.toml"), "--out", str(tmp_path / "gan"), *FAST,
            "--set", "data.name=image_folder", "--set", f"data.path={folders['flat']}"]
    assert main(["train", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "needs labelled data; image_folder has no classes" in err and len(err.splitlines()) == 1


def test_eval_of_a_colour_run_says_why_there_is_no_fid_and_reports_bits_per_dim(runs, capsys):
    run = runs["vae"]
    assert main(["eval", str(run), "-n", "500", "--log-prob", "k=2"]) == 0
    out = capsys.readouterr().out
    report = json.loads((run / "eval.json").read_text())
    line = no_quality_metrics("image_folder")
    assert report["quality"] == {"skipped": line} and f"quality: {line}" in out
    assert "MNIST and FashionMNIST only" in line and "Inception" in line and "offline" in line
    assert report["sampling"]["samples"] == 64  # only the grid is drawn: nothing scores the samples
    likelihood = report["likelihood"]
    assert likelihood["kind"] == "bound" and likelihood["examples"] == 3
    assert 0 < likelihood["bits_per_dim"] < 12 and f"{likelihood['bits_per_dim']:.4f} bits/dim" in out


# -- the CIFAR-10 GPU configs ------------------------------------------------------------------------

GPU_CONFIGS = sorted(CONFIGS.glob("*_cifar10_gpu.toml"))


def documented_parameters() -> dict[str, int]:
    """``configs/<name>.toml`` -> the parameter count docs/colour.md's table gives for it."""
    rows = re.findall(r"^\| `configs/(\w+)\.toml` \| ([\d,]+) \|", (DOCS / "colour.md").read_text(), re.M)
    return {name: int(count.replace(",", "")) for name, count in rows}


def test_there_is_a_cifar10_gpu_config_for_the_ddpm_the_gan_the_flow_and_the_vae():
    assert [path.name.split("_")[0] for path in GPU_CONFIGS] == ["ddpm", "flow", "gan", "vae"]


@pytest.mark.parametrize("path", GPU_CONFIGS, ids=lambda p: p.stem)
def test_each_cifar10_gpu_config_builds_its_documented_model(path):
    cfg = load_config(path)
    assert cfg.data.name == "cifar10" and cfg.train.device == "auto"
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        model = FAMILIES[cfg.family].from_config(cfg.model, ImageSpec("cifar10", (3, 32, 32), 10))
    assert sum(p.numel() for p in model.parameters()) == documented_parameters()[path.stem]
