"""The MAVLink request-response protocols as small steps with timeouts and retries.

A step talks to one vehicle: it sends through ``emit``, is fed the vehicle's messages
(:meth:`Step.on_message`) and the wall clock (:meth:`Step.on_time`), and ends DONE or FAILED
with a reason. Steps do no I/O of their own and take ``now`` (wall seconds) as an argument, so
they are tested with scripted messages and a fake clock. A vehicle's steps run one after another
(:class:`~skysweep.mavlink.link.MavlinkLink` keeps the queue).

- :class:`UploadItems`: MISSION_COUNT, then each MISSION_ITEM_INT the vehicle asks for with
  MISSION_REQUEST_INT (or the old MISSION_REQUEST), until its MISSION_ACK.
- :class:`DownloadItems`: MISSION_REQUEST_LIST, MISSION_COUNT, item by item, MISSION_ACK;
  compared with what was uploaded.
- :class:`SendCommand`: COMMAND_LONG until its COMMAND_ACK.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

from skysweep.mavlink.allowlist import command_name
from skysweep.mavlink.dialect import mavlink as m
from skysweep.mavlink.items import MISSION, Item

#: Wall seconds to wait for an answer before sending again (the mission protocol's default is
#: 1.5 s for a request and 0.25-2 s for an item; radios add latency).
TIMEOUT_S = 1.5
#: Sends of one message before a step gives up.
MAX_TRIES = 5

Emit = Callable[[Any], None]


class Status(Enum):
    PENDING = 0
    DONE = 1
    FAILED = 2


class Step:
    """One exchange with one vehicle."""

    name = "step"

    def __init__(self) -> None:
        self.status = Status.PENDING
        self.reason = ""
        self._deadline = float("inf")
        self._tries = 0
        self._resend: Callable[[], None] | None = None
        self.emit: Emit = _nowhere
        self.target: tuple[int, int] = (0, 0)

    def begin(self, emit: Emit, target: tuple[int, int], now: float) -> None:
        """Start the exchange with the vehicle ``target`` (system, component)."""
        self.emit = emit
        self.target = target
        self.start(now)

    def start(self, now: float) -> None:
        self.done()

    def on_message(self, msg: Any, now: float) -> None:
        """A message from this step's vehicle."""

    def on_time(self, now: float) -> None:
        """Send again what was last sent if no answer came in time; fail after MAX_TRIES."""
        if self.status is not Status.PENDING or now < self._deadline:
            return
        if self._tries >= MAX_TRIES or self._resend is None:
            self.fail(f"no answer after {self._tries} tries")
            return
        self._resend()
        self._tries += 1
        self._deadline = now + TIMEOUT_S

    def _send(self, now: float, resend: Callable[[], None], fresh: bool = True) -> None:
        """Send now, and again on each timeout; ``fresh`` restarts the try count (progress)."""
        if fresh:
            self._tries = 0
        self._resend = resend
        resend()
        self._tries += 1
        self._deadline = now + TIMEOUT_S

    def done(self) -> None:
        self.status = Status.DONE
        self._deadline = float("inf")

    def fail(self, reason: str) -> None:
        self.status = Status.FAILED
        self.reason = reason
        self._deadline = float("inf")


def _nowhere(msg: Any) -> None:
    raise RuntimeError("step not started")


def _ack_name(result: int) -> str:
    entry = m.enums["MAV_MISSION_RESULT"].get(result)
    return entry.name if entry is not None else str(result)


def _result_name(result: int) -> str:
    entry = m.enums["MAV_RESULT"].get(result)
    return entry.name if entry is not None else str(result)


class UploadItems(Step):
    """Upload ``items`` (seq 0..n-1, one mission type) as the vehicle asks for them."""

    def __init__(self, items: Sequence[Item], mission_type: int = MISSION) -> None:
        super().__init__()
        self.items = list(items)
        self.mission_type = mission_type
        self.name = "upload " + _type_name(mission_type)
        self._asked = -1

    def start(self, now: float) -> None:
        system, comp = self.target
        count = len(self.items)
        self._send(
            now,
            lambda: self.emit(
                m.MAVLink_mission_count_message(system, comp, count, self.mission_type)
            ),
        )

    def on_message(self, msg: Any, now: float) -> None:
        kind = msg.get_type()
        if kind in ("MISSION_REQUEST_INT", "MISSION_REQUEST"):
            if getattr(msg, "mission_type", MISSION) != self.mission_type:
                return
            seq = int(msg.seq)
            if not 0 <= seq < len(self.items):
                self.fail(f"the vehicle asked for item {seq} of {len(self.items)}")
                return
            progress = seq > self._asked
            self._asked = max(self._asked, seq)
            item = self.items[seq]
            system, comp = self.target
            self._send(now, lambda: self.emit(item.message(_mav_stub, system, comp)), progress)
        elif kind == "MISSION_ACK" and getattr(msg, "mission_type", MISSION) == self.mission_type:
            if msg.type == m.MAV_MISSION_ACCEPTED:
                if self._asked >= len(self.items) - 1:
                    self.done()
                # an early "accepted" (a duplicate ack of a previous upload) is ignored
            else:
                self.fail(f"refused by the vehicle: {_ack_name(int(msg.type))}")


class DownloadItems(Step):
    """Read a mission type back; with ``expect``, fail unless it matches item for item."""

    def __init__(self, mission_type: int = MISSION, expect: Sequence[Item] | None = None) -> None:
        super().__init__()
        self.mission_type = mission_type
        self.expect = list(expect) if expect is not None else None
        self.name = "read back " + _type_name(mission_type)
        self.items: list[Item] = []
        self.count = -1

    def start(self, now: float) -> None:
        system, comp = self.target
        self._send(
            now,
            lambda: self.emit(
                m.MAVLink_mission_request_list_message(system, comp, self.mission_type)
            ),
        )

    def _request(self, now: float, fresh: bool) -> None:
        system, comp = self.target
        seq = len(self.items)
        self._send(
            now,
            lambda: self.emit(
                m.MAVLink_mission_request_int_message(system, comp, seq, self.mission_type)
            ),
            fresh,
        )

    def on_message(self, msg: Any, now: float) -> None:
        kind = msg.get_type()
        if getattr(msg, "mission_type", MISSION) != self.mission_type:
            return
        if kind == "MISSION_COUNT" and self.count < 0:
            self.count = int(msg.count)
            if self.count == 0:
                self._finish()
            else:
                self._request(now, True)
        elif kind == "MISSION_ITEM_INT" and self.count > 0:
            if int(msg.seq) != len(self.items):
                self._request(now, False)  # out of order: ask again for the one we need
                return
            self.items.append(Item.of(msg))
            if len(self.items) == self.count:
                self._finish()
            else:
                self._request(now, True)

    def _finish(self) -> None:
        system, comp = self.target
        self.emit(
            m.MAVLink_mission_ack_message(system, comp, m.MAV_MISSION_ACCEPTED, self.mission_type)
        )
        if self.expect is None:
            self.done()
            return
        if len(self.items) != len(self.expect):
            self.fail(f"read back {len(self.items)} items, uploaded {len(self.expect)}")
            return
        for ours, theirs in zip(self.expect, self.items, strict=True):
            if not ours.same_as(theirs, check_home=False):
                self.fail(f"item {ours.seq} read back differs from the one uploaded")
                return
        self.done()


class SendCommand(Step):
    """A COMMAND_LONG, sent again until its COMMAND_ACK; any result but ACCEPTED fails."""

    def __init__(self, command: int, params: Sequence[float] = (), label: str = "") -> None:
        super().__init__()
        self.command = command
        self.params = [float(p) for p in params] + [0.0] * (7 - len(params))
        self.name = label or command_name(command)
        self._confirmation = 0

    def start(self, now: float) -> None:
        self._send(now, self._emit_command)

    def _emit_command(self) -> None:
        system, comp = self.target
        p = self.params
        self.emit(
            m.MAVLink_command_long_message(system, comp, self.command, self._confirmation, *p)
        )
        # a resend carries the next confirmation number, so the vehicle can tell it is one
        self._confirmation = min(self._confirmation + 1, 255)

    def on_message(self, msg: Any, now: float) -> None:
        if msg.get_type() != "COMMAND_ACK" or int(msg.command) != self.command:
            return
        result = int(msg.result)
        if result == m.MAV_RESULT_ACCEPTED:
            self.done()
        elif result == m.MAV_RESULT_IN_PROGRESS:
            self._deadline = now + TIMEOUT_S * MAX_TRIES
        elif result == m.MAV_RESULT_TEMPORARILY_REJECTED:
            pass  # sent again at the timeout
        else:
            self.fail(f"{self.name} refused by the vehicle: {_result_name(result)}")


class SendMessage(Step):
    """A message with no answer in the protocol (a guided set-point): sent once, done."""

    def __init__(self, make: Callable[[int, int], Any], name: str) -> None:
        super().__init__()
        self.make = make
        self.name = name

    def start(self, now: float) -> None:
        system, comp = self.target
        self.emit(self.make(system, comp))
        self.done()


class Guard(Step):
    """Fails the rest of a sequence unless ``ok()`` holds when it is reached (e.g. the fence on
    board was read back and matches: no arming otherwise)."""

    def __init__(self, ok: Callable[[], bool], reason: str) -> None:
        super().__init__()
        self.ok = ok
        self.name = "check"
        self._why = reason

    def start(self, now: float) -> None:
        if self.ok():
            self.done()
        else:
            self.fail(self._why)


def _type_name(mission_type: int) -> str:
    return {m.MAV_MISSION_TYPE_MISSION: "mission", m.MAV_MISSION_TYPE_FENCE: "fence"}.get(
        mission_type, "rally"
    )


class _MavStub:
    """Item.message wants a codec with ``mission_item_int_encode``; the class constructor is
    the same without packing state."""

    @staticmethod
    def mission_item_int_encode(*args: Any) -> Any:
        return m.MAVLink_mission_item_int_message(*args)


_mav_stub = _MavStub()
