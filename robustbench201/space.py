"""The NAS-Bench-201 search space: the one canonical :class:`Arch`.

Encodings, all derived from an immutable tuple of six op indices in NB201 edge order
``(0->1), (0->2), (1->2), (0->3), (1->3), (2->3)`` and NB201 op order :data:`OPS`:

* the NB201 string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``;
* the official NB201 / NATS-Bench index 0..15624, reproduced algorithmically: enumerate
  ``itertools.product(OPS, repeat=6)`` (last edge fastest), then ``random.seed(88); random.shuffle``;
* the official isomorphism key (NB201 ``Structure.to_unique_str``-style, see PROTOCOL.md section 1) and its class
  representative, the smallest index in the class (6466 classes).

Lookup tables are built once, on first use (about 50 ms), and are O(1) afterwards. No torch import.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

from .errors import InvalidArchError

__all__ = ["OPS", "EDGES", "NUM_OPS", "NUM_EDGES", "NUM_ARCHS", "NUM_UNIQUE", "product_positions", "ops_table",
           "index_of_position", "reachability", "Arch", "all_archs", "unique_indices",
           "representative_indices", "all_ops", "format_indices"]  # fmt: skip

#: NB201 op order; the position of an op here is its op index everywhere in rb201.
OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
#: Edges ``(source, target)`` in NB201 string order.
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
NUM_OPS = len(OPS)
NUM_EDGES = len(EDGES)
NUM_ARCHS = NUM_OPS**NUM_EDGES  # 15625
NUM_UNIQUE = 6466
_CONV_OPS = frozenset({2, 3})
_NODE_RE = re.compile(r"^([a-z0-9_]+)~(\d+)$")


@cache
def _tables() -> tuple[tuple[int, ...], dict[int, int]]:
    """(index -> product position, product position -> index)."""
    perm = list(range(NUM_ARCHS))
    rng = random.Random(88)  # same stream as random.seed(88); shuffle depends only on the list length
    rng.shuffle(perm)
    return tuple(perm), {p: i for i, p in enumerate(perm)}


def product_positions() -> tuple[int, ...]:
    """Index -> position in ``itertools.product(range(5), repeat=6)`` order (the order before NB201's shuffle)."""
    return _tables()[0]


@cache
def ops_table() -> tuple[tuple[int, ...], ...]:
    """Index -> op tuple (NB201 op order) for all 15625 cells, in index order."""
    return tuple(_ops_from_position(p) for p in _tables()[0])


def index_of_position(position: int) -> int:
    """Inverse of :func:`product_positions`."""
    return _tables()[1][position]


def reachability(ops: Sequence[int]) -> tuple[tuple[bool, ...], tuple[bool, ...]]:
    """Per node 0..3: (reached from the input by non-``none`` edges, reaches the output by non-``none`` edges)."""
    fwd = [True, False, False, False]
    for o, (s, d) in zip(ops, EDGES, strict=True):
        if o and fwd[s]:
            fwd[d] = True
    bwd = [False, False, False, True]
    for o, (s, d) in reversed(list(zip(ops, EDGES, strict=True))):
        if o and bwd[d]:
            bwd[s] = True
    return tuple(fwd), tuple(bwd)


def _ops_from_position(pos: int) -> tuple[int, ...]:
    digits = []
    for _ in range(NUM_EDGES):
        pos, d = divmod(pos, NUM_OPS)
        digits.append(d)
    return tuple(reversed(digits))


def _position_from_ops(ops: Sequence[int]) -> int:
    pos = 0
    for d in ops:
        pos = pos * NUM_OPS + d
    return pos


def _iso_key(ops: Sequence[int]) -> str:
    """Official isomorphism key (PROTOCOL.md section 1): bottom-up node strings, node 3's string is the key."""
    node_str = ["0"]
    edge = 0
    for j in range(1, 4):
        terms = []
        for i in range(j):
            op = ops[edge]
            edge += 1
            if op == 0 or node_str[i] == "#":
                terms.append("#")
            elif op == 1:
                terms.append(node_str[i])
            else:
                terms.append("(" + node_str[i] + ")@" + OPS[op])
        node_str.append("+".join(sorted(terms)))
    return node_str[3]


@cache
def _iso_tables() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """(index -> iso key, index -> representative index)."""
    perm, _ = _tables()
    keys = tuple(_iso_key(_ops_from_position(perm[i])) for i in range(NUM_ARCHS))
    first: dict[str, int] = {}
    for i, k in enumerate(keys):
        first.setdefault(k, i)
    return keys, tuple(first[k] for k in keys)


@dataclass(frozen=True, slots=True)
class Arch:
    """An NB201 cell, immutable and hashable. Build it with :meth:`parse`, :meth:`from_string`,
    :meth:`from_index` or :meth:`from_ops`; every other encoding is a property."""

    ops: tuple[int, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        if not isinstance(ops, tuple) or len(ops) != NUM_EDGES:
            raise InvalidArchError(f"an op tuple needs {NUM_EDGES} entries (one per edge), got {ops!r}")
        for o in ops:
            if isinstance(o, bool) or not isinstance(o, int) or not 0 <= o < NUM_OPS:
                raise InvalidArchError(
                    f"op index {o!r} in {ops!r} is not an integer in 0..{NUM_OPS - 1} ({', '.join(OPS)})"
                )

    # ---- constructors -------------------------------------------------------------------------------------
    @classmethod
    def from_ops(cls, ops: Sequence[int]) -> Arch:
        """From six op indices in NB201 edge and op order."""
        try:
            return cls(tuple(int(o) if not isinstance(o, bool) else o for o in ops))
        except (TypeError, ValueError) as exc:
            if isinstance(exc, InvalidArchError):
                raise
            raise InvalidArchError(f"cannot read op tuple {ops!r}: {exc}") from None

    @classmethod
    def from_index(cls, index: int) -> Arch:
        """From the official NB201 index 0..15624."""
        if isinstance(index, bool) or not isinstance(index, int):
            raise InvalidArchError(f"NB201 index must be an int in 0..{NUM_ARCHS - 1}, got {index!r}")
        if not 0 <= index < NUM_ARCHS:
            raise InvalidArchError(f"NB201 index {index} out of range; allowed: 0..{NUM_ARCHS - 1}")
        return _from_index_cached(index)

    @classmethod
    def from_string(cls, s: str) -> Arch:
        """From an NB201 string such as ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...~0|...~1|...~2|``."""
        if not isinstance(s, str):
            raise InvalidArchError(f"NB201 string expected, got {type(s).__name__} {s!r}")
        text = s.strip()
        groups = text.split("+")
        if len(groups) != 3:
            raise InvalidArchError(
                f"NB201 string {s!r} has {len(groups)} '+'-separated nodes; expected 3, "
                "like '|op~0|+|op~0|op~1|+|op~0|op~1|op~2|'"
            )
        ops: list[int] = []
        for node, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")) or len(group) < 2:
                raise InvalidArchError(f"node {node} of {s!r} is {group!r}; each node must look like '|op~i|...|'")
            items = group[1:-1].split("|")
            if len(items) != node:
                raise InvalidArchError(
                    f"node {node} of {s!r} has {len(items)} incoming edges; expected {node} (from nodes 0..{node - 1})"
                )
            for src, item in enumerate(items):
                m = _NODE_RE.match(item)
                if not m:
                    raise InvalidArchError(f"edge {item!r} of node {node} in {s!r} is not of the form 'op~i'")
                name, source = m.group(1), int(m.group(2))
                if name not in OPS:
                    raise InvalidArchError(f"unknown op {name!r} in {s!r}; allowed: {', '.join(OPS)}")
                if source != src:
                    raise InvalidArchError(
                        f"edge {item!r} of node {node} in {s!r} has source node {source}; expected {src} "
                        f"(edges of node {node} come from nodes 0..{node - 1} in order)"
                    )
                ops.append(OPS.index(name))
        return cls(tuple(ops))

    @classmethod
    def parse(cls, value: object) -> Arch:
        """Accept an :class:`Arch`, an NB201 string, an index (int or digit string), or an op tuple/list
        (also written as text, ``"(3,3,0,1,2,3)"`` or ``"3,3,0,1,2,3"``)."""
        if isinstance(value, Arch):
            return value
        if isinstance(value, bool):
            raise InvalidArchError(f"cannot read an architecture from {value!r}")
        if isinstance(value, int):
            return cls.from_index(value)
        if hasattr(value, "__index__") and not isinstance(value, str | bytes):  # numpy integers
            return cls.from_index(int(value.__index__()))  # type: ignore[attr-defined]
        if isinstance(value, str):
            text = value.strip()
            if text.lstrip("-").isdigit():
                return cls.from_index(int(text))
            if "|" in text:
                return cls.from_string(text)
            inner = text.strip("()[] ")
            parts = [p.strip() for p in inner.split(",") if p.strip()]
            if parts and all(p.isdigit() for p in parts):
                return cls.from_ops([int(p) for p in parts])
            raise InvalidArchError(
                f"cannot read an architecture from {value!r}; give an NB201 string '|op~0|+...|', "
                f"an index 0..{NUM_ARCHS - 1} or six op indices like '3,3,0,1,2,3'"
            )
        if isinstance(value, Sequence):
            return cls.from_ops(value)
        raise InvalidArchError(f"cannot read an architecture from {type(value).__name__} {value!r}")

    # ---- derived encodings --------------------------------------------------------------------------------
    @property
    def index(self) -> int:
        """Official NB201 index."""
        return _tables()[1][_position_from_ops(self.ops)]

    @property
    def string(self) -> str:
        names = [f"{OPS[o]}~{src}" for o, (src, _) in zip(self.ops, EDGES, strict=True)]
        return f"|{names[0]}|+|{names[1]}|{names[2]}|+|{names[3]}|{names[4]}|{names[5]}|"

    @property
    def op_names(self) -> tuple[str, ...]:
        return tuple(OPS[o] for o in self.ops)

    @property
    def iso_key(self) -> str:
        """The official isomorphism key (node 3's canonical string)."""
        return _iso_tables()[0][self.index]

    @property
    def representative(self) -> Arch:
        """Smallest-index member of this cell's isomorphism class (the id the published dataset evaluated)."""
        return Arch.from_index(_iso_tables()[1][self.index])

    @property
    def is_representative(self) -> bool:
        return self.representative.index == self.index

    @property
    def is_dead(self) -> bool:
        """True if no path of non-``none`` edges joins the input (node 0) to the output (node 3)."""
        return not reachability(self.ops)[0][3]

    @property
    def num_conv_edges(self) -> int:
        return sum(o in _CONV_OPS for o in self.ops)

    def count(self, op: str) -> int:
        """How many edges carry ``op``."""
        if op not in OPS:
            raise InvalidArchError(f"unknown op {op!r}; allowed: {', '.join(OPS)}")
        return self.ops.count(OPS.index(op))

    def live_edges(self) -> tuple[bool, ...]:
        """Per edge: True if the edge is not ``none`` and lies on a path from node 0 to node 3.

        An edge that is False either cannot reach node 3 (it has no effect on the output) or leaves a node that no
        path from the input reaches: that node is identically zero, so the edge adds an input-independent constant
        (zero for skip and pooling; the BatchNorm shift for a conv edge in eval mode). An exact eval-mode rewrite
        drops the first kind and folds the second into a constant."""
        fwd, bwd = reachability(self.ops)
        return tuple(bool(o) and fwd[s] and bwd[d] for o, (s, d) in zip(self.ops, EDGES, strict=True))

    def __str__(self) -> str:
        return self.string

    def __repr__(self) -> str:
        return f"Arch({self.index}, {self.string!r})"


@cache
def _from_index_cached(index: int) -> Arch:
    return Arch(_ops_from_position(_tables()[0][index]))


def all_archs() -> Iterator[Arch]:
    """All 15625 cells in official index order."""
    return (Arch.from_index(i) for i in range(NUM_ARCHS))


def unique_indices() -> tuple[int, ...]:
    """The 6466 isomorphism-class representatives (smallest index per class), ascending."""
    reps = _iso_tables()[1]
    return tuple(i for i in range(NUM_ARCHS) if reps[i] == i)


def representative_indices() -> tuple[int, ...]:
    """Index -> representative index for all 15625 cells (a tuple, O(1) lookup)."""
    return _iso_tables()[1]


def all_ops() -> Iterator[tuple[int, ...]]:
    """Op tuples in ``itertools.product`` order (not index order)."""
    return itertools.product(range(NUM_OPS), repeat=NUM_EDGES)


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
