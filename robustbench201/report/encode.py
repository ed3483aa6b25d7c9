"""Columns of numbers packed for the HTML report: small, exact where the data are decimals, decoded by the page.

A :class:`Packer` appends columns to one byte buffer, which is deflated (zlib; the page inflates it with the
browser's own ``DecompressionStream('deflate')``) and written into the page as base-85 text (:func:`b85`: five
characters per four bytes, an alphabet without ``<``, ``&``, quotes or ``/``, so it can sit in any HTML element).
Each column gets a small JSON description (``meta``) that says how to read its bytes back:

* ``{"e": "n"}``: every value is missing (NaN); no bytes.
* ``{"e": "i", "k": K, "o": O, "w": W, "d": J}``: decimals. ``value = q / 10**K`` with ``q = stored + O`` (plus
  the ``q`` of the J-th column of the buffer when ``d`` is not null: the column it is a difference to); stored as
  unsigned integers of ``W`` bytes. Exact: used only when ``q / 10**K`` gives back every float64 value bit for bit
  (IEEE division, the same in Python and JavaScript). Accuracies of 3 decimals, counts, indices.
* ``{"e": "u", "v": [...], "w": W}``: few distinct values: the float64 values in the JSON (exact through JSON) and
  one index of ``W`` bytes per row.
* ``{"e": "f", "x": [[row, value], ...]}``: anything else as float32, and for the rows where float32 would print
  differently from the float64 value at the column's display precision, the float64 value itself (``x``), so the
  page shows the same digits as the command line.

Every column may carry ``"m": true``: a bitmap of its missing rows (numpy ``packbits`` order) comes first. Integer
columns of more than one byte are byte-shuffled (all lowest bytes, then the next ...), which deflates better.
``b`` and ``l`` give the column's byte offset and length in the inflated buffer. No pandas, no torch.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Packer", "decimals_of", "unpack", "b85", "unb85", "B85_ALPHABET"]

_MAX_DECIMALS = 6
_MAX_DICT = 4096
#: RFC 1924's base-85 alphabet with ``&`` and ``<`` replaced by ``,`` and ``.``: nothing HTML treats specially.
B85_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%,()*+-;.=>?@^_`{|}~"


def b85(data: bytes) -> str:
    """``data`` as base-85 text: each 4 bytes (big-endian, the last group zero-padded) as 5 digits, most significant
    first, over :data:`B85_ALPHABET`. The reader needs the byte count to drop the padding."""
    pad = -len(data) % 4
    words = np.frombuffer(data + b"\0" * pad, dtype=">u4").astype(np.int64)
    digits = np.empty((words.size, 5), dtype=np.int64)
    for k in range(4, -1, -1):
        words, digits[:, k] = np.divmod(words, 85)
    table = np.frombuffer(B85_ALPHABET.encode("ascii"), dtype=np.uint8)
    return table[digits.reshape(-1)].tobytes().decode("ascii")


def unb85(text: str, size: int) -> bytes:
    """Inverse of :func:`b85` (``size``: the byte count before padding)."""
    lookup = np.full(256, -1, dtype=np.int64)
    lookup[np.frombuffer(B85_ALPHABET.encode("ascii"), dtype=np.uint8)] = np.arange(85)
    d = lookup[np.frombuffer(text.encode("ascii"), dtype=np.uint8)].reshape(-1, 5)
    if (d < 0).any():
        raise ValueError("not base-85 text of the report's alphabet")
    words = (((d[:, 0] * 85 + d[:, 1]) * 85 + d[:, 2]) * 85 + d[:, 3]) * 85 + d[:, 4]
    return words.astype(">u4").tobytes()[:size]


def decimals_of(values: np.ndarray) -> int | None:
    """Smallest K in 0..6 with ``round(v * 10**K) / 10**K == v`` for every finite value (None if there is none, or
    if the integers would not fit in 32 bits)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return 0
    for k in range(_MAX_DECIMALS + 1):
        s = 10.0**k
        q = np.round(finite * s)
        if np.abs(q).max() >= 2**31:
            return None
        if np.array_equal(q / s, finite):
            return k
    return None


def _width(span: int) -> int:
    return 1 if span < 2**8 else 2 if span < 2**16 else 4


def _shuffled(a: np.ndarray) -> bytes:
    if a.dtype.itemsize == 1:
        return a.tobytes()
    return a.astype(a.dtype.newbyteorder("<")).view(np.uint8).reshape(-1, a.dtype.itemsize).T.tobytes()


def _unshuffled(raw: bytes, n: int, width: int) -> np.ndarray:
    b = np.frombuffer(raw, dtype=np.uint8)
    return b.reshape(width, n).T.copy().view(f"<u{width}").reshape(n)


def _text(value: float, decimals: int | None, digits: int) -> str:
    """A value as the page prints it (fixed decimals, or significant digits) for the float32 check."""
    if decimals is not None:
        return f"{value:.{decimals}f}"
    return f"{value:.{max(digits - 1, 0)}e}"


@dataclass
class Packer:
    """Appends columns; :meth:`finish` gives the base64 text of the deflated buffer."""

    parts: list[bytes] = field(default_factory=list)
    size: int = 0
    count: int = 0
    _ints: dict[str, tuple[int, np.ndarray, int]] = field(default_factory=dict)  # id -> (decimals, q, position)

    def _append(self, meta: dict[str, Any], chunks: list[bytes]) -> dict[str, Any]:
        data = b"".join(chunks)
        meta["b"], meta["l"] = self.size, len(data)
        self.parts.append(data)
        self.size += len(data)
        self.count += 1
        return meta

    def add(
        self,
        values: np.ndarray,
        *,
        cid: str = "",
        delta_of: str | None = None,
        decimals: int | None = None,
        digits: int = 4,
    ) -> dict[str, Any]:
        """Pack one float64 column and return its meta. ``cid`` names it for a later ``delta_of`` (the values of a
        column with the same decimals, e.g. the previous epsilon of the same attack, which it is stored as a
        difference to when that is smaller). ``decimals`` / ``digits``: the display precision of the column (for
        the float32 check)."""
        v = np.asarray(values, dtype=np.float64)
        missing = np.isnan(v)
        if missing.all():
            return self._append({"e": "n"}, [])
        meta: dict[str, Any] = {}
        chunks: list[bytes] = []
        if missing.any():
            meta["m"] = True
            chunks.append(np.packbits(missing).tobytes())
        k = decimals_of(v)
        if k is not None:
            q = np.where(missing, 0.0, np.round(np.nan_to_num(v) * 10.0**k)).astype(np.int64)
            stored, ref = q, None
            if delta_of is not None and delta_of in self._ints and self._ints[delta_of][0] == k:
                d = q - self._ints[delta_of][1]
                if np.ptp(d) < np.ptp(q):
                    stored, ref = d, self._ints[delta_of][2]
            lo = int(stored.min())
            span = int(stored.max()) - lo
            if span < 2**32:
                width = _width(span)
                if cid:
                    self._ints[cid] = (k, q, self.count)
                meta.update({"e": "i", "k": k, "o": lo, "w": width, "d": ref})
                chunks.append(_shuffled((stored - lo).astype(f"<u{width}")))
                return self._append(meta, chunks)
        finite = v[~missing]
        uniq = np.unique(finite)
        if len(uniq) <= _MAX_DICT and len(uniq) * 8 < finite.size:
            width = _width(len(uniq) - 1)
            pos = np.searchsorted(uniq, np.where(missing, uniq[0], v))
            meta.update({"e": "u", "v": [float(x) for x in uniq], "w": width})
            chunks.append(_shuffled(pos.astype(f"<u{width}")))
            return self._append(meta, chunks)
        f32 = np.where(missing, 0.0, v).astype("<f4")
        back = f32.astype(np.float64)
        rows = np.flatnonzero(~missing & (back != v))
        exact = [
            [int(r), float(v[r])]
            for r in rows.tolist()
            if _text(float(v[r]), decimals, digits) != _text(float(back[r]), decimals, digits)
        ]
        meta.update({"e": "f", "x": exact})
        chunks.append(f32.tobytes())
        return self._append(meta, chunks)

    def finish(self) -> tuple[str, int]:
        """The deflated buffer (level 9) as base-85 text, and its byte count."""
        packed = zlib.compress(b"".join(self.parts), 9)
        return b85(packed), len(packed)


def unpack(text: str, size: int, metas: list[dict[str, Any]], rows: int | list[int]) -> list[np.ndarray]:
    """Python inverse of :class:`Packer` (what the page does), for tests: the columns (``rows``: the row count of
    every column, or one per column), float64, with the float32 columns' exceptions applied; ``text`` and ``size``
    as :meth:`Packer.finish` gives them."""
    buf = zlib.decompress(unb85(text, size))
    qs: list[np.ndarray | None] = []
    out: list[np.ndarray] = []
    for j, m in enumerate(metas):
        n = rows[j] if isinstance(rows, list) else rows
        raw = buf[m["b"] : m["b"] + m["l"]]
        if m["e"] == "n":
            out.append(np.full(n, math.nan))
            qs.append(None)
            continue
        pos = 0
        missing = np.zeros(n, dtype=bool)
        if m.get("m"):
            nb = (n + 7) // 8
            missing = np.unpackbits(np.frombuffer(raw[:nb], dtype=np.uint8))[:n].astype(bool)
            pos = nb
        body = raw[pos:]
        if m["e"] == "i":
            q = _unshuffled(body, n, m["w"]).astype(np.int64) + m["o"]
            if m.get("d") is not None:
                q = q + qs[m["d"]]  # type: ignore[operator]
            qs.append(q)
            vals = q / 10.0 ** m["k"]
        elif m["e"] == "u":
            vals = np.asarray(m["v"], dtype=np.float64)[_unshuffled(body, n, m["w"]).astype(np.int64)]
            qs.append(None)
        else:
            vals = np.frombuffer(body, dtype="<f4").astype(np.float64)
            for r, x in m["x"]:
                vals[r] = x
            qs.append(None)
        out.append(np.where(missing, math.nan, vals))
    return out
