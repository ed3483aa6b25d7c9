"""Write the shipped download registry (``data/registry.json``) from ``../shared/data``.

Entry ``jung2023-original``: the published accuracy files of Jung, Lukasik & Keuper (ICLR 2023) in their original
layout (``meta.json``, ``<dataset>/<key>_accuracy.json``, ``cifar10/clean_cm.json``), at the public copies named in
``../shared/data/nb201-robustness/SOURCE.md`` (raw URLs of fixed commits, so the bytes never change), with the size
and sha256 of each file. ``rb201 download jung2023-original`` fetches and verifies them; ``rb201 import-jung``
turns the folder into a dataset directory. Usage::

    python scripts/build_registry.py [--shared ../shared/data] [--out data/registry.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAME = "jung2023-original"
DESCRIPTION = (
    "Jung, Lukasik, Keuper (ICLR 2023) published robustness accuracies of the 6466 NB201 cells, original layout "
    "(meta.json + <dataset>/<key>_accuracy.json, cifar10/clean_cm.json); import with 'rb201 import-jung'. The "
    "embedded table already holds these numbers."
)
_ROW = re.compile(r"^\| `(?P<file>[^`]+)` \| (?P<bytes>\d+) \| `[0-9a-f]+` \| (?P<repo>[\w.-]+/[\w.-]+) \| "
                  r"`(?P<commit>[0-9a-f]{40})` \| `(?P<path>[^`]+)` \|")  # fmt: skip


def entries(shared: Path) -> list[dict[str, object]]:
    """One registry file per row of SOURCE.md, checked against the file in ``shared``."""
    root = shared / "nb201-robustness"
    out = []
    for line in (root / "SOURCE.md").read_text().splitlines():
        m = _ROW.match(line)
        if not m:
            continue
        local = root / m.group("file")
        data = local.read_bytes()
        if len(data) != int(m.group("bytes")):
            raise SystemExit(f"{local} has {len(data)} bytes; SOURCE.md says {m.group('bytes')}")
        url = f"https://raw.githubusercontent.com/{m.group('repo')}/{m.group('commit')}/{m.group('path')}"
        out.append({"name": m.group("file"), "url": url, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if not out:
        raise SystemExit(f"no file rows found in {root / 'SOURCE.md'}")
    return sorted(out, key=lambda e: str(e["name"]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=ROOT / "embedded" / "registry.json")
    a = p.parse_args(argv)
    files = entries(a.shared)
    registry = {
        "format": "rb201-registry",
        "version": 1,
        "datasets": {
            NAME: {
                "base_url": "https://raw.githubusercontent.com/nokavietnam/MAPR2024-EAR-ENAS/"
                "6081bfa8f2c10987902451afc4b2869183538f36/data/robustness-data/",
                "description": DESCRIPTION,
                "files": files,
            }
        },
    }
    a.out.write_text(json.dumps(registry, indent=2, sort_keys=True) + "\n")
    print(f"wrote {a.out}: {NAME} with {len(files)} files, {sum(int(f['size']) for f in files)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
