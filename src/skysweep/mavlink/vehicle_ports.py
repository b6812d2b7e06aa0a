"""The UDP side of the simulated vehicles (:mod:`skysweep.mavlink.vehicles`): one socket per
``per_port`` system ids, the ground stations each port answers, framing, signing, and the
count of everything refused on the way in.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.errors import LinkError
from skysweep.mavlink import signing
from skysweep.mavlink.dialect import VEHICLE_COMPONENT, new_mav
from skysweep.mavlink.dialect import mavlink as m

#: A ground station silent this long (wall seconds) is no longer sent to.
PEER_TIMEOUT_S = 30.0
#: Largest datagram sent, bytes: frames are packed together up to this (below a UDP MTU), as
#: ArduPilot's UDP driver packs what it has buffered.
DATAGRAM_B = 1400
SOCKET_BUFFER_B = 4 * 1024 * 1024
_SIGNED = m.MAVLINK_IFLAG_SIGNED


class Ports:
    """UDP ports ``base_port, base_port + 1, …`` bound on ``host``, serving ``n`` vehicles:
    vehicle ``i`` is system ``i % per_port + 1`` on port ``base_port + i // per_port``.

    A port sends to every address that sent it a datagram in the last :data:`PEER_TIMEOUT_S`
    wall seconds, and to every one of ``peers`` (configured ground stations hear all ports).
    With ``signing_key`` it signs everything it sends and refuses unsigned, wrongly signed and
    replayed input.
    """

    def __init__(
        self,
        n: int,
        host: str,
        base_port: int,
        per_port: int,
        signing_key: bytes | None = None,
        peers: Sequence[tuple[str, int]] = (),
    ) -> None:
        if not 1 <= per_port <= 255:
            raise LinkError(f"per_port must be 1-255 system ids, not {per_port}")
        self.n = n
        self.per_port = per_port
        count = max(1, -(-n // per_port))
        self.numbers = [base_port + k for k in range(count)]
        if base_port < 1 or self.numbers[-1] > 65535:
            raise LinkError(f"ports {self.numbers[0]}-{self.numbers[-1]} are out of range")
        self.socks: list[socket.socket] = []
        try:
            for port in self.numbers:
                self.socks.append(_bind(host, port))
        except LinkError:
            self.close()
            raise
        self._key = signing_key
        # one codec per port parses its input and packs for all its vehicles
        self._codecs = [new_mav(1, VEHICLE_COMPONENT) for _ in self.numbers]
        if signing_key is not None:
            for k, codec in enumerate(self._codecs):
                signing.enable(codec, signing_key, link_id=k)
        self._peers: list[dict[tuple[str, int], float]] = [{} for _ in self.numbers]
        self._fixed = [(str(h), int(p)) for h, p in peers]
        self._out: list[list[bytes]] = [[] for _ in self.numbers]
        self._txseq = [0] * n  # each vehicle numbers its own frames
        self.port_of = np.arange(n) // per_port
        self.up = np.ones(n, bool)
        """Vehicles that can send (alive, radio up): set by the owner before each pass."""
        self.rejected: Counter[str] = Counter()
        """Input refused, by reason (signatures, malformed frames, absurd fields …)."""
        self.sent_datagrams = 0

    def sysid(self, i: int) -> tuple[int, int]:
        return self.numbers[i // self.per_port], i % self.per_port + 1

    def send(self, i: int, msg: Any) -> None:
        """Queue ``msg`` from vehicle ``i`` (dropped if it cannot send)."""
        if not self.up[i]:
            return
        p = int(self.port_of[i])
        codec = self._codecs[p]
        codec.srcSystem = i % self.per_port + 1
        codec.seq = self._txseq[i]
        self._out[p].append(msg.pack(codec))
        self._txseq[i] = (self._txseq[i] + 1) & 0xFF

    def flush(self) -> None:
        """Send everything queued, to every peer of its port."""
        for p, out in enumerate(self._out):
            if not out:
                continue
            addrs = list(self._peers[p]) + [a for a in self._fixed if a not in self._peers[p]]
            sock = self.socks[p]
            for datagram in _datagrams(out) if addrs else ():
                for addr in addrs:
                    # a full buffer or an unreachable peer drops the datagram, as radio would
                    with contextlib.suppress(OSError):
                        sock.sendto(datagram, addr)
                        self.sent_datagrams += 1
            out.clear()

    def receive(self, wall: float) -> Iterator[tuple[int, Any]]:
        """(port index, message) of every well-formed (and well-signed) message waiting; the
        sender of any datagram becomes a peer of its port."""
        for p, sock in enumerate(self.socks):
            peers = self._peers[p]
            while True:
                try:
                    data, addr = sock.recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except ConnectionRefusedError:
                    continue  # an ICMP error for an earlier send
                except OSError:
                    break
                peers[(str(addr[0]), int(addr[1]))] = wall
                for msg in self._parse(p, data):
                    yield p, msg

    def _parse(self, p: int, data: bytes) -> list[Any]:
        codec = self._codecs[p]
        # a datagram holds whole frames: garbage in one must not swallow the start of the next
        codec.buf = bytearray()
        codec.buf_index = 0
        codec.expected_length = m.HEADER_LEN_V1 + 2
        try:
            msgs = codec.parse_buffer(data) or []
        except Exception:  # robust parsing reports BAD_DATA; this is a last resort
            self.rejected["malformed"] += 1
            return []
        if codec.buf_len() > 0:
            self.rejected["truncated"] += 1
        good = []
        for msg in msgs:
            if msg.get_msgId() == m.MAVLINK_MSG_ID_BAD_DATA:
                self.rejected[self._bad_reason(msg)] += 1
            else:
                good.append(msg)
        return good

    def _bad_reason(self, msg: Any) -> str:
        reason = str(getattr(msg, "reason", ""))
        if "signature" not in reason:
            return "bad crc" if "crc" in reason.lower() else "malformed"
        frame = bytes(msg.data)
        if len(frame) < 13 or frame[0] != 0xFD or not frame[2] & _SIGNED:
            return "unsigned"
        assert self._key is not None
        good = hashlib.sha256(self._key + frame[:-6]).digest()[:6] == frame[-6:]
        # a good signature refused all the same: its timestamp is not newer (a replay)
        return "replayed" if good else "bad signature"

    def heard(self, wall: float) -> NDArray[np.bool_]:
        """Forget peers silent too long; which vehicles have someone to send to."""
        has = np.zeros(len(self.numbers), bool)
        for p, peers in enumerate(self._peers):
            for addr in [a for a, t in peers.items() if wall - t > PEER_TIMEOUT_S]:
                del peers[addr]
            has[p] = bool(peers) or bool(self._fixed)
        heard: NDArray[np.bool_] = has[self.port_of]
        return heard

    def targets(self, p: int, system: int, component: int) -> list[int]:
        """Vehicles on port ``p`` that a message for (system, component) reaches (system 0:
        all of them), among those that can hear."""
        if component not in (0, VEHICLE_COMPONENT):
            return []
        lo = p * self.per_port
        hi = min(self.n, lo + self.per_port)
        if system == 0:
            found = range(lo, hi)
        elif 1 <= system <= hi - lo:
            found = range(lo + system - 1, lo + system)
        else:
            return []
        up = self.up
        return [i for i in found if up[i]]

    def close(self) -> None:
        for sock in self.socks:
            sock.close()


def _datagrams(frames: list[bytes]) -> list[bytes]:
    """Frames packed into datagrams of at most :data:`DATAGRAM_B` bytes (a larger frame alone)."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 0
    for f in frames:
        if chunk and size + len(f) > DATAGRAM_B:
            out.append(b"".join(chunk))
            chunk, size = [], 0
        chunk.append(f)
        size += len(f)
    if chunk:
        out.append(b"".join(chunk))
    return out


def _bind(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER_B)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER_B)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LinkError(f"cannot serve vehicles at udp {host}:{port} ({exc.strerror})") from None
    sock.setblocking(False)
    return sock
