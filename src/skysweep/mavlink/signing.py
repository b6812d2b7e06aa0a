"""MAVLink 2 message signing: the key file, and a codec set up to sign and verify.

The key is 32 bytes shared by the ground station and the vehicles. A key file holds it as 64 hex
digits (what ``skysweep`` writes and most tools print), as 32 raw bytes, or as a passphrase whose
SHA-256 is the key (what MAVProxy's ``signing setup PASSPHRASE`` and Mission Planner use). The
key is never logged, stored in a run database or shown by the API: only its fingerprint
(:func:`fingerprint`) is.
"""

from __future__ import annotations

import hashlib
import re
import time
import types
from pathlib import Path
from typing import Any

from skysweep.errors import LinkError

#: Signing timestamps count 10 µs units since 2015-01-01 00:00 UTC.
_EPOCH_2015_S = 1_420_070_400
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")
#: A new stream is taken if its timestamp is at most a minute behind ours (10 µs units).
_NEW_STREAM_SLACK = 6_000_000


def load_key(path: str | Path) -> bytes:
    """The 32-byte signing key in ``path`` (hex, raw bytes or a passphrase)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise LinkError(f"{p}: cannot read the signing key ({exc.strerror})") from None
    text = raw.strip()
    if not text:
        raise LinkError(f"{p}: the signing key file is empty")
    if len(raw) == 32 and not _HEX_KEY.fullmatch(raw.decode("latin-1")):
        return raw
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        raise LinkError(
            f"{p}: not a signing key (expected 64 hex digits, 32 raw bytes or a passphrase)"
        ) from None
    if _HEX_KEY.fullmatch(decoded):
        return bytes.fromhex(decoded)
    return hashlib.sha256(text).digest()


def fingerprint(key: bytes) -> str:
    """A short public name of a key, safe to log: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def timestamp_now(wall_s: float | None = None) -> int:
    """The signing timestamp for the wall-clock time ``wall_s`` (default: now)."""
    t = time.time() if wall_s is None else wall_s
    return int((t - _EPOCH_2015_S) * 100_000)


def enable(mav: Any, key: bytes, link_id: int = 0, sign_outgoing: bool = True) -> None:
    """Sign everything ``mav`` (a pymavlink codec) sends and reject unsigned, wrongly signed and
    replayed (old-timestamp) messages it receives; pymavlink does the cryptography."""
    if len(key) != 32:
        raise LinkError(f"a MAVLink signing key is 32 bytes, not {len(key)}")
    mav.signing.secret_key = key
    mav.signing.link_id = link_id & 0xFF
    mav.signing.timestamp = max(int(mav.signing.timestamp), timestamp_now())
    mav.signing.sign_outgoing = sign_outgoing
    mav.signing.allow_unsigned_callback = None
    mav.check_signature = types.MethodType(_check_signature, mav)


def _check_signature(mav: Any, msgbuf: bytearray, src_system: int, src_component: int) -> bool:
    """pymavlink's check of an incoming signed message, in the order the MAVLink signing spec
    gives: the signature first, and only then the stream's timestamp moved on. pymavlink moves
    it before it checks the signature, so a message signed with another key, or forged, and
    stamped later than the real sender's (same link id, system and component) made the real
    sender's next messages be refused as replays. Seen as a flaky test: a ground station with
    the wrong key set up a few milliseconds after the right one blocked the right one's
    request."""
    timestamp = int.from_bytes(bytes(msgbuf[-12:-6]), "little")
    stream = (msgbuf[-13], src_system, src_component)
    last = mav.signing.stream_timestamps.get(stream)
    if last is not None and timestamp <= last:
        return False  # a replay, or out of order
    if last is None and timestamp + _NEW_STREAM_SLACK < mav.signing.timestamp:
        return False  # a new stream more than a minute behind our clock
    signature = hashlib.sha256(mav.signing.secret_key + bytes(msgbuf[:-6])).digest()[:6]
    if signature != bytes(msgbuf[-6:]):
        return False
    mav.signing.stream_timestamps[stream] = timestamp
    # (we next send stamped no earlier than what we heard)
    mav.signing.timestamp = max(mav.signing.timestamp, timestamp)
    return True
