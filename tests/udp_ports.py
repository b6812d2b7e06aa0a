"""Free UDP ports on 127.0.0.1 for tests that serve vehicles (shared by the MAVLink tests)."""

from __future__ import annotations

import random
import socket


def free_base_port(count: int) -> int:
    """A base port with ``count`` free UDP ports from it (bind-tested)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randint(20_000, 60_000)
        socks: list[socket.socket] = []
        try:
            for k in range(count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
        return base
    raise RuntimeError("no free UDP ports")
