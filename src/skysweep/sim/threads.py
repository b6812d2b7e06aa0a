"""How many threads the simulator's compiled kernels use for a fleet."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba

#: Below this many drones the kernels run on one thread: a step takes microseconds, and
#: parallel threads then only cost synchronisation, and stall whenever another process holds
#: a core (a test run, a second simulation) for as long as the scheduler keeps it.
PARALLEL_MIN_DRONES = 256


@contextmanager
def kernel_threads(drones: int) -> Iterator[None]:
    """Run the block with the kernels on one thread for a small fleet (restored after); a
    large one keeps every thread. The results do not depend on it."""
    if drones >= PARALLEL_MIN_DRONES:
        yield
        return
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(threads)
