"""The ``skysweep`` command line: plan, sim, run, vehicles, export, report, demo.

A user's mistake (a bad mission file, an infeasible mission, a broken run log) prints one line
on stderr and exits with code 2; never a traceback.
"""

from __future__ import annotations

import csv
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import wraps
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from skysweep import mission as mission_mod
from skysweep.errors import InfeasibleError, LinkError, MissionError, SkysweepError, StoreError
from skysweep.plan import Plan, plan_mission
from skysweep.runtime.commands import OperatorCommand
from skysweep.runtime.modes import AIRBORNE_MODES, FlightMode
from skysweep.runtime.orchestrator import Orchestrator, RunSummary
from skysweep.runtime.simulate import SimTruth, resume_simulation, simulate
from skysweep.sim.faults import Fault
from skysweep.store import RunLog

app = typer.Typer(
    help="skysweep: plan and fly fleets of drones for search and rescue.",
    no_args_is_help=True,
    add_completion=False,
)
err = Console(stderr=True)
out = Console()

F = TypeVar("F", bound=Callable[..., Any])


def _user_errors(fn: F) -> F:
    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SkysweepError as exc:
            print(f"skysweep: {exc}", file=sys.stderr)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def _plan_summary(plan: Plan, planning_time_s: float) -> dict[str, Any]:
    m = plan.metrics
    return {
        "mission": plan.mission.name,
        "drones": m.drones,
        "sorties": m.sorties,
        "searchable_area_m2": round(m.searchable_area_m2, 1),
        "coverage_fraction": round(m.coverage_fraction, 5),
        "makespan_s": round(m.makespan_s, 1),
        "lower_bound_s": round(m.lower_bound_s, 1),
        "efficiency": round(m.efficiency, 4),
        "planning_time_s": round(planning_time_s, 3),
    }


def _prior_summary(plan: Plan, geojson_path: Path | None) -> dict[str, Any]:
    """The probability map's figures for ``skysweep plan`` (none without a search.prior): its
    total POA, the plan's POS (every cell's POD from the sweep effort the plan puts in it,
    exponential detection with the swath as sweep width) and Stone's optimum at that effort."""
    from skysweep.search import build_prior, optimal_effort, pod, pos
    from skysweep.search.prior import plan_effort

    grid = build_prior(plan.mission)
    if grid is None:
        if geojson_path is not None:
            raise MissionError(plan.mission.source, "search.prior", "no prior to write")
        return {}
    z = plan_effort(plan, grid)
    best = optimal_effort(grid.poa, grid.area_m2, float(z.sum()))
    if geojson_path is not None:
        values = {"pod_plan": pod(z, grid.area_m2), "pod_optimal": pod(best, grid.area_m2)}
        geojson_path.write_text(json.dumps(grid.to_geojson(plan.mission, values)))
    return {
        "prior_cells": int((grid.area_m2 > 0).sum()),
        "prior_cell_m": grid.cell_m,
        "poa_total": round(grid.total, 5),
        "pos_plan": round(pos(grid.poa, z, grid.area_m2), 5),
        "pos_optimal_same_effort": round(pos(grid.poa, best, grid.area_m2), 5),
    }


def _plan(path: Path) -> tuple[Plan, float]:
    mission = mission_mod.load(path)
    t0 = time.perf_counter()
    plan = plan_mission(mission)
    return plan, time.perf_counter() - t0


@app.command()
@_user_errors
def plan(
    mission: Annotated[Path, typer.Argument(help="Mission file (YAML or JSON).")],
    out_path: Annotated[
        Path,
        typer.Option("--out", help="Write the plan here as GeoJSON, one LineString per sortie."),
    ] = Path("plan.geojson"),
    qgc: Annotated[
        Path | None,
        typer.Option("--qgc", help="Also write one QGroundControl .plan per drone here."),
    ] = None,
    kml: Annotated[Path | None, typer.Option("--kml", help="Also write the plan as KML.")] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object.")
    ] = False,
    probability: Annotated[
        Path | None,
        typer.Option(
            "--probability",
            help="Write the probability map (search.prior) here as GeoJSON: one square per "
            "cell with its POA, density and the plan's POD.",
        ),
    ] = None,
) -> None:
    """Split the search among the drones and write every sortie's route. With a
    search.prior, also print the map's total POA and the plan's probability of success."""
    from skysweep import export

    p, dt = _plan(mission)
    out_path.write_text(json.dumps(export.plan_to_geojson(p)))
    if qgc is not None:
        export.write_qgc(p, qgc)
    if kml is not None:
        kml.write_text(export.plan_to_kml(p))
    summary = _plan_summary(p, dt)
    summary.update(_prior_summary(p, probability))
    if as_json:
        print(json.dumps(summary))
    else:
        _table("plan", summary)
        out.print(f"plan written to {out_path}")


def _table(title: str, rows: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=title, show_header=False)
    for k, v in rows.items():
        t.add_row(k, f"{v:,.4g}" if isinstance(v, float) else str(v))
    out.print(t)


def _fly(
    p: Plan,
    log_path: Path,
    seed: int,
    show_progress: bool,
    faults: Sequence[Fault] = (),
    commands: Sequence[OperatorCommand] = (),
) -> dict[str, Any]:
    with RunLog(log_path, create=True) as log:
        log.set_meta("mission", json.loads(mission_mod.to_json(p.mission.spec)))
        log.set_meta("drones", list(p.mission.fleet.ids))
        log.set_meta("plan_metrics", _plan_summary(p, 0.0))
        log.set_meta("seed", seed)
        log.set_meta("faults", [f.model_dump() for f in faults])
        expected = max(s.land_s for s in p.sorties)
        summary, truth = _with_progress(
            expected,
            show_progress,
            lambda update: simulate(
                p, log, seed=seed, progress=update, faults=faults, commands=commands
            ),
        )
    return {**summary.as_dict(), **truth.as_dict()}


def _resume(mission: mission_mod.Mission, log_path: Path, show_progress: bool) -> dict[str, Any]:
    with RunLog(log_path) as log:
        flown = log.meta("mission")
        given = json.loads(mission_mod.to_json(mission.spec))
        if flown != given:
            raise StoreError(
                f"{log_path}: this run log flies mission {flown.get('name')!r} as it was then; "
                f"{mission.name!r} as given differs (resume with the mission file it started with)"
            )
        expected = float(log.meta("plan_metrics", {}).get("makespan_s", 0.0)) or 1.0
        summary, truth = _with_progress(
            expected, show_progress, lambda update: resume_simulation(log, progress=update)
        )
    return {**summary.as_dict(), **truth.as_dict()}


def _with_progress(
    expected_s: float,
    show: bool,
    fly: Callable[[Callable[[Orchestrator], None] | None], tuple[RunSummary, SimTruth]],
) -> tuple[RunSummary, SimTruth]:
    """Run ``fly(progress)`` under a progress bar on stderr (none if not ``show``)."""
    if not show:
        return fly(None)
    with Progress(
        TextColumn("[bold]flying[/]"),
        BarColumn(),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    ) as bar:
        task = bar.add_task("sim", total=expected_s, status="")

        def update(o: Orchestrator) -> None:
            if int(o.t_s * 2) % 20 == 0:
                up = int(np.isin(o.mode, AIRBORNE_MODES).sum())
                bar.update(
                    task,
                    completed=min(o.t_s, expected_s),
                    status=f"t={o.t_s:6.0f} s  airborne {up:4d}  "
                    f"covered {o.coverage.fraction:6.1%}",
                )

        result = fly(update)
        bar.update(task, completed=expected_s)
    return result


@app.command()
@_user_errors
def sim(
    mission: Annotated[Path, typer.Argument(help="Mission file (YAML or JSON).")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same run.")] = 0,
    log: Annotated[Path, typer.Option("--log", help="Run log (SQLite) to write.")] = Path("run.db"),
    faults: Annotated[
        Path | None,
        typer.Option("--faults", help="Fault schedule (YAML, see docs/faults.md) to inject."),
    ] = None,
    commands: Annotated[
        Path | None,
        typer.Option(
            "--commands",
            help="Operator commands to give at set times (YAML, see docs/operations.md).",
        ),
    ] = None,
    resume: Annotated[
        Path | None,
        typer.Option(
            "--resume",
            help="Fly on a run that stopped without ending (killed, crashed) from its run log: "
            "from its last checkpoint, with its seed, faults and commands.",
            metavar="RUN.db",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object.")
    ] = False,
) -> None:
    """Plan the mission and fly it in the built-in simulator, faster than real time.

    The simulator has wind gusts, battery sag, GPS noise, a camera that detects the mission's
    simulated search objects, and onboard separation between drones (see docs/faults.md).
    While it flies, `skysweep command LOG ...` from another terminal reaches it. The run is
    checkpointed to its log every 10 s of mission time; `--resume LOG` carries it on.
    """
    from skysweep.runtime.commands import load_script
    from skysweep.sim.faults import load_faults

    m = mission_mod.load(mission)
    if resume is not None:
        if faults is not None or commands is not None:
            raise typer.BadParameter(
                "flies on with the run's own faults and commands; "
                "do not give --faults or --commands",
                param_hint="--resume",
            )
        summary = _resume(m, resume, show_progress=not as_json)
        log = resume
    else:
        schedule = load_faults(faults, m.fleet.ids) if faults is not None else []
        script = load_script(commands, m.fleet.ids) if commands is not None else []
        p, _ = _plan(mission)
        summary = _fly(p, log, seed, show_progress=not as_json, faults=schedule, commands=script)
    if as_json:
        print(json.dumps(summary))
    else:
        _table("flight", summary)
        out.print(f"run log written to {log}")


@app.command()
@_user_errors
def command(
    run: Annotated[Path, typer.Argument(help="Run log of the mission in flight (--log of sim).")],
    kind: Annotated[
        str,
        typer.Argument(
            help="pause, resume, home, land, add_keep_out, remove_keep_out, abort, "
            "confirm_detection, dismiss_detection or reallocate.",
            metavar="COMMAND",
        ),
    ],
    drone: Annotated[
        list[str] | None,
        typer.Option("--drone", help="A drone's fleet id (repeat for more); default all."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Keep-out zone name.")] = None,
    geojson: Annotated[
        Path | None,
        typer.Option("--geojson", help="The new keep-out zone: a GeoJSON Polygon file (lon/lat)."),
    ] = None,
    detection: Annotated[
        int | None,
        typer.Option("--detection", help="A detection's number (confirm/dismiss_detection)."),
    ] = None,
) -> None:
    """Give an operator command to a mission in flight: it is queued in the run log and carried
    out, and logged with its result, on the orchestrator's next tick."""
    from skysweep.runtime.commands import parse_command

    data: dict[str, Any] = {"command": kind.replace("-", "_")}
    if drone:
        data["drones"] = list(drone)
    if name is not None:
        data["name"] = name
    if geojson is not None:
        data["geometry"] = mission_mod.read_yaml(geojson)
    if detection is not None:
        data["detection"] = detection
    with RunLog(run) as log:
        ids = log.meta("drones")
        cmd = parse_command(data, "command", ids)
        number = log.post_command(cmd.command, cmd.args())
    out.print(f"command {number} ({cmd.command}) queued in {run}")


@app.command()
@_user_errors
def export(
    run: Annotated[Path, typer.Argument(help="Run log written by `skysweep sim`.")],
    telemetry: Annotated[
        Path, typer.Option("--telemetry", help="CSV: one row per drone per tick.")
    ] = Path("telemetry.csv"),
) -> None:
    """Write a run's telemetry as CSV: t_s,drone,lon,lat,alt_m,speed_mps,battery,mode."""
    with RunLog(run) as log:
        m = mission_mod.parse(log.meta("mission"), source=str(run))
        ids = np.array(log.meta("drones"))
        names = np.array([f.name for f in FlightMode])
        with telemetry.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["t_s", "drone", "lon", "lat", "alt_m", "speed_mps", "battery", "mode"])
            for t_s, c in log.telemetry():
                lon, lat = m.frame.to_lonlat(c["x_m"], c["y_m"])
                w.writerows(
                    zip(
                        np.full(len(ids), f"{t_s:.1f}"),
                        ids,
                        np.char.mod("%.7f", lon),
                        np.char.mod("%.7f", lat),
                        np.char.mod("%.1f", c["alt_m"]),
                        np.char.mod("%.2f", c["speed_mps"]),
                        np.char.mod("%.4f", c["battery"]),
                        names[c["mode"]],
                        strict=True,
                    )
                )
    out.print(f"telemetry written to {telemetry}")


@app.command()
@_user_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run log written by `skysweep sim`.")],
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write.")] = Path(
        "report.html"
    ),
) -> None:
    """Write a self-contained HTML report of a run: map, figures, battery over time."""
    from skysweep.report import write_report

    write_report(run, out_path)
    out.print(f"report written to {out_path}")


@app.command()
@_user_errors
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's outputs.")] = Path(
        "runs/demo"
    ),
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Plan and fly the bundled demo mission, then write its report."""
    from skysweep import export as export_mod
    from skysweep.report import write_report

    out_dir.mkdir(parents=True, exist_ok=True)
    src = resources.files("skysweep") / "data" / "demo.yaml"
    mission_path = out_dir / "demo.yaml"
    mission_path.write_text(src.read_text(encoding="utf-8"))
    out.print(f"[bold]{mission_mod.load(mission_path).name}[/]  ({mission_path})")
    p, dt = _plan(mission_path)
    (out_dir / "plan.geojson").write_text(json.dumps(export_mod.plan_to_geojson(p)))
    _table("plan", _plan_summary(p, dt))
    t0 = time.perf_counter()
    summary = _fly(p, out_dir / "run.db", seed, show_progress=True)
    wall = time.perf_counter() - t0
    summary["wall_time_s"] = round(wall, 1)
    summary["faster_than_real_time"] = round(summary["mission_time_s"] / max(wall, 1e-9), 1)
    _table("flight", summary)
    write_report(out_dir / "run.db", out_dir / "report.html")
    out.print(f"report: {(out_dir / 'report.html').resolve()}")


def _vehicle_map(path: Path, links: int) -> dict[str, tuple[int, int]]:
    """``--vehicles FILE``: YAML mapping each drone id to ``LINK:SYSTEM`` (link = the index of
    its --link, from 0; system = its MAVLink system id)."""
    raw = mission_mod.read_yaml(path)
    if not isinstance(raw, dict):
        raise LinkError(f"{path}: expected a mapping of drone id to LINK:SYSTEM")
    out: dict[str, tuple[int, int]] = {}
    for drone, where in raw.items():
        link_no, _, system = str(where).partition(":")
        try:
            out[str(drone)] = (int(link_no), int(system))
        except ValueError:
            raise LinkError(f"{path}: {drone}: {where!r} is not LINK:SYSTEM (e.g. 0:17)") from None
        if not 0 <= out[str(drone)][0] < links:
            raise LinkError(f"{path}: {drone}: link {link_no} is not one of the {links} --link")
    return out


def _connect(
    m: mission_mod.Mission,
    link: list[str],
    vehicles: Path | None,
    signing_key: Path | None,
    time_scale: float,
    stream_hz: float,
    connect_timeout: float,
    quiet: bool,
) -> tuple[Any, bytes | None]:
    """Open the MAVLink links and wait until every vehicle is heard (position and battery);
    the link, started, and the signing key. Closed again if a vehicle is not ready."""
    from skysweep.mavlink.link import MavlinkLink
    from skysweep.mavlink.signing import load_key
    from skysweep.mavlink.transport import Endpoint
    from skysweep.runtime.preflight import summarise

    for text in link:
        Endpoint.parse(text)  # a mistyped link fails before anything is opened
    key = load_key(signing_key) if signing_key is not None else None
    mapping = _vehicle_map(vehicles, len(link)) if vehicles is not None else None
    mav = MavlinkLink(
        m, link, vehicles=mapping, signing_key=key, time_scale=time_scale, stream_hz=stream_hz
    )
    try:
        mav.start()
        if not quiet:
            err.print(f"connecting to {len(m.fleet)} vehicles on {', '.join(link)} …")
        problems = mav.connect(connect_timeout)
        if problems:
            raise InfeasibleError(f"vehicles not ready: {summarise(problems)}")
    except BaseException:
        mav.close()
        raise
    return mav, key


@app.command()
@_user_errors
def run(
    mission: Annotated[Path, typer.Argument(help="Mission file (YAML or JSON).")],
    link: Annotated[
        list[str],
        typer.Option(
            "--link",
            help="MAVLink connection, repeatable: udp:HOST:PORT (vehicles listen there), "
            "udpin:HOST:PORT (skysweep listens), tcp:HOST:PORT, serial:DEVICE[:BAUD].",
        ),
    ],
    log: Annotated[Path, typer.Option("--log", help="Run log (SQLite) to write.")] = Path("run.db"),
    vehicles: Annotated[
        Path | None,
        typer.Option(
            "--vehicles",
            help="YAML: drone id → LINK:SYSTEM. Without it, the first autopilots heard, in "
            "link then system-id order, take the drones in mission order.",
        ),
    ] = None,
    signing_key: Annotated[
        Path | None,
        typer.Option(
            "--signing-key",
            help="MAVLink 2 signing key file (64 hex digits, 32 bytes or a passphrase): sign "
            "everything sent, reject unsigned or wrongly signed input.",
        ),
    ] = None,
    connect_timeout: Annotated[
        float, typer.Option(help="Wall seconds to wait for every vehicle to be heard.")
    ] = 60.0,
    stream_hz: Annotated[
        float, typer.Option(help="Telemetry rate asked of each vehicle, Hz.")
    ] = 2.0,
    time_scale: Annotated[
        float,
        typer.Option(
            help="Mission seconds per wall second: only for simulated vehicles run with the "
            "same --time-scale (skysweep vehicles). Real vehicles: 1.",
        ),
    ] = 1.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as one JSON object.")
    ] = False,
) -> None:
    """Fly the mission on real PX4 / ArduPilot vehicles (or `skysweep vehicles`) over MAVLink.

    Connects, binds each drone to a vehicle, uploads the geofence to every vehicle and reads it
    back (a vehicle whose fence does not match is not armed), runs the pre-flight checks, then
    flies the plan: every sortie is uploaded and read back before take-off. See
    docs/real-vehicles.md.
    """
    from skysweep.mavlink.signing import fingerprint
    from skysweep.mavlink.transport import Endpoint
    from skysweep.runtime.clock import ScaledClock, WallClock
    from skysweep.runtime.preflight import summarise

    m = mission_mod.load(mission)
    for text in link:
        Endpoint.parse(text)  # a mistyped link fails before anything is planned or opened
    p, _ = _plan(mission)
    mav, key = _connect(
        m, link, vehicles, signing_key, time_scale, stream_hz, connect_timeout, quiet=as_json
    )
    try:
        with RunLog(log, create=True) as run_log:
            run_log.set_meta("mission", json.loads(mission_mod.to_json(p.mission.spec)))
            run_log.set_meta("drones", list(p.mission.fleet.ids))
            run_log.set_meta("plan_metrics", _plan_summary(p, 0.0))
            run_log.set_meta(
                "links",
                {"endpoints": list(link), "signing": fingerprint(key) if key else None},
            )
            orch = Orchestrator(p, mav, run_log)
            # a checkpoint holds the simulator's state; real vehicles keep their own
            orch.checkpoint_every_s = float("inf")
            clock = WallClock() if time_scale == 1.0 else ScaledClock(time_scale)
            problems = orch.authorise(clock.now())
            if problems:
                raise InfeasibleError(f"pre-flight checks failed: {summarise(problems)}")
            summary = orch.run(clock).as_dict()
            summary["link_messages"] = mav.messages
            summary["link_bad_input"] = sum(mav.bad_input.values())
    finally:
        mav.close()
    if as_json:
        print(json.dumps(summary))
    else:
        _table("flight", summary)
        out.print(f"run log written to {log}")


token_app = typer.Typer(help="Operator tokens for `skysweep serve`.", no_args_is_help=True)
app.add_typer(token_app, name="token")
_SECRET_HELP = "The server's secret file (made the first time it is needed)."


@token_app.command("create")
@_user_errors
def token_create(
    role: Annotated[
        list[str],
        typer.Option("--role", help="viewer, operator or safety; repeat for several."),
    ],
    name: Annotated[str, typer.Option(help="Who the token is for (logged with commands).")] = (
        "operator"
    ),
    ttl_h: Annotated[float, typer.Option(help="Hours the token is valid.")] = 12.0,
    secret: Annotated[Path, typer.Option(help=_SECRET_HELP)] = Path("~/.skysweep/secret"),
) -> None:
    """Print a token for `skysweep serve`: viewer sees, operator commands drones, safety
    edits keep-out zones (docs/server.md)."""
    from skysweep.server.auth import create_token, load_secret

    key = load_secret(secret)
    print(create_token(key, name, tuple(role), time.time(), ttl_h * 3600.0))


@app.command()
@_user_errors
def serve(
    mission: Annotated[Path, typer.Argument(help="Mission file (YAML or JSON).")],
    sim: Annotated[
        bool, typer.Option("--sim", help="Fly the mission in the built-in simulator.")
    ] = False,
    link: Annotated[
        list[str] | None,
        typer.Option(
            "--link", help="Fly real vehicles over MAVLink instead (as `skysweep run --link`)."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to serve on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port to serve on.")] = 8080,
    tiles: Annotated[
        Path | None,
        typer.Option("--tiles", help="Offline map tiles: an MBTiles or PMTiles file."),
    ] = None,
    secret: Annotated[Path, typer.Option(help=_SECRET_HELP)] = Path("~/.skysweep/secret"),
    speed: Annotated[
        float, typer.Option(min=0.01, help="With --sim: mission seconds per wall second.")
    ] = 1.0,
    seed: Annotated[int, typer.Option(help="With --sim: the simulator's random seed.")] = 0,
    faults: Annotated[
        Path | None,
        typer.Option("--faults", help="With --sim: fault schedule (YAML, docs/faults.md)."),
    ] = None,
    log: Annotated[Path, typer.Option("--log", help="Run log (SQLite) to write.")] = Path(
        "serve.db"
    ),
    connect_timeout: Annotated[
        float, typer.Option(help="With --link: wall seconds to wait for every vehicle.")
    ] = 60.0,
) -> None:
    """Fly the mission and serve it to incident command: REST API, WebSocket stream and the
    offline map page (docs/server.md). Prints the map's address with a fresh token."""
    import uvicorn

    from skysweep.server import Flight, LiveMission, create_app, sim_flight
    from skysweep.server.auth import create_token, load_secret
    from skysweep.server.tiles import open_tiles

    if sim == bool(link):
        raise typer.BadParameter("give either --sim or --link (not both)", param_hint="--sim")
    key = load_secret(secret)
    tile_source = open_tiles(tiles) if tiles is not None else None
    m = mission_mod.load(mission)
    p, _ = _plan(mission)
    mav = None
    if sim:
        from skysweep.sim.faults import load_faults

        schedule = load_faults(faults, m.fleet.ids) if faults is not None else []
        flight = sim_flight(p, seed=seed, faults=schedule, speed=speed)
    else:
        from skysweep.runtime.clock import WallClock

        mav, _ = _connect(m, list(link or []), None, None, 1.0, 2.0, connect_timeout, False)
        flight = Flight(link=mav, clock_factory=WallClock, checkpoints=False)
    live = LiveMission(p, flight, log)
    try:
        live.start()
        token = create_token(key, "incident-command", ("operator", "safety"), time.time(), 43200)
        # one unbroken line: the address is to be copied into a browser
        print(f"serving {m.name!r} on http://{host}:{port}/?token={token}", file=sys.stderr)
        uvicorn.run(create_app(live, key, tile_source), host=host, port=port, log_level="warning")
    finally:
        live.stop()
        if mav is not None:
            mav.close()


@app.command()
@_user_errors
def vehicles(
    mission: Annotated[Path, typer.Argument(help="Mission file (YAML or JSON).")],
    base_port: Annotated[int, typer.Option(help="UDP port of the first 250 vehicles.")] = 14550,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    count: Annotated[
        int | None, typer.Option(help="Serve only the first COUNT drones of the fleet.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the simulator.")] = 0,
    faults: Annotated[
        Path | None,
        typer.Option("--faults", help="Fault schedule (YAML, see docs/faults.md) to inject."),
    ] = None,
    signing_key: Annotated[
        Path | None, typer.Option("--signing-key", help="Sign and require signed MAVLink 2.")
    ] = None,
    time_scale: Annotated[
        float, typer.Option(help="Simulated seconds per wall second (1: real time).")
    ] = 1.0,
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many simulated seconds.")
    ] = None,
) -> None:
    """Serve the mission's fleet, simulated, as MAVLink 2 vehicles that behave as ArduPilot
    Copter: 250 system ids per UDP port from --base-port up. Any ground station (QGroundControl,
    MAVProxy, MAVSDK, `skysweep run`) can connect and fly them. Stop with Ctrl-C.
    """
    import numba

    from skysweep.mavlink.vehicles import serve

    # vehicles answer in real time: one kernel thread never waits on a core another process
    # holds (two threads stall whenever either is descheduled), and a fleet steps in ms
    numba.set_num_threads(1)
    facade = serve(
        mission,
        seed=seed,
        faults_path=faults,
        host=host,
        base_port=base_port,
        count=count,
        time_scale=time_scale,
        signing_key_path=signing_key,
    )
    ports = facade.ports
    err.print(
        f"serving {len(facade.world)} vehicles on udp {host}:{ports[0]}"
        + (f"-{ports[-1]}" if len(ports) > 1 else "")
        + f" (×{time_scale:g} time); Ctrl-C stops"
    )
    try:
        facade.serve_forever(until_sim_s=duration)
    except KeyboardInterrupt:
        pass
    finally:
        facade.close()


bench_app = typer.Typer(help="Benchmarks: figures for docs/benchmarks.md.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@bench_app.command("sim")
@_user_errors
def bench_sim(
    steps: Annotated[int, typer.Option(min=5, help="Steps timed per figure (median).")] = 50,
    rvo2: Annotated[
        bool, typer.Option(help="Also time the RVO2 C++ library (pyrvo) on the same scenes.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """Time the simulator step (2,500 and 10,000 drones) and the separation step (10,000
    drones, dense and sparse) beside RVO2's own step on the same scenes."""
    from skysweep.bench import sim as bench

    figures = bench.run(steps, with_rvo2=rvo2)
    if as_json:
        print(json.dumps(figures))
        return
    from rich.table import Table

    t = Table(title="simulator step (ms)")
    for col in ("drones", "separation", "median", "mean incl. 1 Hz work"):
        t.add_column(col)
    for key, label in (("sim_step", "off"), ("sim_step_separated", "ORCA")):
        for row in figures[key]:
            t.add_row(
                f"{row['drones']:,}", label, f"{row['median_ms']:.3f}", f"{row['mean_ms']:.3f}"
            )
    out.print(t)
    t = Table(title="separation step, 10,000 agents (ms)")
    for col in ("scene", "skysweep", "RVO2 do_step", "RVO2 + Python calls", "ratio", "ratio"):
        t.add_column(col)
    for kind, row in figures["separation"].items():
        ref = row["rvo2"]
        if ref is None:
            t.add_row(kind, f"{row['ours']['step_ms']:.2f}", "-", "-", "-", "-")
            continue
        t.add_row(
            kind,
            f"{row['ours']['step_ms']:.2f}",
            f"{ref['do_step_ms']:.2f}",
            f"{ref['full_step_ms']:.2f}",
            f"{row['speedup_vs_do_step']:.1f}x",
            f"{row['speedup_vs_full_step']:.1f}x",
        )
    out.print(t)
    if not any(r["rvo2"] for r in figures["separation"].values()):
        out.print("RVO2 not timed: install the dev extra (pip install -e '.[dev]') for pyrvo")


@bench_app.command("link")
@_user_errors
def bench_link(
    vehicles: Annotated[int, typer.Option(min=1, help="Simulated autopilots sending.")] = 2500,
    rate_hz: Annotated[float, typer.Option(help="Telemetry rate of each, Hz.")] = 5.0,
    seconds: Annotated[float, typer.Option(help="How long to send, s.")] = 10.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """MAVLink telemetry ingest, UDP datagrams to FleetState: a sender process plays the
    fleet's autopilots (250 per port), the link ingests on one core."""
    from skysweep.bench import link as bench

    figures = bench.run(vehicles, rate_hz, seconds)
    if as_json:
        print(json.dumps(figures))
    else:
        _table("MAVLink ingest", figures)


@bench_app.command("reliability")
@_user_errors
def bench_reliability(
    missions: Annotated[
        int, typer.Option("--missions", min=1, help="How many random missions to fly.")
    ] = 1000,
    seed: Annotated[
        int, typer.Option("--seed", min=0, help="The first mission's seed; the rest follow on.")
    ] = 0,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Worker processes (one mission each).")
    ] = 2,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the report (totals, every failing mission) as JSON."),
    ] = False,
    zones: Annotated[
        bool,
        typer.Option(
            "--zones",
            help="An operator also adds 0-2 keep-out zones to each mission in flight; they are "
            "judged from the moment they are added, and coverage outside them.",
        ),
    ] = False,
) -> None:
    """Fly random missions (concave areas, holes, several sites, mixed fleets) with random
    faults in the simulator, through the real planner, orchestrator, safety kernel and
    failsafes, and check the simulator's true state every step: keep-in breaches, keep-out
    entries, separation, landings below the reserve, crashes, and coverage where the fleet
    could still finish. Exits 1 if any invariant failed; a seed replays its mission exactly.
    See docs/reliability.md."""
    from skysweep.bench.reliability import main_bench

    code = main_bench(missions, start_seed=seed, workers=workers, as_json=as_json, zones=zones)
    if code:
        raise typer.Exit(code)


@bench_app.command("serve")
@_user_errors
def bench_serve(
    mission: Annotated[Path, typer.Argument(help="Mission to fly, e.g. examples/flood-2500.yaml.")],
    viewers: Annotated[int, typer.Option(min=1, help="WebSocket viewers to connect.")] = 20,
    duration: Annotated[
        float, typer.Option(help="Wall seconds measured after the fleet has launched.")
    ] = 60.0,
    warm: Annotated[
        float, typer.Option(help="Wall seconds for the fleet to launch before measuring.")
    ] = 40.0,
    commands: Annotated[int, typer.Option(min=0, help="Pause / resume / home rounds timed.")] = 5,
    browser: Annotated[
        bool, typer.Option(help="Time the map page's redraw in headless Chromium.")
    ] = True,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """Fly MISSION behind `skysweep serve --sim` in real time (2 ticks a second) with many
    viewers: tick rate held, frame size, command round trips, map redraw time, server CPU."""
    from skysweep.bench import serve as bench

    mission_mod.load(mission)  # a bad file fails here, not in the server's process
    figures = bench.run(
        mission, viewers=viewers, duration_s=duration, commands=commands, browser=browser,
        warm_s=warm,
    )  # fmt: skip
    if as_json:
        print(json.dumps(figures))
    else:
        _table("operator server", figures)


@bench_app.command("plan")
@_user_errors
def bench_plan(
    only: Annotated[
        list[str] | None,
        typer.Option(
            "--only", help="Run just this scenario (repeat for several); default: all of them."
        ),
    ] = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            help="Plan each scenario this many times: its planning time is the median (the "
            "speed bars are judged on it), and every repeat must give the same plan.",
        ),
    ] = 3,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """Plan every mission of the scenario suite (3 to 2,500 drones; concave, multi-part and
    corridor areas; up to 50 keep-outs) and check the planner's bars: efficiency, coverage,
    keep-out intrusions and planning time. A failing bar is reported, not an error. Each
    scenario's ceiling is the most efficiency any plan could reach on it (by a tighter bound
    that flies each drone from its own site, with its climbs and batteries)."""
    from skysweep.bench import plan as bench
    from skysweep.bench.plan_scenarios import PlanScenario, scenario

    for name in only or ():
        try:
            scenario(name)
        except KeyError as exc:
            raise typer.BadParameter(exc.args[0], param_hint="--only") from None

    def announce(sc: PlanScenario) -> None:
        if not as_json:
            err.print(f"planning {sc.name} ...")

    figures = bench.run(only, repeat=repeat, progress=announce)
    if as_json:
        print(json.dumps(figures))
        return
    from rich.table import Table

    t = Table(title="planner on the scenario suite")
    for col in ("scenario", "drones", "area km²", "efficiency", "coverage", "planning s"):
        t.add_column(col, justify="left" if col == "scenario" else "right", no_wrap=True)
    t.add_column("sorties", justify="right", no_wrap=True)
    t.add_column("intrusions", justify="right", no_wrap=True)
    t.add_column("ceiling", justify="right", no_wrap=True)
    t.add_column("of fleet bound", justify="right", no_wrap=True)
    for r in figures["scenarios"]:
        if "error" in r:
            t.add_row(r["name"], f"{r['drones']:,}", f"{r['area_km2']:.1f}", "[red]failed[/]")
            continue
        t.add_row(
            r["name"],
            f"{r['drones']:,}",
            f"{r['area_km2']:.1f}",
            f"{r['efficiency']:.3f}",
            f"{r['coverage_fraction']:.4f}",
            f"{r['planning_s']:.2f}",
            f"{r['sorties']:,}" + ("" if r["one_battery"] else "*"),
            str(r["keep_out_intrusions"]),
            f"{r['ceiling']:.3f}",
            f"{r['of_fleet_bound']:.3f}",
        )
    # ten columns need about 120 characters: piped output is not squeezed into rich's 80
    (out if out.is_terminal else Console(width=124)).print(t)
    for r in figures["scenarios"]:
        if "error" in r:
            out.print(f"[red]{r['name']} failed to plan:[/] {r['error']}")
    out.print(f"planning s: the median of {repeat} run{'s' if repeat > 1 else ''} a scenario")
    out.print("sorties*: some drone flew more than one sortie (not a one-battery scenario)")
    out.print("ceiling: the most efficiency any plan can reach (lower bound / fleet bound)")
    out.print("of fleet bound: how near the plan comes to it (fleet bound / makespan)")
    summary = figures["summary"]
    if summary["one_battery_out_of_reach"]:
        names = ", ".join(summary["one_battery_out_of_reach"])
        out.print(f"one-battery scenarios no plan can bring to the bar: {names}")
    for b in figures["summary"]["bars"]:
        mark = {True: "[green]PASS[/]", False: "[red]FAIL[/]", None: "[dim]n/a[/] "}[b["holds"]]
        v = b["value"]
        value = "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)
        out.print(f"{mark}  {b['bar']}: {value}")


@bench_app.command("replan")
@_user_errors
def bench_replan(
    mission: Annotated[
        Path | None,
        typer.Argument(help="Mission to plan and re-plan; default: the plan suite's speed-2500."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed that picks the lost drones.")] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """Plan a large mission, fly it as planned to half its makespan, then time re-planning
    twice: a tenth of the airborne drones lost, and a new 600 m keep-out zone. Checks issue 3's
    bars (<= 0.5 s, coverage of the rest >= 0.995, no work to a lost drone); a failing bar is
    reported, not an error."""
    from skysweep.bench import replan as bench

    figures = bench.run(None if mission is None else mission_mod.load(mission), seed=seed)
    if as_json:
        print(json.dumps(figures))
        return
    p = figures["plan"]
    out.print(
        f"{figures['mission']}: {figures['drones']:,} drones, planned in {p['planning_s']:.2f} s "
        f"({p['sorties']:,} sorties, makespan {p['makespan_s']:,.0f} s); re-planned at "
        f"{figures['at_s']:,.0f} s with {figures['airborne']:,} drones flown"
    )
    from rich.table import Table

    t = Table(title="re-planning")
    for col in ("case", "time s", "coverage", "makespan s", "to lost", "into new zone"):
        t.add_column(col, justify="left" if col == "case" else "right", no_wrap=True)
    for c in figures["cases"]:
        t.add_row(
            c["case"] + (f" ({c['lost']})" if c["lost"] else ""),
            f"{c['replan_s_min']:.3f}-{c['replan_s_max']:.3f}",
            f"{c['coverage_fraction']:.4f}",
            f"{c['makespan_s']:,.0f}",
            str(c["sorties_of_lost_drones"]),
            str(c["new_zone_intrusions"]),
        )
    out.print(t)
    for b in figures["bars"]:
        mark = "[green]PASS[/]" if b["holds"] else "[red]FAIL[/]"
        out.print(f"{mark}  {b['bar']}: {b['value']}")


@bench_app.command("search")
@_user_errors
def bench_search(
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="Run just this scenario (repeat for several); default: all."),
    ] = None,
    runs: Annotated[int, typer.Option(min=10, help="Monte Carlo runs per scenario.")] = 500,
    flights: Annotated[
        int, typer.Option(min=1, help="Simulated flights per plan the runs are shared over.")
    ] = 2,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the persons and the flights.")] = 0,
    plot: Annotated[
        Path | None, typer.Option(help="Write the POS-over-time plot here (PNG).")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print every figure as one JSON object.")
    ] = False,
) -> None:
    """Monte Carlo search missions in the simulator: the person placed by sampling the
    probability map, the plan steered by the map against a uniform lawnmower with the same
    fleet, and against Stone's optimum at equal effort. Prints POS over time, mean and median
    time to find, and the issue's bars. See docs/benchmarks.md."""
    from skysweep.bench import search as bench

    for name in only or ():
        if name not in bench.SCENARIOS:
            known = ", ".join(bench.SCENARIOS)
            raise typer.BadParameter(f"no scenario {name!r}; known: {known}", param_hint="--only")
    results = bench.run(only, runs=runs, flights=flights, seed=seed)
    if plot is not None:
        bench.plot(results, plot)
    if as_json:
        print(json.dumps(results))
        return
    from rich.table import Table

    t = Table(title="search: steered by the map / uniform lawnmower")
    rows = bench.summary_rows(results)
    for col in rows[0]:
        t.add_column(col.replace("_", " "), no_wrap=col != "bars")
    for r in rows:
        t.add_row(*(str(v) for v in r.values()))
    (out if out.is_terminal else Console(width=160)).print(t)


if __name__ == "__main__":  # pragma: no cover
    app()
