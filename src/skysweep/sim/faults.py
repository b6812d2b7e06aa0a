"""Fault injection for the simulator: a schedule of things that go wrong, read from YAML.

The format is documented in ``docs/faults.md``. Each fault happens at ``at_s`` seconds of
mission time, to one named drone (``drone``) or to a random ``fraction`` of the fleet, drawn
from the drones airborne at that moment (from the whole fleet if too few are up). The draw
uses the run's seed, so a run with the same seed, mission and faults is identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from skysweep.errors import MissionError
from skysweep.mission import read_yaml, validation_error


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    at_s: float = Field(ge=0)
    drone: str | None = None
    fraction: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _one_target(self) -> _Fault:
        if (self.drone is None) == (self.fraction is None):
            raise ValueError("give exactly one of 'drone' (a fleet id) or 'fraction' (0-1]")
        return self


class DroneLost(_Fault):
    """The drone falls out of the sky: no more telemetry, ever."""

    kind: Literal["drone_lost"]


class LinkLost(_Fault):
    """No telemetry from, and no commands to, the drone for ``duration_s``; it flies on."""

    kind: Literal["link_lost"]
    duration_s: float = Field(gt=0)


class BatterySag(_Fault):
    """The pack ages at once: it keeps ``capacity_factor`` of its charge, and its internal
    resistance grows by ``resistance_factor``, so its voltage sags harder under load."""

    kind: Literal["battery_sag"]
    capacity_factor: float = Field(default=0.7, gt=0, le=1)
    resistance_factor: float = Field(default=3.0, ge=1)


class GpsGlitch(_Fault):
    """The position estimate is wrong for ``duration_s``: a ``jump`` of ``offset_m`` at once,
    or a ``drift`` growing at ``drift_mps``, toward ``bearing_deg`` (random if not given)."""

    kind: Literal["gps_glitch"]
    mode: Literal["jump", "drift"] = "jump"
    offset_m: float = Field(default=50.0, ge=0)
    drift_mps: float = Field(default=0.5, ge=0)
    duration_s: float = Field(default=30.0, gt=0)
    bearing_deg: float | None = Field(default=None, ge=0, le=360)


class MotorDegraded(_Fault):
    """A motor or ESC is failing: the drone flies at most ``speed_factor`` of its speed."""

    kind: Literal["motor_degraded"]
    speed_factor: float = Field(default=0.6, gt=0, lt=1)


Fault = Annotated[
    DroneLost | LinkLost | BatterySag | GpsGlitch | MotorDegraded,
    Field(discriminator="kind"),
]


class FaultFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    faults: list[Fault] = Field(default_factory=list)


def parse_faults(
    data: Any, source: str = "<faults>", drone_ids: Sequence[str] | None = None
) -> list[Fault]:
    """Validate fault data (as loaded from YAML); the schedule, sorted by time.

    With ``drone_ids``, every named drone must be one of them.
    """
    if data is None:
        return []
    if not isinstance(data, dict):
        raise MissionError(source, "", "must be a mapping with a 'faults' list")
    try:
        spec = FaultFile.model_validate(data)
    except ValidationError as exc:
        raise validation_error(source, exc, skip=_KIND_TAGS) from None
    if drone_ids is not None:
        known = set(drone_ids)
        for i, fault in enumerate(spec.faults):
            if fault.drone is not None and fault.drone not in known:
                raise MissionError(
                    source, f"faults[{i}].drone", f"no drone {fault.drone!r} in the fleet"
                )
    return sorted(spec.faults, key=lambda f: f.at_s)


_KIND_TAGS = ("drone_lost", "link_lost", "battery_sag", "gps_glitch", "motor_degraded")


def load_faults(path: str | Path, drone_ids: Sequence[str] | None = None) -> list[Fault]:
    """Read a fault schedule from a YAML file."""
    path = Path(path)
    data = read_yaml(path)
    return parse_faults(data, str(path), drone_ids)
