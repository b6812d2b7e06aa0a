"""The run log: one SQLite file per run, holding the mission, the plan, every event and the
telemetry of every tick.

Events are appended and committed *before* the orchestrator acts on them. Telemetry is stored
columnar, one row per tick with one float32 blob per field, because a row per drone per tick
cannot keep up with thousands of drones.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep.errors import StoreError

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    t_s REAL NOT NULL,
    kind TEXT NOT NULL,
    drone TEXT,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_kind ON events(kind);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    args TEXT NOT NULL,
    taken INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS telemetry (
    tick INTEGER PRIMARY KEY,
    t_s REAL NOT NULL,
    x_m BLOB NOT NULL, y_m BLOB NOT NULL, alt_m BLOB NOT NULL,
    speed_mps BLOB NOT NULL, battery BLOB NOT NULL, mode BLOB NOT NULL
);
"""

TELEMETRY_FIELDS = ("x_m", "y_m", "alt_m", "speed_mps", "battery", "mode")


@dataclass(frozen=True)
class Event:
    t_s: float
    kind: str
    drone: str | None
    data: dict[str, Any]


class RunLog:
    """An open run database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | Path, *, create: bool = False) -> None:
        self.path = Path(path)
        if not create and not self.path.exists():
            raise StoreError(f"{self.path}: no such run log")
        if create and self.path.exists():
            self.path.unlink()
        try:
            self.db = sqlite3.connect(self.path)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            if create:
                self.db.executescript(_SCHEMA)
                self.set_meta("schema_version", SCHEMA_VERSION)
                self.db.commit()
            version = self.meta("schema_version")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a skysweep run log ({exc})") from None
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: run log schema {version}, expected {SCHEMA_VERSION}")
        self._tick = self._next_tick()

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.db.commit()
        self.db.close()

    # -- meta --------------------------------------------------------------------------------

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    def meta(self, key: str, default: Any = None) -> Any:
        try:
            row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a skysweep run log ({exc})") from None
        return default if row is None else json.loads(row[0])

    # -- events ------------------------------------------------------------------------------

    def append(self, events: list[Event]) -> None:
        """Write events and commit: once this returns, they survive a crash."""
        if not events:
            return
        self.db.executemany(
            "INSERT INTO events(t_s, kind, drone, data) VALUES (?, ?, ?, ?)",
            [(e.t_s, e.kind, e.drone, json.dumps(e.data)) for e in events],
        )
        self.db.commit()

    def events(self, kind: str | None = None) -> Iterator[Event]:
        sql = "SELECT t_s, kind, drone, data FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        for t_s, k, drone, data in self.db.execute(sql + " ORDER BY id", args):
            yield Event(t_s, k, drone, json.loads(data))

    # -- operator commands -------------------------------------------------------------------

    def post_command(self, kind: str, args: dict[str, Any]) -> int:
        """Queue an operator command for the orchestrator flying this run (from any process);
        returns its number."""
        try:
            cur = self.db.execute(
                "INSERT INTO commands(kind, args) VALUES (?, ?)", (kind, json.dumps(args))
            )
            self.db.commit()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot queue the command ({exc})") from None
        return int(cur.lastrowid or 0)

    def take_commands(self) -> list[tuple[int, str, dict[str, Any]]]:
        """Operator commands not taken yet, oldest first; they are marked taken."""
        rows = self.db.execute(
            "SELECT id, kind, args FROM commands WHERE taken = 0 ORDER BY id"
        ).fetchall()
        if rows:
            self.db.execute(
                f"UPDATE commands SET taken = 1 WHERE id <= {int(rows[-1][0])} AND taken = 0"
            )
        return [(int(i), str(k), json.loads(a)) for i, k, a in rows]

    # -- telemetry ---------------------------------------------------------------------------

    def _next_tick(self) -> int:
        row = self.db.execute("SELECT MAX(tick) FROM telemetry").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    def record(self, t_s: float, columns: dict[str, NDArray[Any]]) -> None:
        """Queue one tick of telemetry; it is committed with the next events or on close."""
        blobs = []
        for name in TELEMETRY_FIELDS:
            dtype = np.int8 if name == "mode" else np.float32
            blobs.append(np.ascontiguousarray(columns[name], dtype=dtype).tobytes())
        self.db.execute(
            "INSERT INTO telemetry VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (self._tick, t_s, *blobs)
        )
        self._tick += 1

    def telemetry(self) -> Iterator[tuple[float, dict[str, NDArray[Any]]]]:
        """Every tick in order: ``(t_s, {field: array over drones})``."""
        cols = ", ".join(TELEMETRY_FIELDS)
        for row in self.db.execute(f"SELECT t_s, {cols} FROM telemetry ORDER BY tick"):
            out: dict[str, NDArray[Any]] = {}
            for name, blob in zip(TELEMETRY_FIELDS, row[1:], strict=True):
                out[name] = np.frombuffer(blob, np.int8 if name == "mode" else np.float32)
            yield float(row[0]), out
