"""The shared figure helpers: trajectory strips, the 2-D grid and its panels, the metrics plot."""

import torch
from matplotlib.figure import Figure

from genzoo.plots import density_panel, plot_metrics, points_panel, square_grid, trajectory_strip


def test_trajectory_strip_is_one_row_per_chain_from_the_first_state_to_the_last():
    chains, steps, frames = 3, 21, 5
    chain = 100 * torch.arange(chains).view(-1, 1, 1, 1)  # chain c's states hold 100 c + t
    states = (chain + torch.full((chains, 1, 2, 2), float(t)) for t in range(steps))
    strip = trajectory_strip(states, frames)
    assert strip.shape == (chains * frames, 1, 2, 2)
    rows = strip[:, 0, 0, 0].view(chains, frames)  # row-major: chain c's frames are strip[c * frames:(c + 1) * frames]
    assert rows[:, 0].tolist() == [0.0, 100.0, 200.0] and rows[:, -1].tolist() == [20.0, 120.0, 220.0]
    assert rows[0].tolist() == [0.0, 5.0, 10.0, 15.0, 20.0]  # evenly spaced


def test_square_grid_rows_run_from_the_bottom_so_a_view_is_an_image_with_origin_lower():
    grid = square_grid(2.0, 5)
    assert grid.shape == (25, 2)
    assert grid[0].tolist() == [-2.0, -2.0] and grid[1].tolist() == [-1.0, -2.0] and grid[-1].tolist() == [2.0, 2.0]
    image = grid.view(5, 5, 2)
    assert torch.equal(image[3, :, 1], torch.full((5,), 1.0)) and torch.equal(image[:, 3, 0], torch.full((5,), 1.0))


def test_panels_keep_fixed_equal_axes_when_samples_are_drawn_on_top():
    fig = Figure()
    left, right = fig.subplots(1, 2)
    points_panel(left, torch.randn(50, 2), 1.5)
    density_panel(right, torch.rand(7, 7), 1.5)
    right.scatter([5.0], [-5.0])  # a sample outside the box must not rescale the panel
    for ax in (left, right):
        assert ax.get_xlim() == (-1.5, 1.5) and ax.get_ylim() == (-1.5, 1.5) and ax.get_aspect() == 1.0


def test_plot_metrics_writes_a_figure_from_train_and_val_records(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "split": "train", "loss": 2.0}\n{"step": 2, "split": "val", "loss": 1.5}\n')
    assert plot_metrics(metrics, tmp_path / "loss.png").stat().st_size > 0
