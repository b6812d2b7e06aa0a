"""Operator commands as data: validated before they reach a running mission.

The same shape serves the three ways an operator speaks to a flight: the Python API
(:meth:`skysweep.runtime.orchestrator.Orchestrator.submit`), ``skysweep command RUN.db ...``
from another terminal (queued in the run log, taken on the next tick), and a timed script for
``skysweep sim --commands FILE`` (format in ``docs/operations.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from skysweep.errors import MissionError
from skysweep.mission import read_yaml, validation_error

CommandKind = Literal[
    "pause",
    "resume",
    "home",
    "land",
    "add_keep_out",
    "remove_keep_out",
    "abort",
    "confirm_detection",
    "dismiss_detection",
    "reallocate",
]


class OperatorCommand(BaseModel):
    """One operator command; ``at_s`` only matters in a script."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    command: CommandKind
    at_s: float = Field(default=0.0, ge=0)
    drones: list[str] | None = None
    """Fleet ids the command is for (resume, home, land); all drones if not given."""
    name: str | None = Field(default=None, min_length=1)
    """The keep-out zone's name (add_keep_out, remove_keep_out)."""
    geometry: dict[str, Any] | None = None
    """The new zone as GeoJSON in lon/lat (add_keep_out)."""
    detection: int | None = Field(default=None, ge=1)
    """The detection's number (confirm_detection, dismiss_detection)."""

    @model_validator(mode="after")
    def _arguments(self) -> OperatorCommand:
        zone = self.command in ("add_keep_out", "remove_keep_out")
        if zone and self.name is None:
            raise ValueError(f"{self.command} needs the zone's 'name'")
        if self.command == "add_keep_out" and self.geometry is None:
            raise ValueError("add_keep_out needs a 'geometry' (GeoJSON Polygon, lon/lat)")
        if self.command != "add_keep_out" and self.geometry is not None:
            raise ValueError(f"{self.command} takes no 'geometry'")
        verdict = self.command.endswith("_detection")
        if verdict and self.detection is None:
            raise ValueError(f"{self.command} needs the 'detection' number")
        if not verdict and self.detection is not None:
            raise ValueError(f"{self.command} takes no 'detection'")
        if self.drones is not None and self.command not in ("resume", "home", "land"):
            raise ValueError(f"{self.command} is for the whole mission: it takes no 'drones'")
        return self

    def args(self) -> dict[str, Any]:
        """The arguments as :meth:`Orchestrator.submit` takes them."""
        return self.model_dump(exclude={"command", "at_s"}, exclude_none=True) | (
            {"drones": self.drones} if self.command in ("resume", "home", "land") else {}
        )


class _Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    commands: list[OperatorCommand] = Field(default_factory=list)


def parse_command(
    data: Any, source: str = "<command>", drone_ids: Sequence[str] | None = None
) -> OperatorCommand:
    """Validate one command; a :class:`MissionError` naming ``source`` and the field if bad."""
    try:
        cmd = OperatorCommand.model_validate(data)
    except ValidationError as exc:
        raise validation_error(source, exc) from None
    _known(cmd, source, "", drone_ids)
    return cmd


def load_script(path: str | Path, drone_ids: Sequence[str] | None = None) -> list[OperatorCommand]:
    """A timed command script (YAML: ``commands: [{at_s, command, ...}]``), sorted by time."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise MissionError(str(path), "", "must be a mapping with a 'commands' list")
    try:
        script = _Script.model_validate(data)
    except ValidationError as exc:
        raise validation_error(str(path), exc) from None
    for i, cmd in enumerate(script.commands):
        _known(cmd, str(path), f"commands[{i}].", drone_ids)
    return sorted(script.commands, key=lambda c: c.at_s)


def _known(cmd: OperatorCommand, source: str, prefix: str, drone_ids: Sequence[str] | None) -> None:
    if drone_ids is None or cmd.drones is None:
        return
    known = set(drone_ids)
    for k, d in enumerate(cmd.drones):
        if d not in known:
            raise MissionError(source, f"{prefix}drones[{k}]", f"no drone {d!r} in the fleet")
