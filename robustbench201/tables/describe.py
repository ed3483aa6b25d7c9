"""What a dataset directory holds, in a few lines (``rb201 status DATASET``): its name and provenance, and per
dataset the classes that have values, the columns by family, the attack semantics and the epsilons and severities.
No torch."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from ..store.dataset import Manifest
from ..store.schema import format_eps
from .index import Index


class DescribedSource(Protocol):
    """A dataset as :func:`describe` reads it (:class:`robustbench201.Dataset` is one)."""

    path: Path
    manifest: Manifest

    @property
    def datasets(self) -> tuple[str, ...]: ...

    def index(self, dataset: str) -> Index: ...


def describe(src: DescribedSource) -> dict[str, Any]:
    """A JSON-ready description of ``src`` (see the module docstring)."""
    m = src.manifest
    specs = [{"hash": h, "name": s.get("name", ""), "semantics": s.get("semantics", "")} for h, s in m.specs.items()]
    out: dict[str, Any] = {
        "path": str(src.path),
        "name": m.name,
        "created": m.created,
        "code_version": m.code_version,
        "schema_version": m.schema_version,
        "files": len(m.files),
        "bytes": sum(max(f.bytes, 0) for f in m.files),
        "specs": specs,
        "datasets": [],
    }
    for ds in src.datasets:
        idx = src.index(ds)
        families: dict[str, int] = {}
        for i in idx.info:
            families[i["family"]] = families.get(i["family"], 0) + 1
        attacks = sorted({i["key"] for i in idx.info if i["family"] == "adversarial" and i["epsilon"] is not None})
        epsilons = sorted({i["epsilon"] for i in idx.info if i["family"] == "adversarial" and i["epsilon"]})
        severities = sorted({i["severity"] for i in idx.info if i["family"] == "corruption" and i["severity"]})
        covered = idx.covered_classes()
        out["datasets"].append(
            {
                "dataset": ds,
                "classes": len(covered),
                "of_classes": idx.n_classes,
                "representatives": covered.tolist() if len(covered) <= 20 else None,
                "columns": len(idx.names),
                "families": families,
                "attacks": attacks,
                "epsilons": epsilons,
                "severities": severities,
                "semantics": idx.semantics_note(),
            }
        )
    return out


def describe_lines(d: dict[str, Any]) -> list[str]:
    """:func:`describe`'s dict as text."""
    size = d["bytes"] / 1e6
    out = [
        f"dataset directory {d['path']} ({d['name']!r}, created {d['created']}, rb201 {d['code_version']}, "
        f"schema v{d['schema_version']}): {d['files']} files, {size:.1f} MB",
    ]
    for s in d["specs"]:
        out.append(f"  spec {s['hash']}: preset {s['name'] or '-'}, {s['semantics'] or '-'} semantics")
    for x in d["datasets"]:
        reps = f" ({', '.join(map(str, x['representatives']))})" if x["representatives"] else ""
        out.append(f"{x['dataset']}: {x['classes']} of {x['of_classes']} classes have values{reps}; {x['columns']} "
                   "columns: " + ", ".join(f"{n} {f}" for f, n in x["families"].items()))  # fmt: skip
        if x["attacks"]:
            out.append(f"  attacks {', '.join(x['attacks'])} at eps {', '.join(format_eps(e) for e in x['epsilons'])}"
                       " (units of 1/255)")  # fmt: skip
        if x["severities"]:
            out.append(f"  corruptions at severities {', '.join(map(str, x['severities']))}")
        if x["semantics"]:
            out.append(f"  {x['semantics']}")
    return out
