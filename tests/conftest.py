"""Run under pytest-xdist (the README's ``python -m pytest -n auto``), each worker takes an equal share of
the cores for torch: two workers on two cores would otherwise start two threads each and stall on each
other. The notebook kernels that the tests start inherit the share through OMP_NUM_THREADS."""

import os

import torch


def pytest_configure(config) -> None:
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")  # set in each xdist worker, not in a plain run
    if workers:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = str(threads)
