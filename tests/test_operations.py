"""A mission in flight: the operator's commands, re-planning when a drone is lost, the lifecycle
and pre-flight checks — flown end to end in the simulator."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from test_run import SMALL
from typer.testing import CliRunner

from skysweep import mission
from skysweep.cli import app
from skysweep.errors import InfeasibleError, MissionError, TransitionError
from skysweep.link.sim import SimLink
from skysweep.plan import Plan, plan_mission
from skysweep.runtime import orchestrator
from skysweep.runtime.clock import SimClock
from skysweep.runtime.commands import OperatorCommand, parse_command
from skysweep.runtime.modes import FlightMode
from skysweep.runtime.orchestrator import Orchestrator
from skysweep.runtime.simulate import sim_world, simulate
from skysweep.sim.faults import parse_faults
from skysweep.store import Event, RunLog


@pytest.fixture(scope="module")
def plan(tmp_path_factory: pytest.TempPathFactory) -> Plan:
    path = tmp_path_factory.mktemp("ops") / "small.yaml"
    path.write_text(SMALL)
    return _column_plan(path)


def _column_plan(path: Path) -> Plan:
    """The plan of the lane columns alone: the scenes below (drones head on, climbing out side
    by side at a recall) were built on its geometry, which the split lawnmower changes."""
    from skysweep.plan import planner

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(planner, "_split_sites", lambda *a, **k: None)
        return plan_mission(mission.load(path))


def _fly(
    plan: Plan,
    db: Path,
    commands: list[dict[str, Any]] = (),  # type: ignore[assignment]
    faults: list[dict[str, Any]] = (),  # type: ignore[assignment]
    watch: Any = None,
) -> tuple[dict[str, Any], list[Event]]:
    cmds = [OperatorCommand.model_validate(c) for c in commands]
    schedule = parse_faults({"faults": list(faults)}, drone_ids=plan.mission.fleet.ids)
    with RunLog(db, create=True) as log:
        summary, truth = simulate(plan, log, seed=3, faults=schedule, commands=cmds, progress=watch)
        events = list(log.events())
    return {**summary.as_dict(), **truth.as_dict()}, events


def _fire_band(m: mission.Mission) -> shapely.Geometry:
    """A zone across the middle of the area (local metres), where drones sweep at 200 s, kept
    clear of the cliff."""
    x0, y0, x1, y1 = m.searchable.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - 250
    return shapely.box(cx - 300, cy - 60, cx + 300, cy + 60).difference(
        m.keep_out[0].geometry.buffer(30)
    )


def _add_zone(m: mission.Mission, zone_local: shapely.Geometry, at_s: float) -> dict[str, Any]:
    """The operator's command adding ``zone_local`` as keep-out zone "fire" at ``at_s``."""
    zone_ll = m.frame.geom_to_lonlat(zone_local)
    geometry = json.loads(json.dumps(shapely.geometry.mapping(zone_ll)))
    return {"command": "add_keep_out", "at_s": at_s, "name": "fire", "geometry": geometry}


def _kinds(events: list[Event], kind: str) -> list[Event]:
    return [e for e in events if e.kind == kind]


def test_pause_holds_everyone_and_resume_finishes_the_search(plan: Plan, tmp_path: Path) -> None:
    held_modes: list[np.ndarray] = []

    def watch(o: Orchestrator) -> None:
        if 160.0 <= o.t_s <= 240.0:
            held_modes.append(o.mode.copy())

    figures, events = _fly(
        plan,
        tmp_path / "r.db",
        [{"command": "pause", "at_s": 150}, {"command": "resume", "at_s": 240}],
        watch=watch,
    )
    ops = _kinds(events, "operator")
    assert [e.data["command"] for e in ops] == ["pause", "resume"]
    assert all(e.data["result"].startswith("ok") for e in ops)
    # a few seconds after the pause every airborne drone hovers
    later = [m for m in held_modes[20:]]
    air = [m[np.isin(m, (FlightMode.TRANSIT, FlightMode.SWEEP))] for m in later]
    assert all(len(a) == 0 for a in air)
    assert any(np.any(m == FlightMode.HOLD) for m in later)
    assert not [e for e in _kinds(events, "launch") if 150 < e.t_s < 240]
    assert figures["state"] == "COMPLETE"
    assert figures["covered_fraction"] >= 0.99
    assert figures["keep_out_breaches"] == 0 and figures["landed"] == 4


def test_home_and_land_recall_drones_for_good(plan: Plan, tmp_path: Path) -> None:
    ids = plan.mission.fleet.ids
    figures, events = _fly(
        plan,
        tmp_path / "r.db",
        [
            {"command": "land", "at_s": 120, "drones": [ids[0]]},
            {"command": "home", "at_s": 130, "drones": [ids[1]]},
        ],
    )
    assert [e.data["result"] for e in _kinds(events, "operator")] == ["ok: 1 airborne"] * 2
    landed = {e.drone: e for e in _kinds(events, "landed")}
    assert ids[0] in landed and ids[1] in landed
    # neither flies again, and the others hand on nothing they did not have to
    assert not [e for e in _kinds(events, "launch") if e.drone in ids[:2] and e.t_s > 120]
    # the one told to land came down where it was, not on its pad
    assert figures["keep_out_breaches"] == 0 and figures["keep_in_breaches"] == 0


def test_a_lost_drone_is_replanned_at_once_and_the_mission_is_degraded(
    plan: Plan, tmp_path: Path
) -> None:
    victim = plan.mission.fleet.ids[2]
    figures, events = _fly(
        plan, tmp_path / "r.db", faults=[{"at_s": 200, "kind": "drone_lost", "drone": victim}]
    )
    lost = _kinds(events, "lost")
    replans = _kinds(events, "replan")
    assert [e.drone for e in lost] == [victim]
    assert replans and victim in replans[0].data["reason"]
    # the work is handed on in the tick the loss is declared
    assert replans[0].t_s - lost[0].t_s <= 2.0
    assert figures["health"] == "DEGRADED" and any(victim in r for r in figures["reasons"])
    assert figures["drones_lost"] == 1
    assert figures["covered_fraction"] >= 0.99
    assert not [e for e in _kinds(events, "launch") if e.drone == victim and e.t_s > 200]


def test_a_drone_whose_link_drops_as_it_lands_is_handed_on_and_nothing_is_lost(
    plan: Plan, tmp_path: Path
) -> None:
    """quad-001's link drops for 30 s as it comes down from its first sortie. Its work is
    handed on when it is declared lost and the others finish the search; heard again on its
    pad, it takes back a share of what is still to fly (numbered after the sortie it flew: the
    re-planner once numbered it 1 again, and the book took it as flown). Every drone that flies
    again does so on a fresh pack, including one given work by a re-plan after it had landed
    with nothing left to fly (found by the reliability run, seed 638)."""
    who = plan.mission.fleet.ids[0]
    landed_s = next(s.land_s for s in plan.sorties if s.drone == 0 and s.number == 1)
    at = landed_s + 20.0
    figures, events = _fly(
        plan,
        tmp_path / "r.db",
        faults=[{"at_s": at, "kind": "link_lost", "drone": who, "duration_s": 30}],
    )
    lost = [e for e in _kinds(events, "lost") if e.drone == who]
    assert lost and lost[0].t_s >= at
    replans = [e.data["reason"] for e in _kinds(events, "replan")]
    assert any(f"{who} lost" in r for r in replans)
    back = next(e.t_s for e in _kinds(events, "link_restored") if e.drone == who)
    assert any(f"{who} back" in r for r in replans)
    assert [e for e in _kinds(events, "launch") if e.drone == who and e.t_s > back]
    assert figures["covered_fraction"] >= 0.99
    assert figures["state"] == "COMPLETE" and figures["landed_below_reserve"] == 0
    # no drone takes off again without a swap since its last landing
    last: dict[str, str] = {}
    for e in events:
        if e.kind in ("landed", "battery_swap"):
            last[e.drone] = e.kind
        elif e.kind == "launch":
            assert last.get(e.drone) in (None, "battery_swap"), f"{e.drone} at {e.t_s}"


def test_a_new_keep_out_zone_reroutes_the_fleet(plan: Plan, tmp_path: Path) -> None:
    m = plan.mission
    # a zone across the middle of the area, where drones are sweeping at the time
    zone_local = _fire_band(m)
    positions: list[np.ndarray] = []

    def watch(o: Orchestrator) -> None:
        if o.t_s > 215:
            fs_air = o.mode != FlightMode.IDLE
            positions.append(o.failsafe.est_pos_m[fs_air & (o.mode != FlightMode.LANDED)])

    figures, events = _fly(plan, tmp_path / "r.db", [_add_zone(m, zone_local, 200)], watch=watch)
    op = _kinds(events, "operator")[0]
    assert op.data["result"].startswith("ok"), op.data
    replan = _kinds(events, "replan")
    assert replan and "fire" in replan[0].data["reason"]
    assert figures["health"] == "DEGRADED"
    # nobody flies into the zone after it is declared (those inside got out first)
    inside = [
        int(shapely.contains_xy(zone_local.buffer(-5), p[:, 0], p[:, 1]).sum()) for p in positions
    ]
    assert sum(inside[60:]) == 0
    assert figures["keep_out_breaches"] == 0
    # drones sweeping outside it were sent their rest flown round it, not brought home
    assert _kinds(events, "more_work")


def test_a_drone_a_new_zone_is_laid_over_is_led_out_and_flies_again(tmp_path: Path) -> None:
    """A zone added over a drone's position is not the drone's breach: it is led out and
    home like the drones the zone cut short, free to fly again. (The geofence failsafe once
    fired on it as well, and a drone a failsafe sends home is grounded for the rest of the
    mission: in test_a_re_plan_after_a_zone_was_added_still_routes_round_it the fleet, one
    short, then ran out of time.)"""
    p = _roomy_plan()
    m = p.mission
    # where drone 0 is at 100 s: its planned path, at cruise speed after the climb
    first = p.of_drone(0)[0]
    flat = first.path[:, :2]
    along = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(flat, axis=0).T))])
    speed = float(m.fleet.speed_mps[0])
    climb_s = m.altitude_m / float(m.fleet.climb_mps[0])
    at = 100.0 - first.launch_s - climb_s
    here = np.array([np.interp(at * speed, along, flat[:, k]) for k in (0, 1)])
    zone_local = shapely.box(*(here - 150.0), *(here + 150.0))
    zone_ll = m.frame.geom_to_lonlat(zone_local)
    figures, events = _fly(
        p,
        tmp_path / "c.db",
        [
            {
                "command": "add_keep_out",
                "at_s": 100,
                "name": "slide",
                "geometry": json.loads(json.dumps(shapely.geometry.mapping(zone_ll))),
            }
        ],
    )
    op = _kinds(events, "operator")[0]
    assert op.data["result"].startswith("ok") and not op.data["result"].startswith("ok: 0 "), op
    fired = [e for e in _kinds(events, "failsafe") if "fence" in e.data["why"]]
    assert not fired, fired
    reasons = " ".join(e.data["reason"] for e in _kinds(events, "replan"))
    assert "grounded" not in reasons
    assert figures["state"] == "COMPLETE" and figures["landed"] == 4
    assert figures["keep_out_breaches"] == 0


def test_a_bad_operator_command_is_refused_and_logged(plan: Plan, tmp_path: Path) -> None:
    _, events = _fly(
        plan, tmp_path / "r.db", [{"command": "remove_keep_out", "at_s": 50, "name": "nope"}]
    )
    op = _kinds(events, "operator")[0]
    assert op.data["result"].startswith("refused") and "nope" in op.data["result"]


def test_commands_are_validated_with_the_field_named() -> None:
    with pytest.raises(MissionError, match="needs the zone's 'name'"):
        parse_command({"command": "add_keep_out"})
    with pytest.raises(MissionError, match=r"drones\[0\]"):
        parse_command({"command": "home", "drones": ["zz"]}, drone_ids=["a", "b"])
    with pytest.raises(MissionError, match="command"):
        parse_command({"command": "self_destruct"})


def test_the_mission_runs_only_once_authorised(plan: Plan, tmp_path: Path) -> None:
    from skysweep.runtime.clock import SimClock

    with RunLog(tmp_path / "r.db", create=True) as log:
        orch = Orchestrator(plan, SimLink(sim_world(plan, 0)), log)
        with pytest.raises(TransitionError, match="authorise"):
            orch.run(SimClock())
        assert orch.authorise(0.0) == []
        assert orch.lifecycle.state.name == "AUTHORISED"


def test_preflight_refuses_a_sortie_through_a_keep_out_and_a_flat_battery(
    plan: Plan, tmp_path: Path
) -> None:
    from dataclasses import replace

    zone = plan.mission.keep_out[0].geometry
    c = np.asarray(zone.centroid.coords[0])
    bad = plan.sorties[0]
    path = bad.path.copy()
    path[2, :2] = c  # a sweep waypoint in the middle of the cliff
    broken = replace(plan, sorties=(replace(bad, path=path), *plan.sorties[1:]))
    world = sim_world(broken, 0)
    world.charge[1] = 0.5
    with RunLog(tmp_path / "r.db", create=True) as log:
        orch = Orchestrator(broken, SimLink(world), log)
        problems = orch.authorise(0.0)
        assert any("fence" in p and "#1" in p for p in problems), problems
        assert any("battery 50%" in p for p in problems), problems
        assert orch.lifecycle.state.name == "PLANNED"
        assert list(log.events("preflight_failed"))
    with (
        RunLog(tmp_path / "s.db", create=True) as log,
        pytest.raises(InfeasibleError, match="pre-flight"),
    ):
        simulate(broken, log, seed=0)


def test_cli_command_queues_in_the_run_log(plan: Plan, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    with RunLog(db, create=True) as log:
        log.set_meta("drones", list(plan.mission.fleet.ids))
    zone = tmp_path / "zone.json"
    zone.write_text(
        json.dumps(
            {
                "type": "Polygon",
                "coordinates": [
                    [[8.001, 46.501], [8.002, 46.501], [8.002, 46.502], [8.001, 46.501]]
                ],
            }
        )
    )
    runner = CliRunner()
    r = runner.invoke(app, ["command", str(db), "home", "--drone", plan.mission.fleet.ids[0]])
    assert r.exit_code == 0, r.output
    r = runner.invoke(
        app, ["command", str(db), "add-keep-out", "--name", "z", "--geojson", str(zone)]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["command", str(db), "home", "--drone", "nobody"])
    assert r.exit_code == 2 and "nobody" in r.stderr
    with RunLog(db) as log:
        taken = log.take_commands()
        assert [k for _, k, _ in taken] == ["home", "add_keep_out"]
        assert taken[0][2] == {"drones": [plan.mission.fleet.ids[0]]}
        assert log.take_commands() == []


def test_cli_sim_with_a_command_script(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text(SMALL)
    (tmp_path / "c.yaml").write_text(
        "commands:\n  - {at_s: 100, command: pause}\n  - {at_s: 130, command: resume}\n"
    )
    r = CliRunner().invoke(
        app,
        [
            "sim",
            str(tmp_path / "m.yaml"),
            "--log",
            str(tmp_path / "r.db"),
            "--commands",
            str(tmp_path / "c.yaml"),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["state"] == "COMPLETE" and out["health"] == "NOMINAL"


@pytest.mark.parametrize("detours", [orchestrator.MAX_DETOURS, 0], ids=["detour", "home"])
def test_a_drone_off_its_leg_behind_a_keep_out_is_led_round_it(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, detours: int
) -> None:
    """An autopilot pushed off its leg flies straight on to its next waypoint. Make one at work
    stray (its own copy of the waypoint it flies to is moved) to the far side of the keep-out
    from that waypoint, so that the straight line back crosses the zone: the orchestrator sees
    it and sends it the rest of its sortie behind a flyable detour to that waypoint; it keeps
    its work. With no detours left, it comes home by a flyable route and its work is handed
    on. Either way nothing enters the zone and the search completes."""
    monkeypatch.setattr(orchestrator, "MAX_DETOURS", detours)
    m = plan.mission
    cliff = m.keep_out[0].geometry
    centre = np.array(cliff.centroid.coords[0])
    reach = float(np.hypot(*np.subtract(*np.reshape(cliff.bounds, (2, 2))))) / 2 + 40.0
    clear_of = cliff.buffer(15.0)
    world = sim_world(plan, seed=3)
    strayed: list[tuple[float, int]] = []
    inside_cliff: list[float] = []

    def watch(o: Orchestrator) -> None:
        up = world.pos[:, 2] > 0.9 * m.altitude_m
        if shapely.contains_xy(cliff, world.pos[up, 0], world.pos[up, 1]).any():
            inside_cliff.append(o.t_s)
        if strayed or o.t_s < 60.0:
            return
        for i in np.flatnonzero((o.mode == FlightMode.SWEEP) & up):
            k = world._wp_first[i] + world.seq[i]
            b = world._wp[k, :2].copy()
            away = (b - centre) / max(float(np.hypot(*(b - centre))), 1e-9)
            p = centre - away * reach
            ok = shapely.LineString([p, b]).intersects(cliff)
            ok &= not shapely.LineString([world.pos[i, :2], p]).intersects(clear_of)
            if ok and shapely.contains_xy(m.flyable, *p):
                world._wp[k, :2] = p
                strayed.append((o.t_s, int(i)))
                return

    with RunLog(tmp_path / "r.db", create=True) as log:
        orch = Orchestrator(plan, SimLink(world), log)
        assert orch.authorise(0.0) == []
        summary = orch.run(SimClock(), progress=watch)
        events = list(log.events())
    assert strayed, "no drone was at work where the test could make it stray"
    t_strayed, i = strayed[0]
    off = [e for e in _kinds(events, "off_route") if e.drone == m.fleet.ids[i]]
    assert off and t_strayed < off[0].t_s <= t_strayed + 120.0
    assert not inside_cliff
    handed = [e for e in _kinds(events, "replan") if "sent home early" in e.data["reason"]]
    if detours:
        assert off[0].data["action"] == "detour"
        # it flew on with its sortie: nothing handed on, and it swept after the detour
        assert not [e for e in handed if off[0].t_s <= e.t_s <= off[0].t_s + 60.0]
        sweeps = [
            e
            for e in _kinds(events, "mode")
            if e.drone == m.fleet.ids[i] and e.t_s > off[0].t_s and e.data["to"] == "SWEEP"
        ]
        assert sweeps
    else:
        # its work is handed on at once
        assert off[0].data["action"] == "home"
        assert handed and off[0].t_s <= handed[0].t_s <= off[0].t_s + 1.0
    assert summary.state == "COMPLETE" and summary.covered_fraction >= 0.99
    assert summary.keep_out_breaches == 0


def test_a_recall_the_kernel_refuses_is_tried_again_until_it_goes(tmp_path: Path) -> None:
    """All home while drones climb out side by side: the kernel refuses some of the routes
    home for separation at first; those drones must not fly on with their sorties."""
    from server_fixtures import LIVE

    path = tmp_path / "live.yaml"
    path.write_text(LIVE)
    p = _column_plan(path)
    s, events = _fly(p, tmp_path / "run.db", commands=[{"command": "home", "at_s": 18}])
    refused = [e for e in _kinds(events, "refused") if e.data["purpose"] == "HOME"]
    assert refused, "the scene no longer makes the kernel refuse a route home"
    assert s["state"] == "COMPLETE" and s["landed"] == 6
    assert s["mission_time_s"] < 90  # all down soon after the recall, not after their sorties
    # a drone whose way home is blocked stops at once (the next tick shows it), and none
    # takes up its sweep again
    modes = _kinds(events, "mode")
    for r in refused:
        turned = [
            e
            for e in modes
            if e.drone == r.drone
            and r.t_s < e.t_s <= r.t_s + 0.5 + 1e-9
            and e.data["to"] in ("HOLD", "RETURN", "LANDING")
        ]
        assert turned, f"{r.drone} flew on after its way home was refused at {r.t_s} s"
    assert not [e for e in modes if e.t_s > 18 and e.data["to"] == "SWEEP"]
    assert not _kinds(events, "launch")[6:]  # nothing launched again


def test_two_drones_paused_head_on_step_out_of_each_others_way(plan: Plan, tmp_path: Path) -> None:
    """Paused a little over the minimum separation apart, each on its way to a waypoint behind
    the other: neither can resume on its level (the kernel refuses both, tick after tick). One
    steps up out of the band and flies on over the other, and both are back at work within
    seconds, never closer than the minimum separation, their work not handed on."""
    sep = plan.mission.safety.min_separation_m
    seen: dict[str, Any] = {"gap": [], "alt": [], "modes": []}

    def watch(o: Orchestrator) -> None:
        world = o.checkpoint_extra["world"]
        if abs(o.t_s - 55.0) < 1e-6:
            # both hold on a transit leg; put them head on between their next waypoints
            w = [np.asarray(o._uploaded[i])[int(world.seq[i])] for i in (0, 1)]
            mid = (w[0][:2] + w[1][:2]) / 2.0
            u = (w[0][:2] - w[1][:2]) / np.hypot(*(w[0][:2] - w[1][:2]))
            z = float(world.pos[0, 2])
            for i, s in ((0, -1.0), (1, 1.0)):
                world.pos[i] = [*(mid + s * 0.65 * sep * u), z]
                world.vel[i] = 0.0
            seen["z"] = z
        if o.t_s > 55.0:
            seen["gap"].append(float(np.linalg.norm(world.pos[0] - world.pos[1])))
            seen["alt"].append(world.pos[:2, 2].copy())
            seen["modes"].append((o.t_s, o.mode[:2].copy()))

    figures, events = _fly(
        plan,
        tmp_path / "r.db",
        [{"command": "pause", "at_s": 50}, {"command": "resume", "at_s": 60}],
        watch=watch,
    )
    refused = [
        e
        for e in _kinds(events, "refused")
        if e.drone in plan.mission.fleet.ids[:2] and e.data["by"] == "resume"
    ]
    assert refused and all(e.data["reason"].startswith("separation") for e in refused)
    # both at work again within 5 s of the resume
    back = [t for t, m in seen["modes"] if t >= 60.0 and not np.any(m == FlightMode.HOLD)]
    assert back and back[0] <= 65.0, "they still hold each other up"
    # by a step out of the band, not by flying through each other
    alt = np.array(seen["alt"])
    assert alt.max() >= seen["z"] + max(orchestrator.STEP_UP_M, sep) - 1.0
    assert min(seen["gap"]) >= 0.95 * sep
    assert not [e for e in events if e.kind == "handed_on" or "cannot resume" in str(e.data)]
    assert figures["state"] == "COMPLETE"
    assert figures["covered_fraction"] >= 0.99


def test_a_drone_called_home_over_a_paused_drone_in_its_way_steps_over_it(
    plan: Plan, tmp_path: Path
) -> None:
    """The fleet paused, one drone called home with another hovering just ahead on its way:
    the kernel refuses the level way home (the other holds there until resumed), so the drone
    steps up out of that band and flies home over it."""
    sep = plan.mission.safety.min_separation_m
    a = plan.mission.fleet.ids[0]
    seen: dict[str, Any] = {"gap": [], "modes": []}

    def watch(o: Orchestrator) -> None:
        world = o.checkpoint_extra["world"]
        if abs(o.t_s - 55.0) < 1e-6:
            at = world.pos[0, :2]
            toward = o.home[0] - at
            world.pos[1] = [*(at + toward / np.hypot(*toward) * 1.3 * sep), world.pos[0, 2]]
            world.vel[1] = 0.0
        if o.t_s > 55.0:
            seen["gap"].append(float(np.linalg.norm(world.pos[0] - world.pos[1])))
            seen["modes"].append((o.t_s, FlightMode(o.mode[0]).name))

    figures, events = _fly(
        plan,
        tmp_path / "r.db",
        [
            {"command": "pause", "at_s": 50},
            {"command": "home", "at_s": 58, "drones": [a]},
            {"command": "resume", "at_s": 200},
        ],
        watch=watch,
    )
    refused = [e for e in _kinds(events, "refused") if e.drone == a]
    assert refused and refused[0].data["purpose"] == "HOME"
    assert refused[0].data["reason"].startswith("separation")
    going = [t for t, m in seen["modes"] if t >= 58.0 and m in ("RETURN", "LANDING")]
    assert going and going[0] <= 61.0, "it waits for the paused drone to move"
    assert min(seen["gap"]) >= 0.95 * sep
    landed = [e for e in _kinds(events, "landed") if e.drone == a]
    assert landed and landed[0].t_s < 200.0  # home while the others still held
    assert figures["state"] == "COMPLETE"


def test_a_drone_held_up_on_its_way_home_steps_out_of_the_band(plan: Plan, tmp_path: Path) -> None:
    """A drone flying home whose way is blocked by another drone keeping just ahead of it (as
    two drones head-on on one line can hold each other up for minutes, each one's onboard
    avoidance yielding to the other) gets no nearer home: once it has been so for STUCK_S it
    steps up out of that band and flies home over the other, never closer than the minimum
    separation."""
    sep = plan.mission.safety.min_separation_m
    a = plan.mission.fleet.ids[0]
    seen: dict[str, Any] = {"gap": [], "held_up": []}

    def watch(o: Orchestrator) -> None:
        world = o.checkpoint_extra["world"]
        if o.t_s < 60.0:
            seen["z"] = float(world.pos[0, 2])
            return
        if abs(world.pos[0, 2] - seen["z"]) < 3.0 and o.mode[0] == FlightMode.RETURN:
            # the other keeps a little over the minimum separation ahead, on its level
            at = world.pos[0, :2]
            toward = o.home[0] - at
            if np.hypot(*toward) > 3 * sep:
                world.pos[1] = [*(at + toward / np.hypot(*toward) * 1.3 * sep), seen["z"]]
                world.vel[1] = 0.0
                seen["held_up"].append(o.t_s)
        seen["gap"].append(float(np.linalg.norm(world.pos[0] - world.pos[1])))

    figures, events = _fly(
        plan, tmp_path / "r.db", [{"command": "home", "at_s": 58, "drones": [a]}], watch=watch
    )
    stuck = [e for e in _kinds(events, "stuck") if e.drone == a]
    assert stuck and stuck[0].data["action"] == "step"
    # judged over windows of STUCK_S from when it set off home: within two of them, not
    # before the first has passed, and not again once it stepped
    assert 58.0 + orchestrator.STUCK_S <= stuck[0].t_s <= 60.0 + 2 * orchestrator.STUCK_S
    assert len(stuck) == 1 and max(seen["held_up"]) <= stuck[0].t_s + 10.0
    landed = [e for e in _kinds(events, "landed") if e.drone == a]
    # (held up all the way, it crept home and landed at 359.5 s)
    assert landed and landed[0].t_s <= 160.0 and not landed[0].data["below_reserve"]
    assert min(seen["gap"]) >= 0.95 * sep
    assert figures["state"] == "COMPLETE"


def _roomy_plan() -> Plan:
    """SMALL with packs three times what its sorties need."""
    import yaml

    from skysweep.mission import parse

    text = SMALL.replace("endurance_s: 900", "endurance_s: 2400")
    return plan_mission(parse(yaml.safe_load(text), "roomy"))


def test_a_lost_drones_rest_is_swept_by_drones_still_in_the_air(tmp_path: Path) -> None:
    """Drones in the air with battery to spare are sent longer routes and sweep the lost
    drone's rest before they come home: nobody flies a second sortie."""
    p = _roomy_plan()
    first = p.of_drone(0)[0]
    at_s = round(first.launch_s + 0.5 * first.duration_s)
    victim = p.mission.fleet.ids[0]
    figures, events = _fly(
        p, tmp_path / "r.db", faults=[{"kind": "drone_lost", "at_s": at_s, "drone": victim}]
    )
    more = _kinds(events, "more_work")
    assert more and all(e.t_s >= at_s for e in more) and victim not in {e.drone for e in more}
    assert {e.data["sortie"] for e in more} == {1}
    assert {e.data["sortie"] for e in _kinds(events, "launch")} == {1}
    assert not [e for e in _kinds(events, "refused") if e.data["by"] == "more work"]
    assert figures["state"] == "COMPLETE" and figures["drones_lost"] == 1
    assert figures["covered_fraction"] >= 0.98
    assert figures["landed"] == 3 and figures["landed_below_reserve"] == 0
    assert figures["keep_out_breaches"] == 0 and figures["keep_in_breaches"] == 0


def test_a_re_plan_after_a_zone_was_added_still_routes_round_it(tmp_path: Path) -> None:
    """The plan's mission does not have the zones the operator added: each later re-plan is
    given every one of them, not just the newest; its routes keep the kernel's margin round
    their corners (else launches are refused), and the simulated drones' onboard separation
    keeps off the new zone (else a dodge in the gap at its end takes a drone into it)."""
    p = _roomy_plan()
    m = p.mission
    x0, y0, x1, y1 = m.searchable.bounds
    # a band across the area, with a way round each end
    cy = (y0 + y1) / 2 + 300
    zone_local = shapely.box(x0 + 100, cy - 60, x1 - 100, cy + 60)
    zone_ll = m.frame.geom_to_lonlat(zone_local)
    first = p.of_drone(0)[0]
    lost_s = round(first.launch_s + 0.5 * first.duration_s)
    final: list[Plan] = []
    figures, events = _fly(
        p,
        tmp_path / "z.db",
        commands=[
            {
                "command": "add_keep_out",
                "at_s": 100,
                "name": "fire",
                "geometry": json.loads(json.dumps(shapely.geometry.mapping(zone_ll))),
            }
        ],
        faults=[{"kind": "drone_lost", "at_s": lost_s, "drone": m.fleet.ids[0]}],
        watch=lambda o: final[:1] or final.append(o.plan) if o.t_s > lost_s + 5 else None,
    )
    replans = _kinds(events, "replan")
    assert len(replans) >= 2 and "lost" in replans[-1].data["reason"]
    assert final
    flown_after = [s for s in final[0].sorties if s.land_s > 100]
    assert flown_after
    for s in flown_after:
        assert not shapely.intersects(shapely.LineString(s.path[:, :2]), zone_local), s.drone
    # (a refusal for separation in traffic is routine; one for the fence is the planner's)
    fenced = [e for e in _kinds(events, "refused") if "fence" in e.data["reason"]]
    assert not fenced, fenced
    assert figures["state"] == "COMPLETE" and figures["landed"] == 3
    assert figures["keep_out_breaches"] == 0


def test_a_recall_waits_out_a_failsafe_hold_and_yields_to_its_landing(
    plan: Plan, tmp_path: Path
) -> None:
    """A recall the kernel has not let through yet is asked for again each tick. A failsafe
    that holds the drone meanwhile only defers it; one that flies the drone home or lands it
    ends it (reliability seed 820 with --zones: a recall, refused tick after tick, held a drone
    whose battery had gone critical until it fell)."""
    from skysweep.safety.failsafe import Action

    world = sim_world(plan, seed=5)
    link = SimLink(world)
    with RunLog(tmp_path / "run.db", create=True) as log:
        orch = Orchestrator(plan, link, log)
        assert orch.authorise(0.0) == []
        orch.run(SimClock(), max_s=150.0)
        fs = link.poll(orch.t_s)
        held, landing, free = (int(i) for i in np.flatnonzero(fs.airborne)[:3])
        action = orch.failsafe.action.copy()
        action[held], action[landing] = Action.HOLD, Action.LAND
        orch.failsafe = dataclasses.replace(orch.failsafe, action=action)
        orch._pending_home = {held: "operator", landing: "operator", free: "operator"}
        orders: list[orchestrator.Order] = []
        orch._operator(fs, orch.t_s, [], orders)
        assert [o.drone for o in orders if o.purpose is orchestrator.Purpose.HOME] == [free]
        assert orch._pending_home == {held: "operator"}


def test_a_drone_on_its_way_home_is_routed_round_a_zone_laid_across_it(
    plan: Plan, tmp_path: Path
) -> None:
    """A zone laid across the way home of a drone flying its sortie's last legs: the re-plan
    cannot give it more work, and the drone is sent home round the zone at once. (It used to
    fly on by its old way, its sortie gone from the book: it stopped at the zone's edge and
    was caught off route only later; reliability seed 820 --zones.)"""
    from skysweep.telemetry import AutopilotMode

    m = plan.mission
    margin = m.safety.geofence_margin_m
    seen: dict[str, Any] = {}

    def watch(o: Orchestrator) -> None:
        fs = o.last_state
        if fs is None:
            return
        if "drone" not in seen:
            pads = o.home
            for i in np.flatnonzero(
                (o.mode == FlightMode.RETURN) & (fs.mode == AutopilotMode.AUTO)
            ):
                route = o._uploaded[i]
                if o.book.flying[i] < 0 or route is None:
                    continue
                here = fs.pos_m[i, :2]
                if np.hypot(*(here - pads[i])) < 300.0:
                    continue
                # a square across its way home, a third of the way to its pad
                mid = here + (pads[i] - here) / 3.0
                zone = shapely.box(*(mid - 40.0), *(mid + 40.0))
                others = np.delete(fs.pos_m[:, :2], i, axis=0)
                if shapely.distance(zone, shapely.MultiPoint(others)) < margin + 30.0:
                    continue
                if shapely.distance(zone, shapely.MultiPoint(pads)) < margin + 30.0:
                    continue
                seen.update(drone=int(i), zone=zone, at_s=o.t_s)
                o.add_keep_out("slide", zone)
                return
        elif o.t_s > seen["at_s"] + 1.0 and "route" not in seen:
            seen["route"] = o._uploaded[seen["drone"]]

    figures, events = _fly(plan, tmp_path / "h.db", watch=watch)
    assert "drone" in seen, "no drone was flying home far from its pad"
    who = plan.mission.fleet.ids[seen["drone"]]
    route = np.asarray(seen["route"])
    # its new way home goes round the zone (and its margin), and it was sent it at once
    assert not shapely.intersects(shapely.LineString(route[:, :2]), seen["zone"].buffer(margin - 1))
    assert not [e for e in _kinds(events, "off_route") if e.drone == who]
    assert not [e for e in _kinds(events, "mode_anomaly") if e.drone == who]
    landed = [e for e in _kinds(events, "landed") if e.drone == who]
    assert landed
    assert figures["keep_out_breaches"] == 0 and figures["landed_below_reserve"] == 0
    assert figures["state"] == "COMPLETE"


def test_a_route_sent_while_the_radio_is_down_is_not_booked_as_flown(
    plan: Plan, tmp_path: Path
) -> None:
    """Every drone's radio drops out just before a zone is added (for less than the lost-link
    timeout): the re-plan's longer routes never reach them. The link says so; each drone flies
    on with the route it had, then comes home by a route sent again once its radio is back,
    and its rest is handed on: the area is still covered. (The runtime used to book the
    undelivered route as flown, and the next re-plan cut the drone's sweep where it wrongly
    had it: reliability seed 876 --zones, 4.5 ha never swept.)"""
    figures, events = _fly(
        plan,
        tmp_path / "radio.db",
        [_add_zone(plan.mission, _fire_band(plan.mission), 200)],
        faults=[{"kind": "link_lost", "at_s": 197, "fraction": 1.0, "duration_s": 6}],
    )
    failed = [
        e for e in _kinds(events, "link_command_failed") if e.data["command"] == "START_MISSION"
    ]
    assert failed, "no route was sent into the drop-out"
    assert not _kinds(events, "lost")
    assert figures["state"] == "COMPLETE" and figures["drones_lost"] == 0
    assert figures["keep_out_breaches"] == 0 and figures["landed_below_reserve"] == 0
    assert figures["covered_fraction"] >= 0.97


def test_a_drone_heard_again_in_the_air_after_its_work_was_handed_on_flies_again(
    plan: Plan, tmp_path: Path
) -> None:
    """A drone silent past the lost-link timeout has its work handed on; heard again in the
    air, it comes home, and once down it takes a share of what is still to fly (reliability
    seed 653 --zones: it stayed on the ground, and three drones ran out of mission time on the
    work handed on from it)."""
    victim = plan.mission.fleet.ids[0]
    first = plan.of_drone(0)[0]
    at_s = round(first.launch_s + 0.4 * first.duration_s)
    figures, events = _fly(
        plan,
        tmp_path / "back.db",
        faults=[{"kind": "link_lost", "at_s": at_s, "drone": victim, "duration_s": 25}],
    )
    assert [e.drone for e in _kinds(events, "lost")] == [victim]
    landed = [e.t_s for e in _kinds(events, "landed") if e.drone == victim]
    assert landed
    back = [e for e in _kinds(events, "replan") if f"{victim} back" in e.data["reason"]]
    assert back and back[0].t_s >= landed[0]
    again = [e for e in _kinds(events, "launch") if e.drone == victim and e.t_s > landed[0]]
    assert again, "it never flew again"
    assert figures["state"] == "COMPLETE" and figures["covered_fraction"] >= 0.99
    assert figures["keep_out_breaches"] == 0 and figures["landed_below_reserve"] == 0


def test_a_drone_between_two_cells_is_re_planned_from_the_next_cell_not_sent_back(
    tmp_path: Path,
) -> None:
    """A drone flying the transit between two cells of its sortie has swept all before the
    next cell: a re-plan takes its rest from there. (Taken from where it last swept, the
    re-planner counted the transit as still to sweep, and a drone 130 m on was sent back along
    it; the kernel refused the turn at the margin: reliability seed 653 --zones.)"""
    from skysweep.plan.model import Leg
    from skysweep.telemetry import AutopilotMode

    seen: dict[str, Any] = {}

    def watch(o: Orchestrator) -> None:
        fs = o.last_state
        if fs is None or "drone" in seen:
            return
        for i in np.flatnonzero((o.mode == FlightMode.TRANSIT) & (fs.mode == AutopilotMode.AUTO)):
            sortie = o._flying_sortie(int(i))
            if sortie is None or o._detour_end[i] > fs.mission_seq[i]:
                continue
            k = int(fs.mission_seq[i] + o._seq_shift[i]) - 1
            if not (sortie.legs[:k] == Leg.SWEEP).any():
                continue  # still on its way out
            ahead = np.flatnonzero(sortie.legs[k:] != Leg.TRANSIT)
            if not len(ahead) or sortie.legs[k + ahead[0]] != Leg.SWEEP:
                continue
            nxt = sortie.path[k + int(ahead[0]), :2]
            if np.hypot(*(fs.pos_m[i, :2] - o._route_at[i])) < 40.0:
                continue  # not far on from where it last swept yet
            seen.update(drone=int(i), at=o._swept_to(fs)[i], next=nxt, last=o._route_at[i].copy())
            return

    # a band across the area, with a way round each end: sweeps cut in two, joined round it
    p = _roomy_plan()
    x0, y0, x1, y1 = p.mission.searchable.bounds
    cy = (y0 + y1) / 2 + 300
    band = shapely.box(x0 + 100, cy - 60, x1 - 100, cy + 60)
    _fly(p, tmp_path / "cells.db", [_add_zone(p.mission, band, 60)], watch=watch)
    assert "drone" in seen, "no drone flew a transit between two cells"
    assert np.allclose(seen["at"], seen["next"])
    assert not np.allclose(seen["at"], seen["last"])
