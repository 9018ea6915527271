"""`genzoo eval` and `genzoo compare` end to end on tiny runs, and their one-line errors."""

import json

import pytest
import torch

from genzoo.cli import main
from genzoo.data import ExampleData
from genzoo.models.flow import Flow, FlowConfig
from genzoo.pixels import from_uint8
from genzoo.report import likelihood_report, table_row
from genzoo.specs import ImageSpec, PointSpec
from helpers import CONFIGS, FAST  # tests/helpers.py


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    vae, lm = root / "vae", root / "lm"
    assert main(["train", str(CONFIGS / "vae_mnist.toml"), "--out", str(vae), *FAST]) == 0
    lm_fast = FAST + ["--set", "data.block_size=32", "--set", "sample.max_new_tokens=20"]
    assert main(["train", str(CONFIGS / "lm_shakespeare.toml"), "--out", str(lm), *lm_fast]) == 0
    return vae, lm


def test_eval_of_an_image_run_writes_every_number(runs, capsys):
    vae, _ = runs
    assert main(["eval", str(vae), "-n", "64", "--log-prob", "k=2"]) == 0
    report = json.loads((vae / "eval.json").read_text())
    quality = report["quality"]
    assert quality["evaluator"] == "mnist-cnn-v1" and quality["samples"] == 64
    for key in ("fid", "precision", "recall", "recognizability", "coverage"):
        assert quality[key] == quality[key], key  # not NaN
    assert 0 <= quality["precision"] <= 1 and 0 <= quality["coverage"] <= 1
    assert set(report["references"]) == {"real train images", "Gaussian noise", "blank images"}
    assert report["likelihood"]["kind"] == "bound" and report["likelihood"]["options"] == {"k": 2}
    assert 0 < report["likelihood"]["bits_per_dim"] < 8.5  # an untrained VAE is near uniform, 8 bits/dim
    cost = report["cost"]
    assert cost["train_steps"] == 3 and cost["parameters"] > 0 and cost["train_peak_memory_mb"] > 0
    assert report["sampling"]["ms_per_image"] > 0 and (vae / "eval_samples.png").is_file()
    assert "FID-MNIST" in capsys.readouterr().out


def test_eval_of_a_text_run_reports_nats_and_bits_per_char(runs):
    _, lm = runs
    assert main(["eval", str(lm)]) == 0
    likelihood = json.loads((lm / "eval.json").read_text())["likelihood"]
    assert likelihood["bits_per_char"] == pytest.approx(likelihood["nats_per_char"] / 0.6931471805599453)
    assert (lm / "eval_samples.txt").is_file()


def test_compare_writes_a_table_row_per_run_and_a_figure(runs, tmp_path):
    vae, lm = runs
    out = tmp_path / "compare"
    assert main(["compare", str(vae), str(lm), "--out", str(out), "-n", "64"]) == 0
    table = (out / "compare.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert [row.split("|")[1].strip() for row in rows[1:3]] == ["vae", "lm"]
    assert "(floor)" in table and "(ceiling)" in table and (out / "compare.png").stat().st_size > 0


def test_bad_eval_input_is_one_line(runs, tmp_path, capsys):
    vae, _ = runs
    assert main(["eval", str(vae), "--log-prob", "kk=2"]) == 2
    assert "valid" in capsys.readouterr().err
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no last.pt" in err and len(err.splitlines()) == 1
    assert main(["compare"]) == 2


def test_compare_train_trains_each_family_then_tabulates(tmp_path, capsys):
    out = tmp_path / "table"
    argv = ["compare", "--train", "--minutes", "0.005", "--families", "lm,nosuchfamily", "--out", str(out)]
    assert main(argv) == 0
    assert "skipping nosuchfamily" in capsys.readouterr().err
    assert (out / "lm" / "eval.json").is_file()
    rows = [line for line in (out / "compare.md").read_text().splitlines() if line.startswith("| lm ")]
    assert len(rows) == 1


def test_the_flow_reports_a_bound_for_8_bit_images_and_an_exact_density_for_points():
    labels = torch.zeros(4, dtype=torch.long)
    images = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    mnist = ImageSpec(name="mnist", shape=(1, 28, 28), num_classes=10)
    image_data = ExampleData(mnist, "random", (images, labels), (images, labels), from_uint8)
    points = torch.randn(4, 2)
    point_data = ExampleData(PointSpec("moons", 2, 2), "random", (points, labels), (points, labels), lambda x: x)
    small = FlowConfig(checkerboard=1, checkerboard_hidden=4, steps=1, hidden=4, layers=1, points_hidden=4, depth=1)
    cells = {}
    for name, data in (("images", image_data), ("points", point_data)):
        flow = Flow.from_config(small, data.spec).eval()
        report = {
            "family": "flow", "dataset": data.spec.name, "likelihood": likelihood_report(flow, data, {}),
            "cost": {"train_seconds": 0.0, "train_steps": 0, "parameters": 1}, "sampling": {"ms_per_image": 1.0},
            "control": {"conditional": False, "latent": flow.latent, "likelihood": flow.likelihood},
        }
        cells[name] = table_row(report)[7]  # the likelihood column of `genzoo compare`'s table
    assert cells["images"].endswith("bits/dim (bound)") and cells["points"].endswith("bits/dim (exact)")


def test_a_text_sample_is_wrapped_to_fit_its_panel_of_the_compare_figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from genzoo.report import text_panel

    speech = "ROMEO:\n" + "But soft, what light through yonder window breaks? " * 12 + "\n\nJULIET:\nAy me."
    panel = text_panel(speech)
    lines = panel.splitlines()
    assert all(len(line) <= 36 for line in lines) and len(lines) <= 30
    assert lines[0] == "ROMEO:" and lines[1].startswith("But soft, what light")  # wrapped, not cut
    assert "".join(panel.split()) == "".join(speech.split())[: len("".join(panel.split()))]
    # drawn as compare_figure draws it, the text stays inside its 3-inch-wide panel
    fig = Figure(figsize=(3 * 6, 7))
    FigureCanvasAgg(fig)
    ax = fig.add_gridspec(2, 6).subplots()[0, 1]
    text = ax.text(0, 1, panel, va="top", family="monospace", fontsize=6, transform=ax.transAxes, clip_on=True)
    renderer = fig.canvas.get_renderer()
    assert text.get_window_extent(renderer).x1 <= ax.get_window_extent(renderer).x1
