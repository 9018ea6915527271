"""Starts the teaching notebooks' short runs as soon as the tests are collected.

Those runs are most of the suite's time, and their small tensors leave a second core mostly idle, so
two single-threaded kernels run beside the other tests rather than after them (docs/benchmarks.md,
"The test suite"). ``tests/test_notebooks.py`` defines the runs and checks their results.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

SHORT_RUN_TEST = "test_notebook_runs_top_to_bottom_in_short_mode"


@pytest.hookimpl(trylast=True)  # after -k and -m have deselected what will not run
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = [item for item in items if getattr(item, "originalname", "") == SHORT_RUN_TEST]
    if not selected:
        return
    module = selected[0].module
    names = {item.callspec.params["name"] for item in selected}
    config.notebook_pool = ThreadPoolExecutor(max_workers=2)
    config.notebook_runs = {
        name: config.notebook_pool.submit(module.execute_in_short_mode, name)
        for name in module.LONGEST_FIRST
        if name in names
    }


def pytest_sessionfinish(session: pytest.Session) -> None:
    pool = getattr(session.config, "notebook_pool", None)
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)
