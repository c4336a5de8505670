"""Distributed connected components agree with scipy's single-process answer."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components

from dataengine.dedup.components import connected_components
from dataengine.dedup.raytools import phase2_context

pytestmark = pytest.mark.ray


def _edges_dataset(ray, x: np.ndarray, y: np.ndarray):
    return ray.data.from_items([{"x": int(a), "y": int(b)} for a, b in zip(x, y, strict=True)])


def test_components_match_scipy_on_random_graph_with_long_chain(ray_session):
    rng = np.random.default_rng(0)
    n = 2000
    x, y = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    chain = np.arange(500, 700)  # diameter 199: needs many propagation rounds
    x, y = np.concatenate([x, chain[:-1]]), np.concatenate([y, chain[1:]])
    with phase2_context():
        got = connected_components(_edges_dataset(ray_session, x, y), parts=2).to_pandas()

    _, label = scipy_components(coo_matrix((np.ones(len(x)), (x, y)), shape=(n, n)), directed=False)
    smallest = {}
    for node, lab in enumerate(label):
        smallest.setdefault(lab, node)
    nodes = np.unique(np.concatenate([x, y]))
    assert sorted(got["_uid"].tolist()) == nodes.tolist()
    expected = {int(v): smallest[label[v]] for v in nodes}
    assert dict(zip(got["_uid"].tolist(), got["_comp"].tolist(), strict=True)) == expected


def test_components_of_negative_ids_and_self_loops(ray_session):
    x = np.array([-5, 3, 3, 10, 11])
    y = np.array([3, 4, 3, 11, 12])
    with phase2_context():
        got = connected_components(_edges_dataset(ray_session, x, y), parts=3).to_pandas()
    assert dict(zip(got["_uid"].tolist(), got["_comp"].tolist(), strict=True)) == {
        -5: -5,
        3: -5,
        4: -5,
        10: 10,
        11: 10,
        12: 10,
    }
