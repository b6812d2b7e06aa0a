"""The run log: one SQLite file per run, holding the mission, the plan, every event, the
telemetry of every tick and the latest checkpoint of the mission.

Events are appended and committed *before* the orchestrator acts on them. Telemetry is stored
columnar, one row per tick with one float32 blob per field, because a row per drone per tick
cannot keep up with thousands of drones.

A checkpoint is the whole state of a flight (orchestrator and, in simulation, the simulated
fleet), pickled, written in one transaction with the events and telemetry up to it. A killed
run resumes from its last checkpoint and flies the ticks after it again; because a run is
deterministic, those ticks give again the events already logged, which :meth:`RunLog.append`
recognises and does not write twice (see docs/operations.md, "Crash and resume"). A
checkpoint is the program's own state, so only the build of skysweep that wrote it reads it
back (:func:`build_id`): another one would fly on with state it does not know, or without state
it needs.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import pickle
import sqlite3
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from skysweep import __version__
from skysweep.errors import StoreError
from skysweep.fence import FenceField

SCHEMA_VERSION = 3


@functools.cache
def build_id() -> str:
    """This build of skysweep: its version and a digest of the package's Python sources (a
    checkpoint pickles the program's own objects, which change between builds without a new
    version number)."""
    root = Path(__file__).parent
    digest = hashlib.sha256(__version__.encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


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
CREATE TABLE IF NOT EXISTS checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    tick INTEGER NOT NULL,
    t_s REAL NOT NULL,
    last_event INTEGER NOT NULL,
    state BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS shared (key TEXT PRIMARY KEY, data BLOB NOT NULL);
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


#: Event kinds the log writes about itself, never given again by a resumed run.
_LOG_OWN_KINDS = ("resumed",)

#: Sim-time tolerance, s, when matching a replayed event to the logged one.
_REPLAY_T_TOL_S = 1e-6


@dataclass(frozen=True)
class Checkpoint:
    tick: int
    """The last tick whose events and telemetry the checkpoint includes."""
    t_s: float
    state: Any
    replay: int
    """Events logged after the checkpoint, which the resumed run gives again."""


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
        # id of the last event the running flight gave (logged, or matched while replaying)
        self._last_event = self._max_event_id()
        self._replay: deque[tuple[int, float, str, str | None]] = deque()
        self._shared_written: set[str] = set()

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
        """Write events and commit: once this returns, they survive a crash.

        While a resumed run replays the ticks after its checkpoint, an event it gives again
        is matched to the logged one and not written twice; on the first that differs (a
        run is deterministic, so only a changed program or environment does that), the
        rest of the old tail is left as it was logged and new events follow it.

        With no events it still commits what :meth:`record` queued: an open write transaction
        would lock out every other writer (the operator server's audit) until the next event."""
        if not events:
            if self.db.in_transaction:
                self.db.commit()
            return
        fresh = events
        if self._replay:
            fresh = []
            for k, e in enumerate(events):
                if not self._replay:
                    fresh = events[k:]
                    break
                eid, t_s, kind, drone = self._replay[0]
                if kind == e.kind and drone == e.drone and abs(t_s - e.t_s) <= _REPLAY_T_TOL_S:
                    self._replay.popleft()
                    self._last_event = eid
                    continue
                diverged = {"at_event": eid, "logged": [t_s, kind, drone]}
                diverged["given"] = [e.t_s, e.kind, e.drone]
                self._replay.clear()
                fresh = [Event(e.t_s, "resume_diverged", None, diverged), *events[k:]]
                break
        if fresh:
            self.db.executemany(
                "INSERT INTO events(t_s, kind, drone, data) VALUES (?, ?, ?, ?)",
                [(e.t_s, e.kind, e.drone, json.dumps(e.data)) for e in fresh],
            )
            self._last_event = self._max_event_id()
        self.db.commit()

    @property
    def replaying(self) -> bool:
        """Whether a resumed run is still giving again events logged before the crash."""
        return bool(self._replay)

    def _max_event_id(self) -> int:
        row = self.db.execute("SELECT MAX(id) FROM events").fetchone()
        return 0 if row is None or row[0] is None else int(row[0])

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
        """Operator commands not taken yet, oldest first; they are marked taken at the tick
        being flown (committed with its events). A resumed run replaying its lost ticks
        takes again exactly the commands it took at each, and new ones once caught up."""
        mark = self._tick + 1  # 0 is "not taken"
        if self._replay:
            rows = self.db.execute(
                "SELECT id, kind, args FROM commands WHERE taken = ? ORDER BY id", (mark,)
            ).fetchall()
            return [(int(i), str(k), json.loads(a)) for i, k, a in rows]
        rows = self.db.execute(
            "SELECT id, kind, args FROM commands WHERE taken = 0 ORDER BY id"
        ).fetchall()
        if rows:
            self.db.execute(
                "UPDATE commands SET taken = ? WHERE id <= ? AND taken = 0",
                (mark, int(rows[-1][0])),
            )
        return [(int(i), str(k), json.loads(a)) for i, k, a in rows]

    # -- checkpoints -------------------------------------------------------------------------

    def save_checkpoint(self, t_s: float, state: object) -> None:
        """Make ``state`` (picklable) the run's checkpoint as of the last recorded tick, in
        one transaction with every event and telemetry row before it. Fence fields, large
        and rarely changed, are stored once and referred to."""
        buf = io.BytesIO()
        try:
            _SharingPickler(buf, self).dump(state)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise StoreError(f"{self.path}: cannot checkpoint the run ({exc})") from None
        self.db.execute(
            "INSERT OR REPLACE INTO checkpoint(id, tick, t_s, last_event, state) "
            "VALUES (0, ?, ?, ?, ?)",
            (self._tick - 1, t_s, self._last_event, buf.getvalue()),
        )
        self.set_meta("checkpoint_build", build_id())
        self.db.commit()

    def resume(self) -> Checkpoint:
        """Load the checkpoint of a run that stopped without ending, and make ready to fly on
        from it: telemetry after it is dropped (it will be recorded again), the events after
        it are queued for matching. Raises :class:`StoreError` if there is none to resume, or
        another build of skysweep wrote it (:func:`build_id`)."""
        if self.meta("summary") is not None:
            raise StoreError(f"{self.path}: the mission in this run log has already ended")
        row = self.db.execute(
            "SELECT tick, t_s, last_event, state FROM checkpoint WHERE id = 0"
        ).fetchone()
        if row is None:
            raise StoreError(
                f"{self.path}: no checkpoint to resume from (the run stopped before its "
                "mission started); fly it again"
            )
        written = self.meta("checkpoint_build")
        if written != build_id():
            by = f"skysweep {written}" if written else "an older skysweep"
            raise StoreError(
                f"{self.path}: its checkpoint was written by {by}, not by this build "
                f"({build_id()}); resume it with the build that flew it, or fly the mission again"
            )
        tick, t_s, last_event, blob = int(row[0]), float(row[1]), int(row[2]), row[3]
        try:
            state = _SharingUnpickler(io.BytesIO(blob), self).load()
        except Exception as exc:  # a damaged pickle
            raise StoreError(f"{self.path}: cannot read its checkpoint ({exc})") from None
        placeholders = ", ".join("?" * len(_LOG_OWN_KINDS))
        tail = self.db.execute(
            f"SELECT id, t_s, kind, drone FROM events WHERE id > ? "
            f"AND kind NOT IN ({placeholders}) ORDER BY id",
            (last_event, *_LOG_OWN_KINDS),
        ).fetchall()
        self._replay = deque((int(i), float(t), str(k), d) for i, t, k, d in tail)
        self._last_event = last_event
        self.db.execute("DELETE FROM telemetry WHERE tick > ?", (tick,))
        self._tick = tick + 1
        self.db.execute(
            "INSERT INTO events(t_s, kind, drone, data) VALUES (?, 'resumed', NULL, ?)",
            (t_s, json.dumps({"checkpoint_t_s": t_s, "events_to_replay": len(tail)})),
        )
        self.db.commit()
        return Checkpoint(tick, t_s, state, len(tail))

    def _shared_key(self, obj: FenceField) -> str:
        h = hashlib.sha1()
        for a in (obj.edges, obj.grid):
            h.update(np.ascontiguousarray(a).tobytes())
        h.update(repr(obj.reach_m).encode())
        key = "fence:" + h.hexdigest()
        if key not in self._shared_written:
            self.db.execute(
                "INSERT OR IGNORE INTO shared(key, data) VALUES (?, ?)",
                (key, pickle.dumps(obj, protocol=5)),
            )
            self._shared_written.add(key)
        return key

    def _shared(self, key: str) -> Any:
        row = self.db.execute("SELECT data FROM shared WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise StoreError(f"{self.path}: its checkpoint refers to {key}, which is missing")
        return pickle.loads(row[0])

    # -- telemetry ---------------------------------------------------------------------------

    def _next_tick(self) -> int:
        row = self.db.execute("SELECT MAX(tick) FROM telemetry").fetchone()
        return 0 if row is None or row[0] is None else int(row[0]) + 1

    @property
    def ticks(self) -> int:
        """Ticks of telemetry recorded so far."""
        return self._tick

    def record(self, t_s: float, columns: dict[str, NDArray[Any]]) -> None:
        """Queue one tick of telemetry; it is committed by the next :meth:`append` (the tick's)."""
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


class _SharingPickler(pickle.Pickler):
    """Pickles fence fields by reference to the log's ``shared`` table."""

    def __init__(self, file: io.BytesIO, log: RunLog) -> None:
        super().__init__(file, protocol=5)
        self._log = log

    def persistent_id(self, obj: Any) -> str | None:
        if type(obj) is FenceField:
            return self._log._shared_key(obj)
        return None


class _SharingUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, log: RunLog) -> None:
        super().__init__(file)
        self._log = log
        self._cache: dict[str, Any] = {}

    def persistent_load(self, pid: Any) -> Any:
        key = str(pid)
        if key not in self._cache:
            self._cache[key] = self._log._shared(key)
        return self._cache[key]
