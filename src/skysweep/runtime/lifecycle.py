"""A mission's lifecycle (planned, authorised, running, over) and its health.

=============  ======================================================
from           to
=============  ======================================================
PLANNED        AUTHORISED, ABORTED
AUTHORISED     RUNNING, ABORTED, PLANNED (de-authorised, to edit it)
RUNNING        COMPLETE, ABORTED
COMPLETE       (terminal)
ABORTED        (terminal)
=============  ======================================================

Health is separate from the state: a DEGRADED mission keeps running with less capability (a
drone lost, a launch site closed); the reasons are kept, in order, on the :class:`Lifecycle`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from skysweep.errors import TransitionError
from skysweep.statemachine import StateMachine


class MissionState(IntEnum):
    PLANNED = 0
    AUTHORISED = 1
    RUNNING = 2
    COMPLETE = 3
    ABORTED = 4


class Health(IntEnum):
    NOMINAL = 0
    DEGRADED = 1  # running with reduced capability; the reasons are in Lifecycle.reasons


_M = MissionState

LIFECYCLE = StateMachine(
    "mission lifecycle",
    MissionState,
    {
        _M.PLANNED: {_M.AUTHORISED, _M.ABORTED},
        _M.AUTHORISED: {_M.RUNNING, _M.ABORTED, _M.PLANNED},
        _M.RUNNING: {_M.COMPLETE, _M.ABORTED},
        _M.COMPLETE: set(),
        _M.ABORTED: set(),
    },
    initial=MissionState.PLANNED,
    terminal=(MissionState.COMPLETE, MissionState.ABORTED),
)

#: The states in which a mission can lose capability (before authorisation there is nothing
#: to degrade; after the end there is nothing left to run).
_CAN_DEGRADE = frozenset({MissionState.AUTHORISED, MissionState.RUNNING})


@dataclass(frozen=True)
class Lifecycle:
    """Where a mission stands. ``changed_s``: when state, health or reasons last changed
    (seconds on the runtime's clock). Health and reasons outlive state changes: they are
    the mission's history, and nothing here clears them."""

    state: MissionState = MissionState.PLANNED
    health: Health = Health.NOMINAL
    reasons: tuple[str, ...] = ()
    changed_s: float = 0.0

    def to(self, new_state: MissionState, now_s: float) -> Lifecycle:
        """The lifecycle in ``new_state`` from ``now_s``; staying put returns ``self``.
        A forbidden change raises :class:`~skysweep.errors.TransitionError`."""
        state = LIFECYCLE.step(self.state, new_state)
        if state == self.state:
            return self
        return replace(self, state=state, changed_s=now_s)

    def degrade(self, reason: str, now_s: float) -> Lifecycle:
        """The lifecycle DEGRADED for ``reason`` (kept once, in order of first report).
        Only an AUTHORISED or RUNNING mission can degrade; otherwise
        :class:`~skysweep.errors.TransitionError`."""
        if not reason:
            raise ValueError("a degradation needs a reason")
        if self.state not in _CAN_DEGRADE:
            raise TransitionError(
                f"{LIFECYCLE.name}: a {self.state.name} mission cannot degrade ({reason})"
            )
        if reason in self.reasons:  # already DEGRADED for it: nothing changes
            return self
        return replace(
            self, health=Health.DEGRADED, reasons=(*self.reasons, reason), changed_s=now_s
        )

    @property
    def authorised(self) -> bool:
        """Whether the mission has passed authorisation: every state but PLANNED. Note that
        it holds for a mission ABORTED straight from PLANNED too; look at ``state`` to know
        whether drones may fly (AUTHORISED or RUNNING)."""
        return self.state != MissionState.PLANNED
