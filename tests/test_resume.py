"""Nothing lost: a simulated mission whose orchestrator dies at any moment — killed with
SIGKILL, or crashing in the middle of a tick — resumes from its run log and ends exactly as the
same mission flown without a break: the same events, the same telemetry, the same outcome."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_run import SMALL
from typer.testing import CliRunner

from skysweep import mission
from skysweep.cli import app
from skysweep.errors import StoreError
from skysweep.link.sim import SimLink
from skysweep.plan import Plan, plan_mission
from skysweep.runtime.clock import SimClock
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import resume_simulation, sim_world, simulate
from skysweep.safety.kernel import SafetyKernel
from skysweep.sim.faults import parse_faults
from skysweep.store import RunLog, build_id

SKYSWEEP = Path(sys.executable).with_name("skysweep")

FAULTS = """
faults:
  - {at_s: 120, kind: drone_lost, drone: quad-002}
  - {at_s: 300, kind: link_lost, drone: quad-003, duration_s: 30}
  - {at_s: 200, kind: battery_sag, drone: quad-004, capacity_factor: 0.8, resistance_factor: 2}
"""
COMMANDS = """
commands:
  - {at_s: 400, command: pause}
  - {at_s: 430, command: resume}
"""


class Crash(Exception):
    """Stands for the process dying: nothing after it runs, nothing uncommitted survives."""


def _die(log: RunLog) -> None:
    # what SIGKILL leaves behind: the committed transactions, nothing else
    log.db.rollback()
    log.db.close()


def _trail(db: Path) -> tuple[list[tuple[float, str, str | None, str]], list[Any]]:
    """Every event but the log's own notes (as t, kind, drone, data) and every telemetry row."""
    with RunLog(db) as log:
        events = [
            (e.t_s, e.kind, e.drone, json.dumps(e.data, sort_keys=True))
            for e in log.events()
            if e.kind != "resumed"
        ]
        telemetry = [(t, {k: v.copy() for k, v in cols.items()}) for t, cols in log.telemetry()]
    return events, telemetry


def _same_run(db: Path, ref: Path) -> None:
    events, telemetry = _trail(db)
    ref_events, ref_telemetry = _trail(ref)
    # the re-plan's wall time is not in the log; everything in it is the same
    assert [e[:3] for e in events] == [e[:3] for e in ref_events]
    assert [e[3] for e in events] == [e[3] for e in ref_events]
    assert not [e for e in events if e[1] == "resume_diverged"]
    assert len(telemetry) == len(ref_telemetry)
    for (t, cols), (rt, rcols) in zip(telemetry, ref_telemetry, strict=True):
        assert t == rt
        for k in cols:
            assert np.array_equal(cols[k], rcols[k]), (t, k)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("resume")
    paths = {"mission": d / "small.yaml", "faults": d / "faults.yaml", "commands": d / "c.yaml"}
    paths["mission"].write_text(SMALL)
    paths["faults"].write_text(FAULTS)
    paths["commands"].write_text(COMMANDS)
    return paths


@pytest.fixture(scope="module")
def plan(files: dict[str, Path]) -> Plan:
    return plan_mission(mission.load(files["mission"]))


@pytest.fixture(scope="module")
def reference(plan: Plan, tmp_path_factory: pytest.TempPathFactory) -> Path:
    db = tmp_path_factory.mktemp("ref") / "ref.db"
    with RunLog(db, create=True) as log:
        simulate(plan, log, seed=5, faults=_faults(plan))
    return db


def _faults(plan: Plan) -> list[Any]:
    import yaml

    return parse_faults(yaml.safe_load(FAULTS), drone_ids=plan.mission.fleet.ids)


def test_crashes_at_random_moments_of_a_tick_lose_nothing(
    plan: Plan, reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three crashes in one mission, each at a random tick and at a random point in it: after
    the tick is decided (events written, commands not yet sent) or after it is sent."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    end = max(e.t_s for e in RunLog(reference).events())
    crash_at = sorted(round(rng.uniform(0.0, end - 1.0) * 2) / 2 for _ in range(3))
    where = [rng.choice(["before_send", "after_tick"]) for _ in crash_at]
    pending = list(zip(crash_at, where, strict=True))
    real_poll, real_send = SafetyKernel.poll, SafetyKernel.send
    now = [0.0]

    def poll(self: SafetyKernel, now_s: float) -> Any:
        now[0] = now_s
        return real_poll(self, now_s)

    def send(self: SafetyKernel, checked: Any) -> None:
        if pending and pending[0][1] == "before_send" and now[0] >= pending[0][0]:
            pending.pop(0)
            raise Crash
        real_send(self, checked)

    def watch(o: Orchestrator) -> None:
        if pending and pending[0][1] == "after_tick" and o.t_s >= pending[0][0]:
            pending.pop(0)
            raise Crash

    monkeypatch.setattr(SafetyKernel, "poll", poll)
    monkeypatch.setattr(SafetyKernel, "send", send)
    db = tmp_path / "run.db"
    log = RunLog(db, create=True)
    crashes = 0
    try:
        simulate(plan, log, seed=5, faults=_faults(plan), progress=watch)
    except Crash:
        crashes += 1
        _die(log)
    while crashes:
        log = RunLog(db)
        try:
            resume_simulation(log, progress=watch)
            log.close()
            break
        except Crash:
            crashes += 1
            _die(log)
    assert crashes == 3, f"seed {seed}: crashes {crash_at} {where}"
    _same_run(db, reference)
    resumed = [e for e in RunLog(db).events() if e.kind == "resumed"]
    assert len(resumed) == 3, f"seed {seed}"


def test_a_command_given_while_the_orchestrator_is_down_is_carried_out_once_on_resume(
    plan: Plan, tmp_path: Path
) -> None:
    db = tmp_path / "run.db"
    log = RunLog(db, create=True)

    def watch(o: Orchestrator) -> None:
        if o.t_s >= 300.0:
            raise Crash

    with pytest.raises(Crash):
        simulate(plan, log, seed=5, progress=watch)
    _die(log)
    with RunLog(db) as other:
        other.post_command("home", {"drones": ["quad-001"]})
    with RunLog(db) as log:
        summary, _ = resume_simulation(log)
        events = list(log.events())
    ops = [e for e in events if e.kind == "operator"]
    (resumed,) = [e for e in events if e.kind == "resumed"]
    # taken once the ticks logged before the crash have been flown again, never among them
    logged = [e for e in events[: events.index(resumed)] if e.t_s > resumed.t_s]
    assert [(e.data["command"], e.data["drones"]) for e in ops] == [("home", ["quad-001"])]
    assert ops[0].data["result"].startswith("ok")
    assert resumed.t_s < ops[0].t_s and all(e.t_s <= ops[0].t_s for e in logged)
    assert summary.state == "COMPLETE" and summary.landed == 4


def test_a_run_that_cannot_be_checkpointed_flies_on_and_says_so(plan: Plan, tmp_path: Path) -> None:
    with RunLog(tmp_path / "run.db", create=True) as log:
        world = sim_world(plan, seed=5)
        orch = Orchestrator(plan, SimLink(world), log)
        orch.checkpoint_extra = {"world": world, "not picklable": lambda: None}
        assert orch.authorise(0.0) == []
        summary = orch.run(SimClock())
        failed = [e for e in log.events() if e.kind == "checkpoint_failed"]
        saved = log.db.execute("SELECT COUNT(*) FROM checkpoint").fetchone()[0]
    assert saved == 0
    assert len(failed) == 1 and "cannot checkpoint" in failed[0].data["error"]
    assert summary.state == "COMPLETE"


def test_resume_refuses_a_finished_run_or_one_that_never_started(
    plan: Plan, reference: Path, tmp_path: Path
) -> None:
    with RunLog(reference) as log, pytest.raises(StoreError, match="already ended"):
        resume_simulation(log)
    db = tmp_path / "fresh.db"
    with RunLog(db, create=True) as log, pytest.raises(StoreError, match="no checkpoint"):
        resume_simulation(log)


def test_cli_resume_refuses_another_mission_file(
    files: dict[str, Path], plan: Plan, tmp_path: Path
) -> None:
    db = tmp_path / "run.db"
    log = RunLog(db, create=True)
    log.set_meta("mission", json.loads(mission.to_json(plan.mission.spec)))
    with pytest.raises(Crash):
        simulate(plan, log, seed=5, progress=lambda o: (_ for _ in ()).throw(Crash()))
    _die(log)
    other = tmp_path / "other.yaml"
    other.write_text(SMALL.replace("small search", "another search"))
    result = CliRunner().invoke(app, ["sim", str(other), "--resume", str(db)])
    assert result.exit_code != 0
    assert "differs" in result.output and "run.db" in result.output
    result = CliRunner().invoke(
        app, ["sim", str(files["mission"]), "--resume", str(db), "--faults", str(files["faults"])]
    )
    assert result.exit_code != 0 and "--resume" in result.output


def _checkpointed(db: Path) -> bool:
    try:
        con = sqlite3.connect(db, timeout=0.1)
        try:
            return con.execute("SELECT COUNT(*) FROM checkpoint").fetchone()[0] > 0
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return False


def _sim(files: dict[str, Path], db: Path, *more: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SKYSWEEP), "sim", str(files["mission"]), "--seed", "5", "--json", *more],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=db.parent,
    )


@pytest.mark.skipif(not SKYSWEEP.exists(), reason=f"no skysweep script next to {sys.executable}")
def test_kill_9_of_skysweep_sim_at_random_times_then_resume(
    files: dict[str, Path], tmp_path: Path
) -> None:
    """The real thing: ``skysweep sim`` is SIGKILLed twice at random moments of its flight, and
    ``skysweep sim --resume`` carries the mission to the same end as an unbroken run."""
    seed = int.from_bytes(os.urandom(4), "little")
    rng = random.Random(seed)
    ref = tmp_path / "ref.db"
    started = time.monotonic()
    unbroken = _sim(
        files,
        ref,
        "--log",
        str(ref),
        "--faults",
        str(files["faults"]),
        "--commands",
        str(files["commands"]),
    )
    out, err = unbroken.communicate(timeout=120)
    assert unbroken.returncode == 0, err.decode()
    wall = time.monotonic() - started
    expected = json.loads(out)

    db = tmp_path / "run.db"
    first = [
        "--log",
        str(db),
        "--faults",
        str(files["faults"]),
        "--commands",
        str(files["commands"]),
    ]
    kills = 0
    for attempt in range(2):
        proc = _sim(files, db, *(first if attempt == 0 else ["--resume", str(db)]))
        deadline = time.monotonic() + 60
        while not _checkpointed(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        # at a random moment of what is left of the flight (a resumed run starts faster)
        time.sleep(rng.uniform(0.0, 0.6 * wall))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.communicate(timeout=60)
    final = _sim(files, db, "--resume", str(db))
    out, err = final.communicate(timeout=120)
    if final.returncode != 0 and b"already ended" in err:
        pass  # it finished before the last kill: nothing to resume
    else:
        assert final.returncode == 0, f"seed {seed}: {err.decode()}"
        assert json.loads(out) == expected, f"seed {seed}"
    assert kills >= 1, f"seed {seed}: the run ended before it could be killed"
    _same_run(db, ref)


def test_resume_refuses_a_checkpoint_another_build_wrote(plan: Plan, tmp_path: Path) -> None:
    # a checkpoint pickles the orchestrator as it was; a build that added state to it (a
    # drone's first leg judged from where it was sent) failed mid-flight on such a restore
    db = tmp_path / "run.db"
    log = RunLog(db, create=True)
    with pytest.raises(Crash):
        simulate(plan, log, seed=5, progress=lambda o: _crash_at(o, 30.0))
    assert log.meta("checkpoint_build") == build_id()
    log.set_meta("checkpoint_build", "0.0.9+0123456789ab")
    log.db.commit()
    _die(log)
    other = r"skysweep 0\.0\.9\+0123456789ab"
    with RunLog(db) as log, pytest.raises(StoreError, match=other) as caught:
        resume_simulation(log)
    assert build_id() in str(caught.value) and "run.db" in str(caught.value)
    with RunLog(db) as log:
        log.db.execute("DELETE FROM meta WHERE key = 'checkpoint_build'")
        log.db.commit()
        with pytest.raises(StoreError, match="an older skysweep"):
            resume_simulation(log)
        # nothing was lost: the checkpoint and the events are still there for the right build
        assert log.db.execute("SELECT COUNT(*) FROM checkpoint").fetchone()[0] == 1
        log.set_meta("checkpoint_build", build_id())
        log.db.commit()
        orch, _ = Orchestrator.restore(log)
    assert orch.t_s > 0.0


def _crash_at(orch: Orchestrator, t_s: float) -> None:
    if orch.t_s >= t_s:
        raise Crash()
