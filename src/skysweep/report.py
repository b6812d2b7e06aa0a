"""A self-contained HTML report of a run: map of tracks and coverage, figures, battery."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import shapely

from skysweep import mission as mission_mod
from skysweep.geo import FloatArray
from skysweep.runtime.watch import SENSOR_MIN_ALT
from skysweep.search.effort import pod, pos, posterior, swept_effort
from skysweep.search.prior import ProbabilityGrid, build_prior, sweep_width_m
from skysweep.store import RunLog


def _png(fig: plt.Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _rows(d: dict[str, object]) -> str:
    return "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in d.items()
    )


def _outline(ax: plt.Axes, geom: shapely.Geometry, **kw: object) -> None:
    for poly in shapely.get_parts(geom):
        for ring in [poly.exterior, *poly.interiors]:
            xy = np.asarray(ring.coords)
            ax.plot(xy[:, 0] / 1e3, xy[:, 1] / 1e3, **kw)  # type: ignore[arg-type]


def _search_figures(
    m: mission_mod.Mission,
    grid: ProbabilityGrid,
    t: FloatArray,
    x: FloatArray,
    y: FloatArray,
    a: FloatArray,
) -> tuple[str, str, dict[str, object]]:
    """The probability map before and after the search, each cell's POD, and the POS over
    time, from the tracks flown (telemetry, every tick: the orchestrator's own count)."""
    swath = sweep_width_m(m)
    sensing = a >= SENSOR_MIN_ALT * m.altitude_m
    effort = np.zeros(grid.shape)
    every = max(1, len(t) // 500)
    at_k: list[int] = [0]
    pos_k: list[float] = [0.0]
    for k in range(1, len(t)):
        both = np.flatnonzero(sensing[k] & sensing[k - 1])
        if len(both):
            a_xy = np.column_stack([x[k - 1, both], y[k - 1, both]])
            b_xy = np.column_stack([x[k, both], y[k, both]])
            effort += swept_effort(
                grid.x0_m, grid.y0_m, grid.cell_m, grid.shape, a_xy, b_xy, swath[both]
            )
        if k % every == 0 or k == len(t) - 1:
            at_k.append(k)
            pos_k.append(pos(grid.poa, effort, grid.area_m2))
    poc = posterior(grid.poa, effort, grid.area_m2)
    detect = pod(effort, grid.area_m2)
    ny, nx = grid.shape
    extent = (
        grid.x0_m / 1e3,
        (grid.x0_m + nx * grid.cell_m) / 1e3,
        grid.y0_m / 1e3,
        (grid.y0_m + ny * grid.cell_m) / 1e3,
    )
    live = grid.area_m2 > 0
    per_km2 = 1e6 / np.where(live, grid.area_m2, 1.0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.4))
    panels = (
        (grid.poa * per_km2, "POA before the search, per km²", "magma"),
        (poc * per_km2, "POC after it, per km²", "magma"),
        (detect, "POD of the search flown", "viridis"),
    )
    for ax, (values, title, cmap) in zip(axes, panels, strict=True):
        shown = np.ma.masked_where(~live, values)
        im = ax.imshow(shown, origin="lower", extent=extent, cmap=cmap, interpolation="nearest")
        _outline(ax, m.area, color="0.4", lw=0.8)
        ax.set_title(title, fontsize=9)
        ax.set_aspect("equal")
        ax.set_xlabel("km east")
        fig.colorbar(im, ax=ax, shrink=0.75)
    axes[0].set_ylabel("km north")
    maps_png = _png(fig)
    fig, ax = plt.subplots(figsize=(8, 3.2))
    ax.plot(t[at_k] / 60, pos_k, label="POS of the search flown")
    ax.axhline(grid.total, color="0.5", ls="--", label="POA of the searchable area")
    ax.set_xlabel("minutes since mission start")
    ax.set_ylabel("probability of success")
    ax.set_ylim(0, 1.0)
    ax.legend(fontsize=8)
    pos_png = _png(fig)
    figures: dict[str, object] = {
        "cells": int(live.sum()),
        "cell_m": grid.cell_m,
        "poa_total": round(grid.total, 4),
        "pos_final": round(pos_k[-1], 4),
    }
    return maps_png, pos_png, figures


def write_report(run: Path, out: Path) -> None:
    """Read the run log ``run`` and write ``out`` (one HTML file, images inlined)."""
    with RunLog(run) as log:
        m = mission_mod.parse(log.meta("mission"), source=str(run))
        summary = log.meta("summary", {})
        plan_metrics = log.meta("plan_metrics", {})
        ts, xs, ys, bat, alt = [], [], [], [], []
        for tick_s, c in log.telemetry():
            ts.append(tick_s)
            xs.append(c["x_m"])
            ys.append(c["y_m"])
            bat.append(c["battery"])
            alt.append(c["alt_m"])
    t = np.array(ts)
    x = np.array(xs, float)
    y = np.array(ys, float)
    b = np.array(bat, float)
    a = np.array(alt, float)

    fig, ax = plt.subplots(figsize=(8, 7))
    _outline(ax, m.keep_in, color="0.5", lw=1, ls="--", label="keep-in")
    _outline(ax, m.area, color="tab:blue", lw=1.5, label="area")
    for z in m.keep_out:
        for poly in shapely.get_parts(z.geometry):
            xy = np.asarray(poly.exterior.coords) / 1e3
            ax.fill(xy[:, 0], xy[:, 1], color="tab:red", alpha=0.5)
    step = max(1, len(t) // 1500)
    sensing = a >= 0.9 * m.altitude_m
    swath_px = float(np.median(m.fleet.swath_m))
    if len(t):
        # the flown tracks at sensing altitude, drawn a swath wide: the area actually seen
        for i in range(x.shape[1]):
            xi = np.where(sensing[::step, i], x[::step, i], np.nan) / 1e3
            yi = np.where(sensing[::step, i], y[::step, i], np.nan) / 1e3
            ax.plot(xi, yi, color="tab:green", alpha=0.25, lw=1, solid_capstyle="butt")
        for i in range(x.shape[1]):
            ax.plot(x[::step, i] / 1e3, y[::step, i] / 1e3, color="k", lw=0.3, alpha=0.6)
    sites_km = m.site_xy_m / 1e3
    ax.scatter(
        sites_km[:, 0],
        sites_km[:, 1],
        marker="^",
        s=80,
        color="tab:orange",
        zorder=5,
        label="launch sites",
    )
    ax.set_aspect("equal")
    ax.set_xlabel("km east")
    ax.set_ylabel("km north")
    ax.set_title(f"{m.name}: flown tracks (black), keep-out (red); swath {swath_px:g} m")
    ax.legend(loc="upper right", fontsize=8)
    map_png = _png(fig)

    fig, ax = plt.subplots(figsize=(8, 3.5))
    if len(t):
        airborne = a > 0.5
        bb = np.where(airborne, b, np.inf)
        low = bb.min(axis=1)
        n_air = airborne.sum(axis=1)
        mean = np.where(airborne, b, 0.0).sum(axis=1) / np.maximum(n_air, 1)
        ax.plot(t / 60, np.where(n_air > 0, low, np.nan), label="lowest airborne")
        ax.plot(t / 60, np.where(n_air > 0, mean, np.nan), label="mean airborne")
    ax.axhline(m.safety.battery_reserve, color="tab:red", ls="--", label="reserve")
    ax.set_xlabel("minutes since mission start")
    ax.set_ylabel("battery (fraction)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    bat_png = _png(fig)

    search_html = ""
    grid = build_prior(m)
    if grid is not None and len(t):
        maps_png, pos_png, search = _search_figures(m, grid, t, x, y, a)
        search_html = f"""<h2>Search</h2><table>{_rows(search)}</table>
<img alt="probability maps" src="data:image/png;base64,{maps_png}">
<img alt="probability of success over time" src="data:image/png;base64,{pos_png}">
"""

    out.write_text(
        f"""<!doctype html><html><head><meta charset="utf-8">
<title>skysweep report: {html.escape(m.name)}</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:2em auto}}
table{{border-collapse:collapse}}
th,td{{padding:2px 10px;text-align:left;border-bottom:1px solid #ddd}}</style>
</head><body>
<h1>{html.escape(m.name)}</h1>
<h2>Flight</h2><table>{_rows(summary)}</table>
<h2>Plan</h2><table>{_rows(plan_metrics)}</table>
<h2>Map</h2><img alt="map of flown tracks" src="data:image/png;base64,{map_png}">
<h2>Battery</h2><img alt="battery over time" src="data:image/png;base64,{bat_png}">
{search_html}</body></html>
""",
        encoding="utf-8",
    )
