"""Everything the report of a dataset shows, gathered as JSON-ready data and packed columns (no HTML here).

A dataset is read only through :class:`robustbench201.Dataset` (its manifest, its wide index per dataset, its
re-hash of every file); the published table of Jung et al. is the embedded table. Provenance comes first: the
manifest (name, creation, code version, schema), every file with its size and sha256, verified on reading, the
evaluation specs, the jobs and weights identities, and the notes on the columns.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from .._query import Dataset, default_dataset
from ..space import EDGES, NUM_ARCHS, OPS, ops_table, representative_indices
from ..tables.compare import PUBLISHED, compare
from ..tables.index import Index
from .columns import column_display
from .encode import Packer
from .figures import corruption_grid, cost_block, distributions, eps_panels, kendall_block, rows_of

__all__ = ["open_source", "dataset_report", "space_block"]


def open_source(source: str | Path) -> tuple[Dataset, str, bool]:
    """The :class:`Dataset` of a report source (``jung2023`` or a dataset directory), its label, and whether it is
    the embedded table."""
    if str(source) == PUBLISHED:
        return (
            default_dataset(),
            "jung2023: the published results of Jung et al. (ICLR 2023) in the embedded table",
            True,
        )
    return Dataset(source), str(Path(source).resolve()), False


def _verify(ds: Dataset) -> dict[str, Any]:
    """Re-hash every file the manifest lists (:meth:`Dataset.validate`); raises on the first mismatch."""
    t0 = time.perf_counter()
    m = ds.validate()
    return {"files": len(m.files), "bytes": sum(max(f.bytes, 0) for f in m.files),
            "seconds": round(time.perf_counter() - t0, 3), "ok": True}  # fmt: skip


def _specs(specs: dict[str, Any]) -> list[dict[str, Any]]:
    """The manifest's specs (hash -> EvalSpec as a dict, or its JSON text), by hash."""
    out = []
    for h, spec in sorted(specs.items()):
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError:
                spec = {"unreadable": spec[:200]}
        out.append({"hash": h, "spec": spec if isinstance(spec, dict) else {"unreadable": str(spec)[:200]}})
    return out


def _weights(idx: Index) -> list[dict[str, Any]]:
    """Per (source, weights, seeds) of the columns: how many columns and of which families."""
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for info in idx.info:
        seeds = ",".join(str(s) for s in info.get("seeds", []) or [])
        g = groups.setdefault((str(info.get("source", "")), str(info.get("weights", "")), seeds),
                              {"columns": 0, "families": []})  # fmt: skip
        g["columns"] += 1
        if info["family"] not in g["families"]:
            g["families"].append(info["family"])
    return [{"source": s, "weights": w, "seeds": seeds, **g} for (s, w, seeds), g in groups.items()]


def provenance(ds: Dataset, label: str, embedded: bool) -> dict[str, Any]:
    """The manifest, files, specs, jobs, weights and notes of ``ds``, with the result of re-hashing its files."""
    m = ds.manifest
    extra = dict(m.extra)
    return {
        "label": label,
        "embedded": embedded,
        "path": str(ds.path),
        "name": m.name,
        "created": m.created,
        "code_version": m.code_version,
        "schema_version": m.schema_version,
        "verified": _verify(ds),
        "files": [
            {
                "path": f.path,
                "kind": f.kind,
                "dataset": f.dataset,
                "bytes": f.bytes,
                "rows": f.rows,
                "arrays": f.arrays,
                "sha256": f.sha256,
            }
            for f in m.files
        ],  # fmt: skip
        "specs": _specs(dict(m.specs)),
        "jobs": [
            {
                "identity": j.get("identity", {}),
                "failures": len(j.get("failures") or {}),
                "shards": j.get("shards"),
                "out": j.get("out", ""),
            }
            for j in extra.get("jobs", [])
            if isinstance(j, dict)
        ],  # fmt: skip
        "weights": {d: _weights(ds.index(d)) for d in ds.datasets},
        "notes": dict(extra.get("column_notes", {})),
        "units": dict(extra.get("units", {})),
        "citations": list(extra.get("citations", [])),
    }


def space_block() -> tuple[dict[str, Any], tuple[str, int]]:
    """The search space for the page: per cell its six ops, which edges are live (a bitmask, 0 for dead cells)
    and its isomorphism-class representative; plus the op names, edges and drawing geometry."""
    from ..draw import EDGE_CURVATURE, NODE_POSITIONS, OP_LABELS
    from ..space import Arch

    ops = np.asarray(ops_table(), dtype=np.float64)
    live = np.array(
        [sum(1 << e for e, ok in enumerate(Arch.from_index(i).live_edges()) if ok) for i in range(NUM_ARCHS)],
        dtype=np.float64,
    )
    reps = np.asarray(representative_indices(), dtype=np.float64)
    p = Packer()
    enc = [p.add(ops[:, e]) for e in range(len(EDGES))]
    enc += [p.add(live), p.add(reps)]
    meta = {
        "n": NUM_ARCHS,
        "ops": list(OPS),
        "edges": [list(e) for e in EDGES],
        "enc": enc,
        "draw": {"positions": {str(k): list(v) for k, v in NODE_POSITIONS.items()},
                 "curvature": {f"{a}-{b}": c for (a, b), c in EDGE_CURVATURE.items()}, "labels": OP_LABELS},
    }  # fmt: skip
    return meta, p.finish()


def _columns(idx: Index) -> tuple[list[dict[str, Any]], tuple[str, int]]:
    """Per column its description and display, and the packed values (class-level columns over the 6466
    representatives, others over all cells); successive epsilons / severities of one key are stored as
    differences."""
    p = Packer()
    cols = []
    last: dict[tuple[Any, ...], str] = {}
    for j, (name, info) in enumerate(zip(idx.names, idx.info, strict=True)):
        rows = rows_of(idx, j)
        v = idx.take(rows, j)
        disp = column_display(idx, name)
        group = (info["family"], info["key"], info.get("semantics"), info.get("split"), info["measure"],
                 bool(idx.class_level[j]))  # fmt: skip
        enc = p.add(v, cid=name, delta_of=last.get(group), decimals=disp.decimals, digits=disp.digits)
        last[group] = name
        d = disp.to_dict()
        d.pop("name")
        cols.append({
            "name": name, "family": info["family"], "key": info["key"], "eps": info["epsilon"],
            "sev": info["severity"], "measure": info["measure"], "sem": info.get("semantics") or "",
            "split": info.get("split", "test"), "source": info.get("source", ""), "weights": info.get("weights", ""),
            "cl": bool(idx.class_level[j]), "n": int(np.isfinite(v).sum()), "show": d, "enc": enc,
        })  # fmt: skip
    return cols, p.finish()


def _comparison(ds: Dataset) -> dict[str, Any]:
    """``rb201 compare --to jung2023`` on the datasets both hold (:func:`robustbench201.tables.compare.compare`)."""
    pub = default_dataset()
    common = [d for d in ds.datasets if d in pub.datasets]
    if not common:
        return {"skipped": f"no dataset in common with jung2023 (this source holds {', '.join(ds.datasets)}; the "
                f"published table holds {', '.join(pub.datasets)})"}  # fmt: skip
    rep = compare(ds, pub, b_sources=(PUBLISHED,), worst=3, a_label=str(ds.path), b_label="jung2023")
    return rep.to_dict()


def dataset_report(source: str | Path) -> tuple[dict[str, Any], dict[str, tuple[str, int]]]:
    """The report data of a dataset directory or ``jung2023``: (JSON-ready data, packed blobs by name: base-85
    text and byte count, :meth:`.encode.Packer.finish`)."""
    ds, label, embedded = open_source(source)
    data: dict[str, Any] = {"kind": "dataset", "provenance": provenance(ds, label, embedded), "datasets": []}
    space, blob = space_block()
    data["space"] = space
    blobs = {"space": blob}
    for k, name in enumerate(ds.datasets):
        idx = ds.index(name)
        cols, blob = _columns(idx)
        blobs[f"ds{k}"] = blob
        data["datasets"].append({
            "name": name, "blob": f"ds{k}", "columns": cols,
            "cells": int(np.isfinite(idx.raw).any(axis=1).sum()),
            "classes": int(np.isfinite(idx.raw[idx.reps == np.arange(len(idx.reps))]).any(axis=1).sum()),
            "figures": {"distributions": distributions(idx), "eps": eps_panels(idx), "corruptions":
                        corruption_grid(idx), "kendall": kendall_block(idx), "cost": cost_block(idx)},
        })  # fmt: skip
    data["compare"] = None if embedded else _comparison(ds)
    return data, blobs
