"""The canonical Arch: encodings, official index order, isomorphism classes, dead cells, bad input."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from published import fixture_arrays, fixture_json

from robustbench201.errors import InvalidArchError
from robustbench201.space import (
    NUM_ARCHS,
    NUM_UNIQUE,
    OPS,
    Arch,
    all_archs,
    all_ops,
    representative_indices,
    unique_indices,
)

SHA256_STRINGS = "83abc799e45cf34e9d2163654668ab998b9a54d01c39e72ca1f71f2cdf356d84"


def test_index_order_matches_the_published_sha256():
    joined = "\n".join(a.string for a in all_archs())
    assert hashlib.sha256(joined.encode()).hexdigest() == SHA256_STRINGS


def test_known_indices():
    assert Arch.from_index(0).string == (
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
    )
    assert Arch.from_index(1462).ops == (3,) * 6


def test_round_trips_over_all_15625():
    seen_ops = set()
    for i in range(NUM_ARCHS):
        a = Arch.from_index(i)
        assert a.index == i
        assert Arch.from_string(a.string) == a
        assert Arch.from_ops(a.ops) == a
        assert Arch.parse(a.string) is not None and Arch.parse(list(a.ops)) == a and Arch.parse(str(i)) == a
        seen_ops.add(a.ops)
    assert seen_ops == set(all_ops())


def test_isomorphism_partition_and_representatives_equal_meta_json(shared_data):
    meta = json.loads((shared_data / "nb201-robustness" / "meta.json").read_text())
    reps = representative_indices()
    strings = [meta["ids"][str(i)]["nb201-string"] for i in range(NUM_ARCHS)]
    assert strings == [Arch.from_index(i).string for i in range(NUM_ARCHS)]
    assert [int(meta["ids"][str(i)]["isomorph"]) for i in range(NUM_ARCHS)] == list(reps)
    assert len(unique_indices()) == NUM_UNIQUE == len(set(reps))
    smallest: dict[int, int] = {}
    for i, r in enumerate(reps):
        smallest.setdefault(r, i)  # indices ascend: the first member met is the smallest of its class
    assert all(reps[r] == r and smallest[r] == r for r in unique_indices())


def test_isomorphism_classes_equal_the_published_ones():
    """The published ``isomorph`` of all 15625 ids of ``meta.json`` (Jung et al.) and the SHA-256 of its joined
    strings, from ``fixtures/nb201-robustness/``. The full-data test above compares the strings one by one; here
    they are compared through their hash."""
    summary = fixture_json("nb201-robustness/summary.json")
    isomorph = fixture_arrays("nb201-robustness/summary.npz")["isomorph"]
    assert summary["strings_sha256"] == SHA256_STRINGS
    joined = "\n".join(Arch.from_index(i).string for i in range(NUM_ARCHS))
    assert hashlib.sha256(joined.encode()).hexdigest() == summary["strings_sha256"]
    reps = representative_indices()
    assert isomorph.shape == (NUM_ARCHS,) and isomorph.tolist() == list(reps)
    assert len(unique_indices()) == NUM_UNIQUE == len(set(reps)) == summary["representatives"] == 6466
    published_reps = np.flatnonzero(isomorph == np.arange(NUM_ARCHS))
    assert published_reps.tolist() == list(unique_indices())


def test_representative_is_the_smallest_index_in_its_class():
    classes: dict[str, list[int]] = {}
    for i in range(NUM_ARCHS):
        classes.setdefault(Arch.from_index(i).iso_key, []).append(i)
    assert len(classes) == NUM_UNIQUE
    for members in classes.values():
        for m in members:
            assert Arch.from_index(m).representative.index == min(members)


def test_iso_partition_matches_nats_bench_unique_strings(shared_data):
    import csv

    with open(shared_data / "nats-bench-landscape" / "nats_bench.csv") as fh:
        rows = list(csv.DictReader(fh))
    by_unique: dict[str, set[int]] = {}
    by_ours: dict[str, set[int]] = {}
    for i, row in enumerate(rows):
        by_unique.setdefault(row["UniqueString"], set()).add(i)
        by_ours.setdefault(Arch.from_index(i).iso_key, set()).add(i)
    assert sorted(map(sorted, by_unique.values())) == sorted(map(sorted, by_ours.values()))


def test_iso_partition_matches_the_nats_bench_unique_string_labels():
    """The NATS-Bench ``UniqueString`` partition as per-index labels (the smallest index with the same unique string,
    from ``fixtures/nats-bench-landscape/``): the same partition as the full-data test above, without the strings."""
    summary = fixture_json("nats-bench-landscape/summary.json")
    label = fixture_arrays("nats-bench-landscape/unique.npz")["unique_label"]
    joined = "\n".join(Arch.from_index(i).string for i in range(NUM_ARCHS))
    assert hashlib.sha256(joined.encode()).hexdigest() == summary["architecture_strings_sha256"]
    assert label.shape == (NUM_ARCHS,) and summary["unique_classes"] == len(set(label.tolist())) == NUM_UNIQUE
    by_unique: dict[int, set[int]] = {}
    by_ours: dict[str, set[int]] = {}
    for i in range(NUM_ARCHS):
        by_unique.setdefault(int(label[i]), set()).add(i)
        by_ours.setdefault(Arch.from_index(i).iso_key, set()).add(i)
    assert sorted(map(sorted, by_unique.values())) == sorted(map(sorted, by_ours.values()))


def test_dead_cells():
    dead = [a for a in all_archs() if a.is_dead]
    assert len(dead) == 341
    assert all(a.iso_key == "#" or a.is_dead for a in dead)
    assert Arch.from_string("|none~0|+|none~0|nor_conv_3x3~1|+|none~0|nor_conv_3x3~1|skip_connect~2|").is_dead
    assert not Arch.from_index(1462).is_dead


def test_live_edges_drop_edges_that_cannot_reach_the_output():
    a = Arch.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    assert a.live_edges() == (False, True, False, True, False, True)
    assert all(not e for e in Arch.from_ops((0, 0, 0, 0, 0, 0)).live_edges())


def test_arch_is_immutable_and_hashable():
    a = Arch.from_index(5)
    with pytest.raises(AttributeError):
        a.ops = (0,) * 6  # type: ignore[misc]
    assert {a: 1}[Arch.from_ops(a.ops)] == 1


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("|nor_conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown op 'nor_conv_5x5'"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "has 1 incoming edges; expected 2"),
        ("|none~0|+|none~0|none~1|", "expected 3"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "source node 1; expected 0"),
        ("|none0|+|none~0|none~1|+|none~0|none~1|none~2|", "not of the form 'op~i'"),
        (15625, "out of range; allowed: 0..15624"),
        (-1, "out of range"),
        ((0, 1, 2), "needs 6 entries"),
        ((0, 1, 2, 3, 4, 5), "op index 5"),
        ("banana", "cannot read an architecture"),
        (3.5, "cannot read an architecture"),
        (True, "cannot read"),
    ],
)
def test_bad_input_gives_one_clear_error(value, fragment):
    with pytest.raises(InvalidArchError, match=None) as info:
        Arch.parse(value)
    assert fragment in str(info.value)


def test_counts_and_names():
    a = Arch.from_index(1462)
    assert a.count("nor_conv_3x3") == 6 and a.num_conv_edges == 6
    assert a.op_names == ("nor_conv_3x3",) * 6
    assert OPS.index("avg_pool_3x3") == 4
    with pytest.raises(InvalidArchError, match="allowed: none, skip_connect"):
        a.count("conv")
