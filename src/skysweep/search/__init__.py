"""Search theory: the probability map of where the person may be (:mod:`.prior`) and the
optimal allocation of the drones' effort over it (:mod:`.effort`)."""

from skysweep.search.effort import circular_normal_pos, optimal_effort, pod, pos, posterior
from skysweep.search.prior import ProbabilityGrid, build_prior

__all__ = [
    "ProbabilityGrid",
    "build_prior",
    "circular_normal_pos",
    "optimal_effort",
    "pod",
    "pos",
    "posterior",
]
