"""Byte channels to vehicles: UDP (either side listening), TCP and serial.

Endpoints are written as ground stations write them::

    udp:HOST:PORT       the vehicles listen at HOST:PORT; skysweep sends to it (and its
                        heartbeat lets the vehicles answer), e.g. ``skysweep vehicles``
    udpin:HOST:PORT     skysweep listens at HOST:PORT; vehicles send to it (PX4 SITL sends to
                        14550, ArduPilot SITL through ``--out``)
    tcp:HOST:PORT       skysweep connects (ArduPilot SITL serves 5760)
    serial:DEVICE[:BAUD] a radio or a companion link, e.g. ``serial:/dev/ttyUSB0:57600``

A channel is non-blocking: :meth:`Channel.receive` returns what has arrived, :meth:`Channel.send`
writes one frame. A UDP channel that listens answers every address it has heard from.
"""

from __future__ import annotations

import contextlib
import os
import socket
import termios
from dataclasses import dataclass
from typing import Any, Protocol

from skysweep.errors import LinkError

#: Receive buffer asked of the OS, bytes: thousands of vehicles at 5 Hz fill the default fast.
RECV_BUFFER_B = 8 * 1024 * 1024
_MAX_DATAGRAM = 65_535
#: A listening UDP channel forgets a peer silent this long, s.
PEER_TIMEOUT_S = 30.0


class Channel(Protocol):
    name: str

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        """Everything that arrived since the last call (datagrams or stream chunks), each with
        the address it came from (None on a stream)."""

    def send(self, data: bytes, to: Any = None) -> None:
        """Write ``data`` (whole frames) to the address ``to`` (one that :meth:`receive` gave),
        or to every vehicle the channel reaches."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Endpoint:
    kind: str  # udp | udpin | tcp | serial
    host: str
    port: int
    text: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """An endpoint from its text; :class:`LinkError` naming the text if it is malformed."""
        kind, _, rest = text.partition(":")
        kind = kind.lower()
        if kind == "serial":
            device, _, baud = rest.partition(":")
            if not device:
                raise LinkError(
                    f"link {text!r}: a serial link needs a device, serial:DEVICE[:BAUD]"
                )
            try:
                rate = int(baud) if baud else 57600
            except ValueError:
                raise LinkError(f"link {text!r}: baud rate {baud!r} is not a number") from None
            return cls(kind, device, rate, text)
        if kind not in ("udp", "udpin", "udpout", "tcp"):
            raise LinkError(f"link {text!r}: unknown kind {kind!r} (udp:, udpin:, tcp: or serial:)")
        host, _, port = rest.rpartition(":")
        try:
            number = int(port)
        except ValueError:
            raise LinkError(f"link {text!r}: port {port!r} is not a number") from None
        if not 0 < number < 65536:
            raise LinkError(f"link {text!r}: port {number} is out of range")
        return cls("udp" if kind == "udpout" else kind, host or "0.0.0.0", number, text)

    def open(self) -> Channel:
        if self.kind == "udp":
            return UdpChannel(self.text, listen=None, remote=(self.host, self.port))
        if self.kind == "udpin":
            return UdpChannel(self.text, listen=(self.host, self.port), remote=None)
        if self.kind == "tcp":
            return TcpChannel(self.text, (self.host, self.port))
        return SerialChannel(self.text, self.host, self.port)


class UdpChannel:
    """A UDP socket: sending to a fixed ``remote``, or listening and answering its peers."""

    def __init__(
        self,
        name: str,
        listen: tuple[str, int] | None,
        remote: tuple[str, int] | None,
    ) -> None:
        self.name = name
        self.remote = remote
        self.peers: dict[tuple[str, int], float] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECV_BUFFER_B)
        try:
            self.sock.bind(listen if listen is not None else ("0.0.0.0", 0))
        except OSError as exc:
            self.sock.close()
            raise LinkError(f"link {name!r}: cannot listen at {listen} ({exc.strerror})") from None
        self.sock.setblocking(False)
        self._now = 0.0

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        out: list[tuple[bytes, Any]] = []
        self._now = now_s
        recv = self.sock.recvfrom
        listening = self.remote is None
        while True:
            try:
                data, addr = recv(_MAX_DATAGRAM)
            except BlockingIOError:
                break
            except ConnectionRefusedError:
                continue  # an ICMP "port unreachable" for an earlier send: the peer is not up yet
            except OSError:
                break
            out.append((data, addr))
            if listening:
                self.peers[addr] = now_s
        return out

    def send(self, data: bytes, to: Any = None) -> None:
        if to is not None:
            targets = [to]
        elif self.remote is not None:
            targets = [self.remote]
        else:
            stale = [a for a, t in self.peers.items() if self._now - t > PEER_TIMEOUT_S]
            for a in stale:
                del self.peers[a]
            targets = list(self.peers)
        for addr in targets:
            # a full send buffer or an unreachable peer drops the frame, as radio would
            with contextlib.suppress(OSError):
                self.sock.sendto(data, addr)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


class TcpChannel:
    """A TCP connection to a vehicle (or a router) serving MAVLink."""

    def __init__(self, name: str, addr: tuple[str, int]) -> None:
        self.name = name
        try:
            self.sock = socket.create_connection(addr, timeout=5.0)
        except OSError as exc:
            raise LinkError(f"link {name!r}: cannot connect to {addr} ({exc})") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.closed = False

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        out: list[tuple[bytes, Any]] = []
        while not self.closed:
            try:
                chunk = self.sock.recv(_MAX_DATAGRAM)
            except BlockingIOError:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                self.closed = True  # the vehicle hung up; it shows as a lost link
                break
            out.append((chunk, None))
        return out

    def send(self, data: bytes, to: Any = None) -> None:
        if self.closed:
            return
        try:
            self.sock.sendall(data)
        except BlockingIOError:
            pass  # a full buffer drops the frame, as radio would
        except OSError:
            self.closed = True

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()


_BAUD = {
    r: getattr(termios, f"B{r}")
    for r in (9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600)
    if hasattr(termios, f"B{r}")
}


class SerialChannel:
    """A serial port (a telemetry radio, a companion computer's UART), raw 8N1."""

    def __init__(self, name: str, device: str, baud: int) -> None:
        self.name = name
        if baud not in _BAUD:
            raise LinkError(f"link {name!r}: baud rate {baud} is not one of {sorted(_BAUD)}")
        try:
            self.fd = os.open(device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        except OSError as exc:
            raise LinkError(f"link {name!r}: cannot open {device} ({exc.strerror})") from None
        try:
            attrs = termios.tcgetattr(self.fd)
            attrs[0] = 0  # iflag: no translation
            attrs[1] = 0  # oflag
            attrs[2] = termios.CS8 | termios.CREAD | termios.CLOCAL
            attrs[3] = 0  # lflag: raw
            attrs[4] = attrs[5] = _BAUD[baud]
            termios.tcsetattr(self.fd, termios.TCSANOW, attrs)
        except termios.error:
            pass  # a pseudo-terminal (tests, socat) has no line settings to make
        self.closed = False

    def receive(self, now_s: float) -> list[tuple[bytes, Any]]:
        out: list[tuple[bytes, Any]] = []
        while not self.closed:
            try:
                chunk = os.read(self.fd, 4096)
            except BlockingIOError:
                break
            except OSError:
                self.closed = True
                break
            if not chunk:
                break
            out.append((chunk, None))
        return out

    def send(self, data: bytes, to: Any = None) -> None:
        if self.closed:
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self.fd, data)

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        os.close(self.fd)
