"""Planning: split the area among the drones and give each a lawnmower route in sorties.

Public surface: :func:`plan_mission`, :class:`Plan`, :class:`Sortie`, :class:`Leg`.
"""

from skysweep.plan.model import Leg, Plan, PlanMetrics, Sortie
from skysweep.plan.planner import plan_mission

__all__ = ["Leg", "Plan", "PlanMetrics", "Sortie", "plan_mission"]
