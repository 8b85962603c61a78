"""A node's `resources` and `tags`, and a pipeline's `executor`: parsed, checked, written back in order."""

from __future__ import annotations

import pytest

from server.engine.errors import ValidationError
from server.engine.model import load_pipeline, parse_size, to_document
from tests.engine.util import shell_node, write_pipeline


def test_sizes():
    assert parse_size("4GiB") == 4 * 2 ** 30
    assert parse_size("512 MB") == 512 * 1000 ** 2
    assert parse_size("2G") == 2 * 1000 ** 3
    assert parse_size(1024) == 1024
    for bad in ("lots", "-1", True, "4 parsecs"):
        assert parse_size(bad) is None


def test_resources_tags_and_executor_round_trip_in_a_stable_order(workspace):
    n, f = shell_node("a", "echo '[]' > out.json\n", tags=["gpu", "ssd", "gpu"],
                      resources={"memory": "4GiB", "cpu": 2})
    path = write_pipeline(workspace, {"version": 1, "name": "x", "executor": "dask", "nodes": [n]}, f)
    p = load_pipeline(path, workspace=workspace)
    node = p.nodes[0]
    assert (p.executor, node.resources, node.tags) == ("dask", {"memory": "4GiB", "cpu": 2}, ["gpu", "ssd"])
    doc = to_document(p)
    assert list(doc)[:3] == ["version", "name", "executor"]
    keys = list(doc["nodes"][0])
    assert keys.index("env" if "env" in keys else "outputs") < keys.index("resources") < keys.index("tags")


@pytest.mark.parametrize("extra, words", [
    ({"resources": {"memory": "lots"}}, ["`resources.memory`", "size"]),
    ({"resources": {"cpu": 0}}, ["`resources.cpu`", "positive"]),
    ({"resources": ["cpu"]}, ["`resources` must be a mapping"]),
    ({"tags": "gpu"}, ["`tags` must be a list"]),
    ({"tags": ["has space"]}, ["`tags` must be a list"]),
])
def test_bad_resources_and_tags_name_the_node(workspace, extra, words):
    n, f = shell_node("needy", "true\n", **extra)
    path = write_pipeline(workspace, {"version": 1, "name": "x", "nodes": [n]}, f)
    with pytest.raises(ValidationError) as err:
        load_pipeline(path, workspace=workspace)
    text = " ".join(str(p) for p in err.value.problems)
    assert "needy" in text and all(w in text for w in words), text


def test_an_unknown_executor_is_a_problem(workspace):
    n, f = shell_node("a", "true\n")
    path = write_pipeline(workspace, {"version": 1, "name": "x", "executor": "ray", "nodes": [n]}, f)
    with pytest.raises(ValidationError) as err:
        load_pipeline(path, workspace=workspace)
    assert any("executor" in str(p) and "ray" in str(p) for p in err.value.problems)
