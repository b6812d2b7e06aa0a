"""Operator tokens: who may see a mission, command its drones, or edit its zones.

A token is ``v1.<payload>.<signature>``: the payload is base64url JSON (``sub``, ``roles``,
``iat``, ``exp``, Unix seconds), the signature an HMAC-SHA256 of ``v1.<payload>`` with the
server's secret. Nothing is stored per token: a server checks any token with its secret, and
a token dies when it expires or the secret is replaced. Pure functions of their arguments
(``now_s`` is given), but for :func:`load_secret`, which reads or makes the secret file.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from skysweep.errors import AuthError

#: The roles, least to most trusted in what they change.
ROLES = ("viewer", "operator", "safety")
#: Where the secret lives unless ``--secret`` says otherwise.
DEFAULT_SECRET = Path("~/.skysweep/secret")
_PREFIX = "v1"


@dataclass(frozen=True)
class Principal:
    """Who a valid token speaks for."""

    sub: str
    roles: frozenset[str]
    exp_s: float
    """Expiry, Unix seconds."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: bytes, body: str) -> str:
    return _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())


def create_token(
    secret: bytes, sub: str, roles: list[str] | tuple[str, ...], now_s: float, ttl_s: float
) -> str:
    """A token for ``sub`` holding ``roles``, valid from ``now_s`` for ``ttl_s`` seconds."""
    unknown = [r for r in roles if r not in ROLES]
    if unknown or not roles:
        raise AuthError(f"roles must be some of {', '.join(ROLES)}, not {roles!r}")
    if ttl_s <= 0:
        raise AuthError(f"a token must live a positive time, not {ttl_s} s")
    payload = {
        "sub": sub,
        "roles": sorted(set(roles)),
        "iat": int(now_s),
        "exp": int(now_s + ttl_s),
    }
    body = f"{_PREFIX}.{_b64(json.dumps(payload, separators=(',', ':')).encode())}"
    return f"{body}.{_sign(secret, body)}"


def verify_token(secret: bytes, token: str, now_s: float) -> Principal:
    """The principal of a valid token; :class:`AuthError` saying why one is not valid."""
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != _PREFIX:
        raise AuthError("not a skysweep token")
    body = f"{parts[0]}.{parts[1]}"
    if not hmac.compare_digest(_sign(secret, body), parts[2]):
        raise AuthError("bad token signature")
    try:
        payload = json.loads(_unb64(parts[1]))
        sub, roles, exp = str(payload["sub"]), payload["roles"], float(payload["exp"])
    except (ValueError, KeyError, TypeError):
        raise AuthError("malformed token payload") from None
    if now_s >= exp:
        raise AuthError("token expired")
    if not isinstance(roles, list) or not set(roles) <= set(ROLES):
        raise AuthError("token names an unknown role")
    return Principal(sub, frozenset(roles), exp)


def load_secret(path: Path, create: bool = True) -> bytes:
    """The server secret in ``path`` (made, 32 random bytes, mode 0600, if missing and
    ``create``)."""
    path = path.expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise AuthError(f"{path}: no such secret file") from None
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode())
        data = path.read_bytes()
    except OSError as exc:
        raise AuthError(f"{path}: cannot read the secret ({exc.strerror})") from None
    data = data.strip()
    if len(data) < 16:
        raise AuthError(f"{path}: the secret is too short (at least 16 bytes)")
    return data
