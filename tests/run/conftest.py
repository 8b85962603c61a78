"""A real Dask cluster on 127.0.0.1 (a scheduler and two workers, each in its own session), started by
`pipeloom cluster`'s own code and stopped by pid."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import require


def _start(folder, worker_tags=(("one",), ("two",))):
    from server.engine.run.cluster import start_cluster

    tag = os.environ.pop("PIPELOOM_TEST_TAG", None)  # the cluster outlives a test: it must not carry its tag
    try:
        return start_cluster(folder, workers=2, threads=2, worker_tags=[list(t) for t in worker_tags])
    finally:
        if tag is not None:
            os.environ["PIPELOOM_TEST_TAG"] = tag


def have_dask() -> bool:
    try:
        import distributed  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The address of a two-worker cluster shared by a module's tests; worker-1 offers tag `one`,
    worker-2 tag `two`."""
    require(have_dask(), "dask[distributed] is not installed (pip install 'pipeloom[dask]')")
    from server.engine.run.cluster import stop_cluster

    folder = tmp_path_factory.mktemp("cluster")
    state = _start(folder)
    state["folder"] = folder
    yield state
    stop_cluster(folder)


@pytest.fixture
def own_cluster(tmp_path):
    """A two-worker cluster for one test (one that kills a worker)."""
    require(have_dask(), "dask[distributed] is not installed (pip install 'pipeloom[dask]')")
    from server.engine.run.cluster import stop_cluster

    folder = tmp_path / "cluster"
    folder.mkdir()
    state = _start(folder)
    state["folder"] = folder
    yield state
    stop_cluster(folder)


def node_processes(run_id: str) -> list[int]:
    """Live processes of any node of `run_id`, on any worker of this machine."""
    from server.engine.process import find_marked

    return find_marked(run_id + "/", prefix=True)


def wait_until(check, timeout: float = 20.0, every: float = 0.05):
    """Poll `check` until it is true; its last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    return value
