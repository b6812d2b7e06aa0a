"""Planning: split the area among the drones and give each a lawnmower route in sorties.

Public surface: :func:`plan_mission`, :func:`replan` (with :class:`Progress`), :class:`Plan`,
:class:`Sortie`, :class:`Leg`.
"""

from skysweep.plan.model import Leg, Plan, PlanMetrics, Sortie
from skysweep.plan.planner import plan_mission
from skysweep.plan.replan import Progress, replan

__all__ = ["Leg", "Plan", "PlanMetrics", "Progress", "Sortie", "plan_mission", "replan"]
