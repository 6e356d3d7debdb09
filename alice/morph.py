"""ALICE's architecture morphing as data (Liang, Zou & Yu 2020, section 3.4): which fine classes share a
super-class of the global classifier.

Each round merges every queried pair (p, q) into one super-class: C classes become C − b super-classes
after b disjoint pairs. Pairs that overlap — with each other or with a group of an earlier round —
merge into one m-ary group (union–find over the pairs), so a round can never produce a class that
sits in two super-classes. Super-classes are numbered by their smallest fine class, so the numbering
depends only on the groups, never on the order the pairs came in.
"""

from __future__ import annotations

from typing import Iterable, Sequence


def merge_groups(groups: Iterable[Sequence[int]], pairs: Iterable[Sequence[int]]) -> list[list[int]]:
    """Groups (each ≥ 2 fine classes, sorted, ordered by their first class) after merging ``pairs`` into
    ``groups`` transitively."""
    parent: dict[int, int] = {}

    def find(a: int) -> int:
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for members in list(groups) + list(pairs):
        members = [int(m) for m in members]
        for m in members[1:]:
            ra, rb = find(members[0]), find(m)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, list[int]] = {}
    for c in list(parent):
        out.setdefault(find(c), []).append(c)
    return sorted((sorted(g) for g in out.values() if len(g) > 1), key=lambda g: g[0])


def super_classes(num_classes: int, groups: Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """``(super_of, members)``: the super-class of each fine class and the fine classes of each super-class
    (singletons for classes in no group), numbered by smallest member."""
    group_of = {c: tuple(g) for g in groups for c in g}
    seen, members = set(), []
    for c in range(num_classes):
        g = group_of.get(c, (c,))
        if g not in seen:
            seen.add(g)
            members.append(list(g))
    super_of = [0] * num_classes
    for s, g in enumerate(members):
        for c in g:
            super_of[c] = s
    return super_of, members
