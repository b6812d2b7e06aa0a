"""The telemetry fast path: the few messages that are nearly all of a fleet's traffic, decoded
without building a pymavlink message object for each.

A fleet of 2,500 at 5 Hz sends some 50,000 GLOBAL_POSITION_INT, SYS_STATUS, EXTENDED_SYS_STATE
and MISSION_CURRENT frames a second, and pymavlink's parser spends most of its time per frame in
Python bookkeeping (its state machine, the message object, its header object). For those
frames only, and only when they are plain MAVLink 2 (no signature, no unknown flags, a payload
no longer than the message), :func:`frames` walks the bytes itself and decodes each payload
with the message's own layout from the pymavlink dialect: its ``unpacker`` (struct format in
wire order), its ``crc_extra``, and the dialect's CRC-16/MCRF4XX (``fastcrc``, as pymavlink
itself uses). A message comes out as a named tuple with pymavlink's field names, so the link's
handlers take either.

Everything else — heartbeats, the mission protocol, command acks, MAVLink 1, signed frames,
anything malformed — is left to pymavlink: a frame the fast path does not take whole is handed
on as bytes, and at the first bytes that are not a well-formed frame it stops and hands on the
rest, so pymavlink resynchronises and counts the damage exactly as it would have without the
fast path (a property test checks the two agree on arbitrary input).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from skysweep.mavlink.dialect import mavlink as m

#: The messages taken on the fast path: the telemetry streamed at the fleet's rate, whose
#: payloads have no array or text fields (those need pymavlink's reassembly).
HOT_MESSAGES = ("GLOBAL_POSITION_INT", "SYS_STATUS", "EXTENDED_SYS_STATE", "MISSION_CURRENT")

_MAGIC_V2 = 0xFD
_HEADER = 10  # magic, len, incompat, compat, seq, sysid, compid, msgid (3)
_CRC = 2


@dataclass(frozen=True)
class Layout:
    """How to decode one message's payload (all from the pymavlink dialect)."""

    unpack: Callable[[bytes], tuple[Any, ...]]
    size: int
    """Full payload length, bytes (MAVLink 2 trims trailing zeros on the wire)."""
    crc_extra: bytes
    make: Callable[[tuple[Any, ...]], Any]
    """A named tuple of the fields, in wire order, with pymavlink's names."""


def _layouts() -> dict[int, Layout]:
    out = {}
    for name in HOT_MESSAGES:
        cls = m.mavlink_map[getattr(m, f"MAVLINK_MSG_ID_{name}")]
        # a field that is an array or text is reassembled by pymavlink: not for this path
        assert not any(cls.array_lengths), name
        fields = namedtuple(name.title().replace("_", ""), cls.ordered_fieldnames)  # type: ignore[misc]
        out[cls.id] = Layout(
            unpack=cls.unpacker.unpack,
            size=cls.unpacker.size,
            crc_extra=bytes([cls.crc_extra]),
            make=fields._make,
        )
    return out


#: The dialect's CRC-16/MCRF4XX (from ``fastcrc``); without it there is no fast path.
CRC = getattr(m, "mcrf4xx", None)
LAYOUTS: dict[int, Layout] = _layouts() if CRC is not None else {}


def frames(data: bytes) -> Iterator[tuple[int, int, int, Any] | bytes]:
    """Walk ``data`` (whole MAVLink frames, as a datagram holds, or the start of a stream with
    nothing buffered before it): yield ``(msg_id, system, component, fields)`` for each hot
    message, the bytes of each other well-formed MAVLink 2 frame for pymavlink, and, where
    something is not a well-formed frame the fast path takes (a bad CRC, MAVLink 1, a
    signature, a frame cut short, noise), everything from there on, for pymavlink."""
    crc = CRC
    layouts = LAYOUTS
    n = len(data)
    pos = 0
    while pos < n:
        if data[pos] != _MAGIC_V2 or pos + _HEADER + _CRC > n or data[pos + 2]:
            break  # not a v2 frame start, too short for one, or signed / unknown flags
        mlen = data[pos + 1]
        end = pos + _HEADER + mlen + _CRC
        if end > n:
            break
        msg_id = data[pos + 7] | data[pos + 8] << 8 | data[pos + 9] << 16
        layout = layouts.get(msg_id)
        if layout is None:
            yield data[pos:end]
            pos = end
            continue
        if mlen > layout.size or crc is None:
            break
        body_end = end - _CRC
        check = crc(layout.crc_extra, crc(data[pos + 1 : body_end], 0xFFFF))
        if check != data[body_end] | data[body_end + 1] << 8:
            break  # pymavlink reports it, and resynchronises after it
        payload = data[pos + _HEADER : body_end]
        if mlen < layout.size:
            payload += bytes(layout.size - mlen)
        yield msg_id, data[pos + 5], data[pos + 6], layout.make(layout.unpack(payload))
        pos = end
    if pos < n:
        yield data[pos:]
