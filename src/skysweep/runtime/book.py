"""The plan being flown, as flat tables: which sortie each drone flies next and which it is in.

A re-plan replaces the plan while drones are in the air; :meth:`SortieBook.adopt` carries each
drone's place over by sortie number (re-planning keeps a flying drone's sortie under its number
when it is still valid, and numbers new work after it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from skysweep.plan.model import Plan, Sortie


@dataclass
class SortieBook:
    """Every drone's sorties in flying order, with flat per-sortie tables for the tick."""

    plan: Plan
    sorties: list[list[Sortie]]
    count: NDArray[np.intp]
    """(n,) sorties per drone."""
    first: NDArray[np.intp]
    """(n,) global index of each drone's first sortie."""
    launch_s: NDArray[np.float64]
    """(sorties + 1,) planned launch of each sortie, and inf (for 'none')."""
    leg_table: NDArray[np.int8]
    leg_first: NDArray[np.intp]
    leg_count: NDArray[np.intp]
    next: NDArray[np.intp]
    """(n,) index into ``sorties[i]`` of the next sortie to fly."""
    flying: NDArray[np.intp]
    """(n,) global index of the sortie in the air, or -1."""
    last_number: NDArray[np.intp]
    """(n,) number of the last sortie launched, 0 before the first."""

    @classmethod
    def of(cls, plan: Plan, n: int) -> SortieBook:
        per: list[list[Sortie]] = [[] for _ in range(n)]
        for sortie in sorted(plan.sorties, key=lambda x: (x.drone, x.number)):
            per[sortie.drone].append(sortie)
        ordered = [s for sorties in per for s in sorties]
        count = np.array([len(x) for x in per], np.intp)
        leg_count = np.array([len(s.legs) for s in ordered], np.intp)
        return cls(
            plan=plan,
            sorties=per,
            count=count,
            first=np.cumsum(count) - count,
            launch_s=np.array([s.launch_s for s in ordered] + [np.inf]),
            leg_table=np.concatenate([s.legs for s in ordered] or [np.zeros(0, np.int8)]),
            leg_first=np.cumsum(leg_count) - leg_count,
            leg_count=leg_count,
            next=np.zeros(n, np.intp),
            flying=np.full(n, -1, np.intp),
            last_number=np.zeros(n, np.intp),
        )

    @property
    def remaining(self) -> NDArray[np.bool_]:
        return self.next < self.count

    @property
    def upcoming(self) -> NDArray[np.intp]:
        """Global index of each drone's next sortie, or -1."""
        return np.where(self.remaining, self.first + self.next, -1)

    def next_sortie(self, drone: int) -> Sortie:
        return self.sorties[drone][int(self.next[drone])]

    def launched(self, drones: NDArray[np.intp]) -> None:
        up = self.upcoming[drones]
        self.flying[drones] = up
        for i in drones:
            self.last_number[i] = self.sorties[i][int(self.next[i])].number
        self.next[drones] += 1

    def adopt(self, plan: Plan) -> tuple[SortieBook, NDArray[np.bool_]]:
        """The book of ``plan`` with every drone's place carried over, and which drones were
        flying a sortie that the new plan no longer has (they must be brought home)."""
        n = len(self.count)
        book = SortieBook.of(plan, n)
        book.last_number = self.last_number.copy()
        dropped = np.zeros(n, bool)
        for i in range(n):
            numbers = [s.number for s in book.sorties[i]]
            done = int(np.searchsorted(numbers, self.last_number[i], side="right"))
            book.next[i] = done
            if self.flying[i] >= 0:
                if done and numbers[done - 1] == self.last_number[i]:
                    book.flying[i] = book.first[i] + done - 1
                else:
                    dropped[i] = True
        return book, dropped
