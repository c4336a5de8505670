"""Survivor rules: highest quality, longest, earliest; exact vs MinHash reasons inside one component."""

from __future__ import annotations

import numpy as np

from dataengine.dedup.survivors import decide_components, priority


def _component(rule: str) -> dict[str, np.ndarray]:
    quality = np.array([0.2, 0.9, 0.5, np.nan])
    length = np.array([100, 50, 400, 900])
    uid = np.array([10, 11, 12, 13], dtype=np.int64)
    return {
        "_uid": uid,
        "_comp": np.full(4, 10, dtype=np.int64),
        "id": np.array(["a", "b", "c", "d"], dtype=object),
        "_prio": priority(rule, quality, length),
        "_exact_best": np.array([10, 11, 12, 12], dtype=np.int64),  # d is an exact copy of c
    }


def test_quality_rule_keeps_highest_quality_and_names_it():
    out = decide_components(_component("quality"))
    survivor = out["_uid"][[r == "" for r in out["_reject"]]]
    assert survivor.tolist() == [11]
    reasons = dict(zip(out["_uid"].tolist(), out["_reject"].tolist(), strict=True))
    assert reasons == {10: "dedup:minhash", 11: "", 12: "dedup:minhash", 13: "dedup:exact"}
    assert set(out["duplicate_of"][out["_uid"] != 11]) == {"b"}
    assert set(out["dup_cluster_size"].tolist()) == {4}


def test_longest_and_earliest_rules():
    longest = decide_components(_component("longest"))
    assert longest["_uid"][[r == "" for r in longest["_reject"]]].tolist() == [13]
    earliest = decide_components(_component("earliest"))
    assert earliest["_uid"][[r == "" for r in earliest["_reject"]]].tolist() == [10]


def test_external_member_from_earlier_batch_wins_and_is_not_written():
    comp = _component("quality")
    comp = {k: np.concatenate([v, v[:1]]) for k, v in comp.items()}
    comp["_uid"][-1], comp["_exact_best"][-1], comp["id"][-1] = -7, -7, "old-doc"
    comp["_prio"][-1] = -np.inf
    comp["_comp"][:] = -7
    out = decide_components(comp)
    assert -7 not in out["_uid"].tolist()
    assert all(r != "" for r in out["_reject"]) and set(out["duplicate_of"]) == {"old-doc"}
