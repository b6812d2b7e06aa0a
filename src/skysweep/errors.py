"""The one error tree of skysweep.

Every error a user can cause derives from :class:`SkysweepError`, and its ``str()`` is the whole
message a user needs: which file or source, which field, what was expected. The CLI prints it and
exits with code 2; nothing else catches these errors silently.

    SkysweepError
    ├── MissionError         a mission file is malformed (names file and field path)
    ├── InfeasibleError      a valid mission that cannot be flown (names the reason)
    ├── StoreError           a run database is missing, corrupt or of another version
    ├── LinkError            a vehicle link failed or sent something it should not have
    ├── TransitionError      a drone or mission was asked for a forbidden state change
    └── AuthError            an operator token that is missing, forged, expired or refused
"""

from __future__ import annotations


class SkysweepError(Exception):
    """Base of every error skysweep raises on purpose."""


class MissionError(SkysweepError):
    """A mission file that cannot be accepted.

    ``source`` is the file (or ``<mission>`` for in-memory data), ``field`` the dotted path of the
    offending field, e.g. ``fleet[0].speed_mps``; empty for the file as a whole.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class InfeasibleError(SkysweepError):
    """A well-formed mission that cannot be planned or flown, with the reason."""


class StoreError(SkysweepError):
    """A run database that cannot be read or written."""


class LinkError(SkysweepError):
    """A vehicle link that failed, or a message from it that was refused."""


class TransitionError(SkysweepError):
    """A state machine asked for a transition that its definition forbids."""


class AuthError(SkysweepError):
    """An operator token that cannot be accepted (missing, forged, expired), with why."""
