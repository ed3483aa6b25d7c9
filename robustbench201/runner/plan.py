"""Which architectures a job evaluates: range and list parsing, isomorphism filtering, splitting into shards.

No torch import. Ranges are half-open ``START:END`` over official NB201 indices 0..15625.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import InvalidArchError, RequestError
from ..space import NUM_ARCHS, Arch, representative_indices


class PlanError(RequestError):
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


@dataclass(frozen=True)
class PlannedShard:
    """Architectures one shard evaluates; ``bounds`` is the range it is named after (None for a list)."""

    archs: tuple[int, ...]
    bounds: tuple[int, int] | None = None


def representatives_of(archs: Iterable[int]) -> tuple[list[int], list[str]]:
    """Map listed cells to their isomorphism-class representatives; returns (sorted unique indices, notes)."""
    reps = representative_indices()
    notes = [
        f"arch {i} is isomorphic to representative {reps[i]}: evaluating {reps[i]} ({{unique_only}} keeps {i})"
        for i in archs
        if reps[i] != i
    ]
    return sorted({reps[i] for i in archs}), notes


def plan_evaluate(
    ranges: Sequence[tuple[int, int]],
    listed: Sequence[int] = (),
    unique_only: bool = True,
    present: set[int] | None = None,
) -> tuple[list[PlannedShard], list[str]]:
    """Shards of ``rb201 evaluate``: one per range and one for the listed cells; with ``present`` (the cells a
    merged dataset already holds, ``--missing-from``) one list shard of the cells of the ranges and list (the whole
    space when neither is given) that are not present. Returns (shards, notes for the user)."""
    notes: list[str] = []
    if unique_only and listed:
        listed, notes = representatives_of(listed)
    if present is not None:
        wanted = set(select_archs(ranges or [(0, NUM_ARCHS)], listed, unique_only))
        missing = sorted(wanted - present)
        notes.append(f"{len(missing)} of {len(wanted)} cells are missing from the dataset")
        return ([PlannedShard(tuple(missing))] if missing else []), notes
    if not ranges and not listed:
        raise PlanError("give {arch_ranges} START:END and/or {archs} INDEX (or {missing_from} DATASET)")
    shards = [PlannedShard(tuple(select_archs([r], unique_only=unique_only)), r) for r in ranges]
    if listed:
        shards.append(PlannedShard(tuple(sorted(set(listed)))))
    return shards, notes


def plan_launch(
    arch_range: tuple[int, int], shards: int, unique_only: bool = True, present: set[int] | None = None
) -> list[PlannedShard]:
    """The array tasks of ``rb201 launch``: ``arch_range`` split into ``shards`` ranges of about equal work, or,
    with ``present`` (``--missing-from``), the missing cells of the range split into ``shards`` lists."""
    if present is None:
        return [
            PlannedShard(tuple(select_archs([r], unique_only=unique_only)), r)
            for r in split_range(*arch_range, shards, unique_only)
        ]
    if shards < 1:
        raise PlanError(f"number of shards {shards} must be >= 1")
    missing = sorted(set(select_archs([arch_range], unique_only=unique_only)) - present)
    k = min(shards, len(missing))
    return [PlannedShard(tuple(missing[(j * len(missing)) // k : ((j + 1) * len(missing)) // k])) for j in range(k)]
