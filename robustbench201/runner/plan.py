"""Which architectures a job evaluates: range and list parsing, isomorphism filtering, splitting into shards.

No torch import. Ranges are half-open ``START:END`` over official NB201 indices 0..15625.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import InvalidArchError, Rb201Error
from ..space import NUM_ARCHS, Arch, representative_indices


class PlanError(Rb201Error):
    """A bad architecture range, list or shard count."""


def parse_arch_range(text: str) -> tuple[int, int]:
    """``"0:128" -> (0, 128)``: a half-open range of NB201 indices with ``0 <= START < END <= 15625``."""
    parts = str(text).strip().split(":")
    if len(parts) != 2:
        raise PlanError(f"architecture range {text!r} is not START:END (half-open, e.g. '0:128'; allowed 0..15625)")
    try:
        start = int(parts[0]) if parts[0].strip() else 0
        end = int(parts[1]) if parts[1].strip() else NUM_ARCHS
    except ValueError:
        msg = f"architecture range {text!r} has a non-integer bound; expected START:END like '0:128'"
        raise PlanError(msg) from None
    if not 0 <= start <= NUM_ARCHS or not 0 <= end <= NUM_ARCHS:
        raise PlanError(f"architecture range {text!r} is out of bounds; allowed: 0 <= START < END <= {NUM_ARCHS}")
    if start >= end:
        raise PlanError(f"architecture range {text!r} is empty or reversed; START must be smaller than END")
    return start, end


def parse_arch_ranges(texts: Iterable[str]) -> list[tuple[int, int]]:
    """Several ranges (each ``START:END``, also comma-separated); overlapping ranges are refused."""
    ranges = []
    for text in texts:
        ranges.extend(parse_arch_range(t) for t in str(text).split(",") if t.strip())
    ranges.sort()
    for (a0, a1), (b0, b1) in zip(ranges, ranges[1:]):
        if b0 < a1:
            raise PlanError(f"architecture ranges {a0}:{a1} and {b0}:{b1} overlap; give disjoint ranges")
    return ranges


def parse_arch_list(values: Iterable[object]) -> list[int]:
    """Architectures given as indices or NB201 strings (comma-separated indices allowed) -> sorted unique indices."""
    out: set[int] = set()
    for value in values:
        items = [value]
        if isinstance(value, str) and "|" not in value:
            items = [v for v in value.split(",") if v.strip()]
        for item in items:
            try:
                out.add(Arch.parse(item).index)
            except InvalidArchError as exc:
                raise PlanError(str(exc)) from None
    return sorted(out)


def select_archs(
    ranges: Sequence[tuple[int, int]] = (), archs: Sequence[int] = (), unique_only: bool = True
) -> list[int]:
    """Sorted indices of the union of ``ranges`` and ``archs``; with ``unique_only`` only isomorphism
    representatives are kept (6466 of 15625 over the whole space)."""
    chosen: set[int] = set(archs)
    for start, end in ranges:
        chosen.update(range(start, end))
    if unique_only:
        reps = representative_indices()
        chosen = {i for i in chosen if reps[i] == i}
    return sorted(chosen)


def split_range(start: int, end: int, shards: int, unique_only: bool = True) -> list[tuple[int, int]]:
    """Split ``start:end`` into ``shards`` contiguous sub-ranges holding about the same number of architectures
    to evaluate (counted after the isomorphism filter when ``unique_only``). Empty sub-ranges are dropped."""
    if shards < 1:
        raise PlanError(f"number of shards {shards} must be >= 1")
    todo = select_archs([(start, end)], unique_only=unique_only)
    if not todo:
        raise PlanError(f"range {start}:{end} holds no architecture to evaluate")
    shards = min(shards, len(todo))
    bounds = [start]
    for k in range(1, shards):
        bounds.append(todo[(k * len(todo)) // shards])
    bounds.append(end)
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if a < b]


def format_indices(indices: Iterable[int], limit: int = 12) -> str:
    """Compact text for a set of indices: ``'0-99, 105, 200-210 (+3 more runs)'``."""
    runs: list[tuple[int, int]] = []
    for i in sorted(set(indices)):
        if runs and i == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    parts = [f"{a}" if a == b else f"{a}-{b}" for a, b in runs[:limit]]
    more = f" (+{len(runs) - limit} more runs)" if len(runs) > limit else ""
    return ", ".join(parts) + more
