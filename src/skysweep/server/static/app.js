/* skysweep live map. Plain JS, no build step, nothing fetched from outside this server.
 *
 * Contract: docs/server.md (REST routes, auth, the SKY1 binary WebSocket frame).
 * Drones are drawn on a 2D <canvas> above MapLibre's WebGL canvas; everything else
 * (mission zones, plan, coverage, detections, grid, background tiles) is a MapLibre layer.
 */
(function () {
  'use strict';

  // ---------------------------------------------------------------- auth, fetch
  const TOKEN = new URLSearchParams(location.search).get('token');

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    if (TOKEN) h.Authorization = 'Bearer ' + TOKEN;
    return h;
  }

  function formatDetail(data) {
    if (data == null) return '';
    if (typeof data === 'string') return data;
    const d = data.detail !== undefined ? data.detail : data;
    if (typeof d === 'string') return d;
    if (Array.isArray(d)) {
      return d.map((e) => {
        if (e && typeof e === 'object') {
          const loc = Array.isArray(e.loc) ? e.loc.filter((x) => x !== 'body').join('.') : '';
          return (loc ? loc + ': ' : '') + (e.msg || JSON.stringify(e));
        }
        return String(e);
      }).join('; ');
    }
    return JSON.stringify(d);
  }

  class ApiError extends Error {
    constructor(status, data, statusText) {
      super(formatDetail(data) || statusText || ('HTTP ' + status));
      this.status = status;
      this.data = data;
    }
  }

  async function api(method, path, body) {
    const opts = {
      method,
      headers: authHeaders(body !== undefined ? { 'Content-Type': 'application/json' } : null),
      credentials: 'same-origin',
      cache: 'no-store',
    };
    if (body !== undefined) opts.body = JSON.stringify(body);
    const r = await fetch(path, opts);
    const text = await r.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = text; }
    }
    if (!r.ok) throw new ApiError(r.status, data, r.statusText);
    return data;
  }

  // ---------------------------------------------------------------- state
  const state = {
    ids: [],            // drone ids, frame order (from hello)
    idIndex: new Map(), // id -> index
    modes: [],          // mode names (hello.modes)
    alertKinds: [],     // alert names, bit k (hello.alerts)
    hello: null,
    n: 0,
    frame: null,        // last frame number
    t_s: null,          // mission time of the last frame
    framePlanVersion: null,
    lon: new Float64Array(0),   // degrees
    lat: new Float64Array(0),   // degrees
    heading: new Float32Array(0), // degrees clockwise from north
    alt: new Float32Array(0),     // metres above launch site
    mode: new Uint8Array(0),      // index into modes
    battery: new Uint8Array(0),   // percent
    alertBits: new Uint8Array(0), // bit k = alertKinds[k]
    summary: null,
    selected: new Set(),
    focus: null,        // drone whose details are shown
    planVersion: null,  // version of the plan on the map
    zonesVersion: null,
    detectionsCount: null,
    coverageVersion: null,
    search: null,         // GET /api/search (false: the mission has no probability map)
    searchVersion: null,
    searchLayer: null,
    connected: false,
    session: null,
    mission: null,
    tiles: null,
    detections: [],
    framesReceived: 0,
  };

  // Derived per-drone arrays used by the renderer (rebuilt per frame).
  let mx = new Float64Array(0), my = new Float64Array(0); // Web Mercator, 0..1
  let hs = new Float32Array(0), hc = new Float32Array(0); // sin/cos heading
  let sx = new Float32Array(0), sy = new Float32Array(0); // last screen positions (CSS px)
  let order = new Uint32Array(0);                          // drone indices grouped by mode
  let groupStart = [];                                     // mode k: order[groupStart[k]..groupStart[k+1])
  let onScreen = new Uint8Array(0);

  // ---------------------------------------------------------------- colours
  const MODE_COLOURS = {
    IDLE: '#9e9e9e', TAKEOFF: '#00acc1', TRANSIT: '#1e88e5', SWEEP: '#43a047',
    RETURN: '#fb8c00', LANDING: '#fdd835', LANDED: '#78909c', LOST: '#212121',
    HOLD: '#8e24aa', PAUSED: '#8e24aa', FAILSAFE: '#d81b60', EMERGENCY: '#d81b60',
  };
  const SPARE_COLOURS = ['#6d4c41', '#00897b', '#5e35b1', '#c0ca33', '#f4511e', '#3949ab'];
  function modeColour(name) {
    if (MODE_COLOURS[name]) return MODE_COLOURS[name];
    let h = 0;
    for (let i = 0; i < name.length; i++) h = (h * 31 + name.charCodeAt(i)) >>> 0;
    return SPARE_COLOURS[h % SPARE_COLOURS.length];
  }

  // ---------------------------------------------------------------- DOM helpers
  const $ = (id) => document.getElementById(id);
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    if (attrs) {
      for (const k in attrs) {
        const v = attrs[k];
        if (v == null || v === false) continue;
        if (k === 'class') e.className = v;
        else if (k === 'text') e.textContent = v;
        else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
        else e.setAttribute(k, v === true ? '' : v);
      }
    }
    for (const c of children) {
      if (c == null || c === false) continue;
      e.append(c instanceof Node ? c : String(c));
    }
    return e;
  }

  function fmtDuration(s) {
    if (s == null || !isFinite(s)) return '—';
    s = Math.max(0, Math.round(s));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
    const mm = String(m).padStart(2, '0'), ss = String(sec).padStart(2, '0');
    return h ? `${h}:${mm}:${ss}` : `${m}:${ss}`;
  }
  function fmtNum(v, digits, unit) {
    if (v == null || v === '' || (typeof v === 'number' && !isFinite(v))) return '—';
    if (typeof v !== 'number') return String(v);
    return v.toFixed(digits) + (unit || '');
  }

  let statusTimer = null;
  function setStatus(text, kind) {
    const s = $('status');
    s.textContent = text;
    s.className = kind || '';
    clearTimeout(statusTimer);
    if (kind === 'ok') statusTimer = setTimeout(() => { if (s.textContent === text) s.className = ''; }, 15000);
  }
  function describeResult(result) {
    if (result == null) return 'done';
    if (typeof result === 'string') return result;
    return JSON.stringify(result);
  }
  /** Show a {request, result} answer: a result the mission refused is shown as an error. */
  function showAnswer(prefix, answer) {
    const result = answer && answer.result !== undefined ? answer.result : answer;
    const text = describeResult(result);
    const refused = /^\s*(refused|rejected|error|failed|denied|not\b)/i.test(text);
    setStatus(`${prefix}: ${text}`, refused ? 'error' : 'ok');
  }
  function errorText(err) {
    if (err instanceof ApiError) {
      const what = {
        401: 'not signed in (401)', 403: 'not allowed for your role (403)',
        409: 'refused (409)', 422: 'bad request (422)',
      }[err.status] || ('error ' + err.status);
      return what + (err.message ? ': ' + err.message : '');
    }
    return 'network error: ' + (err && err.message ? err.message : err);
  }

  // ---------------------------------------------------------------- map setup
  let map = null;
  let mapReady = false;
  let canvas = null, ctx = null;
  let dpr = 1;

  const EMPTY_FC = { type: 'FeatureCollection', features: [] };

  function buildStyle(tiles) {
    const style = {
      version: 8,
      sources: {},
      layers: [{ id: 'bg', type: 'background', paint: { 'background-color': '#f4f2ec' } }],
    };
    const kind = tiles && tiles.kind;
    if (kind === 'raster' || kind === 'vector') {
      const src = {
        type: kind,
        tiles: [location.origin + '/tiles/{z}/{x}/{y}'],
        minzoom: Number.isFinite(tiles.minzoom) ? tiles.minzoom : 0,
        maxzoom: Number.isFinite(tiles.maxzoom) ? tiles.maxzoom : 14,
      };
      if (kind === 'raster') src.tileSize = tiles.tile_size || 256;
      if (Array.isArray(tiles.bounds) && tiles.bounds.length === 4 && tiles.bounds.every(Number.isFinite)) {
        src.bounds = tiles.bounds;
      }
      style.sources.basemap = src;
      if (kind === 'raster') {
        style.layers.push({ id: 'basemap', type: 'raster', source: 'basemap', paint: { 'raster-opacity': 0.9 } });
      } else {
        const vls = Array.isArray(tiles.vector_layers) ? tiles.vector_layers : [];
        vls.forEach((vl, i) => {
          const id = typeof vl === 'string' ? vl : vl && vl.id;
          if (!id) return;
          const watery = /water|ocean|sea|lake|river|stream|hydro|waterway/i.test(id);
          const fill = watery ? '#a9cbe8' : '#dcdcd6';
          const line = watery ? '#6b9fd0' : '#a2a29a';
          style.layers.push({
            id: `vt-fill-${i}`, type: 'fill', source: 'basemap', 'source-layer': id,
            filter: ['==', ['geometry-type'], 'Polygon'],
            paint: { 'fill-color': fill, 'fill-opacity': watery ? 0.8 : 0.45 },
          });
          style.layers.push({
            id: `vt-line-${i}`, type: 'line', source: 'basemap', 'source-layer': id,
            filter: ['in', ['geometry-type'], ['literal', ['LineString', 'Polygon']]],
            paint: { 'line-color': line, 'line-width': watery ? 1 : 0.6 },
          });
        });
      }
    }
    return style;
  }

  function transformRequest(url) {
    // Same-origin requests MapLibre makes (tiles, coverage PNG) also carry the token, in case
    // the cookie is missing; nothing is ever requested elsewhere.
    if (TOKEN && url.startsWith(location.origin + '/')) {
      return { url, headers: { Authorization: 'Bearer ' + TOKEN }, credentials: 'same-origin' };
    }
    return { url };
  }

  function initMap(mission, tiles) {
    let bounds = mission && Array.isArray(mission.bounds) && mission.bounds.length === 4 ? mission.bounds : null;
    if (!bounds && tiles && Array.isArray(tiles.bounds) && tiles.bounds.length === 4) bounds = tiles.bounds;
    const opts = {
      container: 'map',
      style: buildStyle(tiles),
      boxZoom: false,           // shift+drag selects drones
      dragRotate: false,
      pitchWithRotate: false,
      touchPitch: false,
      maxPitch: 0,
      attributionControl: false,
      transformRequest,
      fadeDuration: 0,
    };
    if (bounds) {
      opts.bounds = [[bounds[0], bounds[1]], [bounds[2], bounds[3]]];
      opts.fitBoundsOptions = { padding: 30 };
    } else {
      opts.center = [0, 0];
      opts.zoom = 1;
    }
    map = new maplibregl.Map(opts);
    if (map.touchZoomRotate && map.touchZoomRotate.disableRotation) map.touchZoomRotate.disableRotation();
    if (map.keyboard && map.keyboard.disableRotation) map.keyboard.disableRotation();
    map.addControl(new maplibregl.NavigationControl({ showCompass: false }), 'top-left');
    map.addControl(new maplibregl.ScaleControl({ maxWidth: 140, unit: 'metric' }), 'bottom-left');

    canvas = document.createElement('canvas');
    canvas.id = 'drone-layer';
    map.getCanvasContainer().appendChild(canvas);
    ctx = canvas.getContext('2d');
    resizeOverlay();

    map.on('load', onMapLoad);
    map.on('render', () => redraw());
    map.on('move', () => redraw());
    map.on('resize', () => { resizeOverlay(); redraw(true); });
    map.on('moveend', updateGrid);
    map.on('click', onMapClick);
    map.on('mousemove', onMapMouseMove);
    map.on('dblclick', onMapDblClick);
    map.on('error', (e) => console.warn('map:', e && e.error ? e.error.message : e));
    installBoxSelect();
  }

  function resizeOverlay() {
    if (!canvas || !map) return;
    const c = map.getContainer();
    dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    canvas.style.width = w + 'px';
    canvas.style.height = h + 'px';
    canvas.width = Math.max(1, Math.round(w * dpr));
    canvas.height = Math.max(1, Math.round(h * dpr));
  }

  function onMapLoad() {
    map.addSource('grid', { type: 'geojson', data: EMPTY_FC });
    map.addLayer({ id: 'grid', type: 'line', source: 'grid',
      paint: { 'line-color': '#8d99a6', 'line-width': 0.6, 'line-opacity': 0.55 } });

    map.addSource('mission', { type: 'geojson', data: EMPTY_FC });
    // (no keep-in fill: a full-screen translucent fill costs a lot under software WebGL)
    // the coverage image goes here (below the outlines)
    map.addLayer({ id: 'keep-in-line', type: 'line', source: 'mission',
      filter: ['==', ['get', 'kind'], 'keep_in'],
      paint: { 'line-color': '#1565c0', 'line-width': 2, 'line-dasharray': [4, 2] } });
    map.addLayer({ id: 'keep-out-fill', type: 'fill', source: 'mission',
      filter: ['==', ['get', 'kind'], 'keep_out'],
      paint: { 'fill-color': '#e53935', 'fill-opacity': 0.3 } });
    map.addLayer({ id: 'keep-out-line', type: 'line', source: 'mission',
      filter: ['==', ['get', 'kind'], 'keep_out'],
      paint: { 'line-color': '#c62828', 'line-width': 1.8 } });

    map.addSource('plan', { type: 'geojson', data: EMPTY_FC });
    map.addLayer({ id: 'plan', type: 'line', source: 'plan',
      paint: { 'line-color': '#3949ab', 'line-width': 0.7, 'line-opacity': 0.35 } });
    map.addLayer({ id: 'plan-selected', type: 'line', source: 'plan',
      filter: ['in', ['to-string', ['get', 'drone']], ['literal', []]],
      paint: { 'line-color': '#f9a825', 'line-width': 2.2, 'line-opacity': 0.9 } });

    map.addLayer({ id: 'sites', type: 'circle', source: 'mission',
      filter: ['==', ['get', 'kind'], 'site'],
      paint: { 'circle-radius': 6, 'circle-color': '#ffffff', 'circle-stroke-color': '#1d2329', 'circle-stroke-width': 2.5 } });

    map.addSource('detections', { type: 'geojson', data: EMPTY_FC });
    map.addLayer({ id: 'detections', type: 'circle', source: 'detections',
      paint: {
        'circle-radius': ['match', ['get', 'status'], 'new', 8, 6],
        'circle-color': ['match', ['get', 'status'], 'confirmed', '#2e7d32', 'dismissed', '#9e9e9e', '#ff6d00'],
        'circle-stroke-color': '#ffffff', 'circle-stroke-width': 2,
        'circle-opacity': ['match', ['get', 'status'], 'dismissed', 0.5, 0.95],
      } });

    map.addSource('draw', { type: 'geojson', data: EMPTY_FC });
    map.addLayer({ id: 'draw-fill', type: 'fill', source: 'draw',
      filter: ['==', ['geometry-type'], 'Polygon'],
      paint: { 'fill-color': '#e53935', 'fill-opacity': 0.18 } });
    map.addLayer({ id: 'draw-line', type: 'line', source: 'draw',
      filter: ['==', ['geometry-type'], 'LineString'],
      paint: { 'line-color': '#b71c1c', 'line-width': 2, 'line-dasharray': [2, 1.5] } });
    map.addLayer({ id: 'draw-points', type: 'circle', source: 'draw',
      filter: ['==', ['geometry-type'], 'Point'],
      paint: { 'circle-radius': 4, 'circle-color': '#fff', 'circle-stroke-color': '#b71c1c', 'circle-stroke-width': 2 } });

    map.on('mouseenter', 'detections', () => { if (!drawing) map.getCanvas().style.cursor = 'pointer'; });
    map.on('mouseleave', 'detections', () => { if (!drawing) map.getCanvas().style.cursor = ''; });

    mapReady = true;
    if (state.mission) setMissionData(state.mission);
    if (planData) map.getSource('plan').setData(planData);
    renderDetectionsLayer();
    updateGrid();
    refreshCoverage();
    refreshSearch();
    $('search-layer').addEventListener('change', () => { state.searchVersion = null; refreshSearch(); });
    resizeOverlay();
    redraw(true);
  }

  // ---------------------------------------------------------------- grid
  const NICE = [];
  for (let e = -7; e <= 2; e++) for (const m of [1, 2, 5]) NICE.push(m * Math.pow(10, e));
  function niceStep(span) {
    const target = span / 12;
    for (const s of NICE) if (s >= target) return s;
    return NICE[NICE.length - 1];
  }
  function stepDecimals(step) {
    return Math.max(0, Math.ceil(-Math.log10(step) - 1e-9));
  }
  let grid = null; // {lonStep, latStep, lons:[], lats:[]}
  function updateGrid() {
    if (!mapReady) return;
    const b = map.getBounds();
    let w = b.getWest(), e = b.getEast(), s = b.getSouth(), n = b.getNorth();
    const lonSpan = Math.max(1e-6, e - w), latSpan = Math.max(1e-6, n - s);
    const lonStep = niceStep(lonSpan), latStep = niceStep(latSpan);
    // a margin of one view each way, so panning doesn't show an edge before moveend
    const W = Math.max(-180, w - lonSpan), E = Math.min(180, e + lonSpan);
    const S = Math.max(-85.05, s - latSpan), N = Math.min(85.05, n + latSpan);
    const feats = [];
    const lons = [], lats = [];
    for (let x = Math.ceil(W / lonStep) * lonStep; x <= E + 1e-12; x += lonStep) {
      const v = +x.toFixed(9);
      lons.push(v);
      feats.push({ type: 'Feature', properties: { axis: 'lon', v }, geometry: { type: 'LineString', coordinates: [[v, S], [v, N]] } });
    }
    for (let y = Math.ceil(S / latStep) * latStep; y <= N + 1e-12; y += latStep) {
      const v = +y.toFixed(9);
      lats.push(v);
      feats.push({ type: 'Feature', properties: { axis: 'lat', v }, geometry: { type: 'LineString', coordinates: [[W, v], [E, v]] } });
    }
    grid = { lonStep, latStep, lons, lats };
    map.getSource('grid').setData({ type: 'FeatureCollection', features: feats });
    redraw(true); // the labels of the new lines
  }

  // ---------------------------------------------------------------- mission, plan, coverage, detections
  let planData = null;
  let missionFetch = null;
  function fetchMission() {
    if (missionFetch) { missionFetch.again = true; return missionFetch.p; }
    const job = { again: false };
    job.p = api('GET', '/api/mission').then((m) => {
      state.mission = m;
      if (m && m.name) { $('mission-name').textContent = m.name; document.title = 'skysweep — ' + m.name; }
      if (mapReady) setMissionData(m);
      renderZones();
      return m;
    }).catch((err) => {
      console.warn('mission:', err);
      if (err.status === 401 || err.status === 403) setStatus('mission: ' + errorText(err), 'error');
    }).finally(() => {
      missionFetch = null;
      if (job.again) fetchMission();
    });
    missionFetch = job;
    return job.p;
  }
  function setMissionData(m) {
    const fc = m && m.features && m.features.type === 'FeatureCollection' ? m.features : EMPTY_FC;
    map.getSource('mission').setData(fc);
    redraw(true);
  }

  let planFetching = false;
  let planWanted = null;
  let planRetry = null;
  function fetchPlan(wantVersion) {
    planWanted = wantVersion;
    if (planFetching) return;
    planFetching = true;
    api('GET', '/api/plan').then((p) => {
      planData = p && p.type === 'FeatureCollection' ? p : EMPTY_FC;
      state.planFetchedVersion = p && p.version != null ? p.version : null;
      if (mapReady) map.getSource('plan').setData(planData);
      if (state.planFetchedVersion != null && state.planFetchedVersion !== wantVersion && !planRetry) {
        // the plan answered is older than the frame said: ask once more, a little later
        planRetry = setTimeout(() => { planRetry = null; fetchPlan(state.framePlanVersion); }, 1500);
      }
    }).catch((err) => {
      console.warn('plan:', err);
    }).finally(() => {
      // the frames' plan version we have caught up with (a failed fetch isn't retried until it changes)
      state.planVersion = wantVersion;
      planFetching = false;
      if (planWanted != null && planWanted !== wantVersion) fetchPlan(planWanted);
    });
  }

  let coverageBusy = false;
  async function refreshCoverage() {
    if (coverageBusy || !mapReady) return;
    coverageBusy = true;
    try {
      const c = await api('GET', '/api/coverage');
      if (!c || !Array.isArray(c.corners) || c.corners.length !== 4 || !c.image) return;
      const url = new URL(c.image, location.origin).href;
      const src = map.getSource('coverage');
      if (!src) {
        map.addSource('coverage', { type: 'image', url, coordinates: c.corners });
        map.addLayer({ id: 'coverage', type: 'raster', source: 'coverage',
          paint: { 'raster-opacity': 0.45, 'raster-fade-duration': 0, 'raster-resampling': 'nearest' } }, 'keep-in-line');
      } else if (c.version !== state.coverageVersion) {
        src.updateImage({ url, coordinates: c.corners });
      }
      state.coverageVersion = c.version;
      state.coverageFraction = c.fraction;
    } catch (err) {
      console.warn('coverage:', err);
    } finally {
      coverageBusy = false;
    }
  }

  // The probability map as a heat layer (POC now, POA before, POD so far) and the search's POS
  // over time; missions without a search.prior answer 404 and the panel stays hidden.
  let searchBusy = false;
  async function refreshSearch() {
    if (searchBusy || !mapReady || state.search === false) return;
    searchBusy = true;
    try {
      const s = await api('GET', '/api/search');
      state.search = s;
      $('search-panel').hidden = false;
      $('search-pos').textContent = s.pos == null ? '—' : (100 * s.pos).toFixed(1) + ' %';
      const hist = s.pos_history || [];
      const tMax = hist.length ? Math.max(hist[hist.length - 1][0], 1) : 1;
      $('search-line').setAttribute('points',
        hist.map(([t, p]) => (200 * t / tMax).toFixed(1) + ',' + (36 - 34 * p).toFixed(1)).join(' '));
      const layer = $('search-layer').value;
      const src = map.getSource('search-heat');
      if (layer === 'off') {
        if (map.getLayer('search-heat')) map.setLayoutProperty('search-heat', 'visibility', 'none');
        return;
      }
      const url = new URL(s.images[layer], location.origin).href;
      if (!src) {
        map.addSource('search-heat', { type: 'image', url, coordinates: s.corners });
        map.addLayer({ id: 'search-heat', type: 'raster', source: 'search-heat',
          paint: { 'raster-opacity': 0.55, 'raster-fade-duration': 0, 'raster-resampling': 'nearest' } },
          map.getLayer('coverage') ? 'coverage' : 'keep-in-line');
      } else if (s.version !== state.searchVersion || layer !== state.searchLayer) {
        src.updateImage({ url, coordinates: s.corners });
      }
      map.setLayoutProperty('search-heat', 'visibility', 'visible');
      state.searchVersion = s.version;
      state.searchLayer = layer;
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) state.search = false;
      else console.warn('search:', err);
    } finally {
      searchBusy = false;
    }
  }

  let detectionsBusy = false, detectionsAgain = false;
  async function fetchDetections() {
    if (detectionsBusy) { detectionsAgain = true; return; }
    detectionsBusy = true;
    try {
      const d = await api('GET', '/api/detections');
      state.detections = Array.isArray(d) ? d : [];
      renderDetectionsLayer();
      renderDetectionsList();
      refreshDetectionPopup();
    } catch (err) {
      console.warn('detections:', err);
    } finally {
      detectionsBusy = false;
      if (detectionsAgain) { detectionsAgain = false; fetchDetections(); }
    }
  }
  function renderDetectionsLayer() {
    if (!mapReady) return;
    map.getSource('detections').setData({
      type: 'FeatureCollection',
      features: state.detections.filter((d) => isFinite(d.lon) && isFinite(d.lat)).map((d) => ({
        type: 'Feature',
        properties: { id: String(d.id), status: d.status || 'new', drone: d.drone, confidence: d.confidence },
        geometry: { type: 'Point', coordinates: [d.lon, d.lat] },
      })),
    });
  }
  function detectionButtons(d) {
    const wrap = el('span', { class: 'popup-buttons' });
    wrap.append(
      el('button', { type: 'button', class: 'small det-confirm', 'data-id': String(d.id),
        disabled: d.status === 'confirmed', onclick: (ev) => { ev.stopPropagation(); detectionAction(d.id, 'confirm'); } }, 'Confirm'),
      el('button', { type: 'button', class: 'small det-dismiss', 'data-id': String(d.id),
        disabled: d.status === 'dismissed', onclick: (ev) => { ev.stopPropagation(); detectionAction(d.id, 'dismiss'); } }, 'Dismiss'));
    return wrap;
  }
  function renderDetectionsList() {
    const box = $('detections');
    const list = state.detections.slice().sort((a, b) => {
      const an = a.status === 'new' ? 0 : 1, bn = b.status === 'new' ? 0 : 1;
      return an - bn || (b.t_s || 0) - (a.t_s || 0);
    }).slice(0, 200);
    const newCount = state.detections.filter((d) => d.status === 'new').length;
    $('detection-count').textContent = state.detections.length ? `${state.detections.length} (${newCount} new)` : '';
    box.replaceChildren();
    if (!list.length) { box.append(el('div', { class: 'empty' }, 'none yet')); return; }
    for (const d of list) {
      const conf = typeof d.confidence === 'number' ? Math.round(d.confidence * (d.confidence <= 1 ? 100 : 1)) + '%' : '';
      box.append(el('div', { class: 'detection', 'data-id': String(d.id) },
        el('span', { class: 'what', title: 'Show on map', onclick: () => flyTo(d.lon, d.lat) },
          el('strong', null, '#' + d.id), ' ', d.drone || '', ' ', el('span', { class: 'muted' }, conf + ' T+' + fmtDuration(d.t_s))),
        el('span', { class: 'st ' + (d.status || 'new') }, d.status || 'new'),
        detectionButtons(d)));
    }
  }
  async function detectionAction(id, action) {
    setStatus(`detection ${id}: ${action}…`, 'pending');
    try {
      const r = await api('POST', `/api/detections/${encodeURIComponent(String(id))}/${action}`);
      showAnswer(`detection ${id} ${action}`, r);
    } catch (err) {
      setStatus(`detection ${id} ${action}: ${errorText(err)}`, 'error');
    }
    fetchDetections();
  }
  let detectionPopup = null, detectionPopupId = null;
  function openDetectionPopup(d) {
    if (detectionPopup) detectionPopup.remove();
    detectionPopupId = String(d.id);
    detectionPopup = new maplibregl.Popup({ closeButton: true, maxWidth: '260px' })
      .setLngLat([d.lon, d.lat]).setDOMContent(detectionPopupContent(d)).addTo(map);
    detectionPopup.on('close', () => { detectionPopup = null; detectionPopupId = null; });
  }
  function detectionPopupContent(d) {
    const conf = typeof d.confidence === 'number' ? Math.round(d.confidence * (d.confidence <= 1 ? 100 : 1)) + '%' : '—';
    return el('div', { class: 'det-popup' },
      el('div', null, el('strong', null, 'Detection #' + d.id), ' ', el('span', { class: 'st ' + (d.status || 'new') }, d.status || 'new')),
      el('div', { class: 'small' }, `by ${d.drone || '?'} at T+${fmtDuration(d.t_s)}, confidence ${conf}`),
      el('div', { class: 'small mono' }, `${fmtNum(d.lat, 5)}, ${fmtNum(d.lon, 5)}`),
      detectionButtons(d));
  }
  function refreshDetectionPopup() {
    if (!detectionPopup || detectionPopupId == null) return;
    const d = state.detections.find((x) => String(x.id) === detectionPopupId);
    if (d) detectionPopup.setDOMContent(detectionPopupContent(d));
  }

  // ---------------------------------------------------------------- zones
  function keepOutZones() {
    const m = state.mission;
    const feats = m && m.features && Array.isArray(m.features.features) ? m.features.features : [];
    return feats.filter((f) => f.properties && f.properties.kind === 'keep_out');
  }
  function renderZones() {
    const box = $('zones');
    box.replaceChildren();
    const zones = keepOutZones();
    if (!zones.length) { box.append(el('div', { class: 'empty' }, 'none')); return; }
    for (const f of zones) {
      const name = String(f.properties.name != null ? f.properties.name : '');
      box.append(el('div', { class: 'zone', 'data-name': name },
        el('span', { class: 'swatch', style: 'background:rgba(229,57,53,.45)' }),
        el('span', { class: 'name', title: 'Show on map', onclick: () => fitFeature(f) }, name || '(unnamed)'),
        el('button', { type: 'button', class: 'small zone-remove', title: 'Lift this keep-out zone',
          onclick: () => removeZone(name) }, 'Remove')));
    }
  }
  function fitFeature(f) {
    if (!map) return;
    const b = new maplibregl.LngLatBounds();
    const walk = (c) => { if (typeof c[0] === 'number') b.extend(c); else c.forEach(walk); };
    walk(f.geometry.coordinates);
    if (!b.isEmpty()) map.fitBounds(b, { padding: 80, maxZoom: 16, duration: 600 });
  }
  async function removeZone(name) {
    setStatus(`zone "${name}": removing…`, 'pending');
    try {
      const r = await api('DELETE', '/api/zones/' + encodeURIComponent(name));
      showAnswer(`lift zone "${name}"`, r);
    } catch (err) {
      setStatus(`lift zone "${name}": ${errorText(err)}`, 'error');
    }
    fetchMission();
  }
  function closeRing(ring) {
    const r = ring.map((p) => [Number(p[0]), Number(p[1])]);
    if (r.length && (r[0][0] !== r[r.length - 1][0] || r[0][1] !== r[r.length - 1][1])) r.push([r[0][0], r[0][1]]);
    return r;
  }
  /** POST /api/zones; resolves with the JSON answer (on an HTTP error: the error body plus
   * `http_status`). Also shows the outcome in #status. */
  async function addZone(name, ringLonLat) {
    const body = { name: String(name), geometry: { type: 'Polygon', coordinates: [closeRing(ringLonLat)] } };
    setStatus(`zone "${name}": adding…`, 'pending');
    let out;
    try {
      out = await api('POST', '/api/zones', body);
      showAnswer(`add zone "${name}"`, out);
    } catch (err) {
      setStatus(`add zone "${name}": ${errorText(err)}`, 'error');
      if (!(err instanceof ApiError)) throw err;
      out = Object.assign({}, err.data && typeof err.data === 'object' ? err.data : { detail: err.data }, { http_status: err.status });
    }
    fetchMission();
    return out;
  }
  function defaultZoneName() {
    const names = new Set(keepOutZones().map((f) => String(f.properties.name)));
    let k = keepOutZones().length + 1;
    while (names.has('zone-' + k)) k++;
    return 'zone-' + k;
  }

  // draw mode
  let drawing = false;
  let drawVerts = [];     // [lon, lat]
  let drawCursor = null;  // [lon, lat]
  function setDrawing(on) {
    drawing = on;
    drawVerts = [];
    drawCursor = null;
    $('draw-zone').classList.toggle('active', on);
    $('draw-zone').textContent = on ? 'Drawing… (Esc to cancel)' : 'Draw keep-out zone';
    $('draw-hint').hidden = !on;
    $('map').classList.toggle('drawing', on);
    if (map) {
      if (on) map.doubleClickZoom.disable(); else map.doubleClickZoom.enable();
      map.getCanvas().style.cursor = on ? 'crosshair' : '';
    }
    updateDrawPreview();
  }
  function updateDrawPreview() {
    if (!mapReady) return;
    const feats = [];
    const pts = drawCursor ? drawVerts.concat([drawCursor]) : drawVerts.slice();
    if (drawing && pts.length >= 3) {
      feats.push({ type: 'Feature', properties: {}, geometry: { type: 'Polygon', coordinates: [closeRing(pts)] } });
    }
    if (drawing && pts.length >= 2) {
      feats.push({ type: 'Feature', properties: {}, geometry: { type: 'LineString', coordinates: pts.length >= 3 ? closeRing(pts) : pts } });
    }
    if (drawing) for (const v of drawVerts) feats.push({ type: 'Feature', properties: {}, geometry: { type: 'Point', coordinates: v } });
    map.getSource('draw').setData({ type: 'FeatureCollection', features: feats });
  }
  function addDrawVertex(lngLat, point) {
    if (drawVerts.length) {
      const last = map.project(drawVerts[drawVerts.length - 1]);
      if (Math.hypot(last.x - point.x, last.y - point.y) < 4) return; // the 2nd click of a double-click
    }
    drawVerts.push([lngLat.lng, lngLat.lat]);
    updateDrawPreview();
  }
  async function finishDrawing() {
    const verts = drawVerts.slice();
    if (verts.length < 3) {
      setStatus('a keep-out zone needs at least 3 corners', 'error');
      return;
    }
    setDrawing(false);
    const name = window.prompt('Name of the new keep-out zone', defaultZoneName());
    if (name == null || !name.trim()) { setStatus('zone not added (no name)', ''); return; }
    await addZone(name.trim(), verts);
  }

  // ---------------------------------------------------------------- commands
  const CMDS = ['pause', 'resume', 'home', 'land', 'abort'];
  const SELECTION_CMDS = new Set(['resume', 'home', 'land']);
  function cmdLabel(c) {
    const nm = c[0].toUpperCase() + c.slice(1);
    const k = state.selected.size;
    return SELECTION_CMDS.has(c) && k ? `${nm} (${k} selected)` : `${nm} (all)`;
  }
  function updateCommandLabels() {
    for (const c of CMDS) $('cmd-' + c).textContent = cmdLabel(c);
  }
  async function sendCommand(c) {
    const drones = SELECTION_CMDS.has(c) && state.selected.size ? Array.from(state.selected) : null;
    const target = drones ? `${drones.length} selected drone${drones.length === 1 ? '' : 's'}` : 'all drones';
    if (c === 'abort' && !window.confirm(`Abort the mission for ${target}? Drones will abort their sorties.`)) {
      setStatus('abort cancelled', '');
      return null;
    }
    setStatus(`${c} (${target}): sending…`, 'pending');
    try {
      const r = await api('POST', '/api/commands', { command: c, drones });
      showAnswer(`${c} (${target})`, r);
      return r;
    } catch (err) {
      setStatus(`${c} (${target}): ${errorText(err)}`, 'error');
      return null;
    }
  }

  // ---------------------------------------------------------------- selection, details
  let selVersion = 0;
  function selectionChanged() {
    selVersion++;
    const k = state.selected.size;
    $('selection-count').textContent = k ? `${k} drone${k === 1 ? '' : 's'}` : 'none';
    updateCommandLabels();
    if (mapReady) {
      map.setFilter('plan-selected', ['in', ['to-string', ['get', 'drone']], ['literal', k && k <= 500 ? Array.from(state.selected) : []]]);
    }
    if (k === 1) showDetails(state.selected.values().next().value);
    else if (state.focus && !state.selected.has(state.focus)) hideDetails();
    else if (k === 0) hideDetails();
    markSelectedAlerts();
    redraw(true);
  }
  function select(ids, additive) {
    if (!additive) state.selected.clear();
    for (const id of ids) if (state.idIndex.has(id)) state.selected.add(id);
    selectionChanged();
  }
  function toggle(id) {
    if (state.selected.has(id)) state.selected.delete(id); else state.selected.add(id);
    selectionChanged();
  }
  function clearSelection() {
    if (!state.selected.size && !state.focus) return;
    state.selected.clear();
    selectionChanged();
  }

  let detailsTimer = null, detailsReq = 0;
  function showDetails(id) {
    if (state.focus === id && detailsTimer) return;
    state.focus = id;
    const box = $('drone-details');
    box.hidden = false;
    if (box.dataset.drone !== id) {
      box.dataset.drone = id;
      box.replaceChildren(el('div', { class: 'hd' }, el('strong', null, id), el('span', { class: 'muted' }, 'loading…')));
    }
    loadDetails();
    clearInterval(detailsTimer);
    detailsTimer = setInterval(loadDetails, 2000);
  }
  function hideDetails() {
    state.focus = null;
    clearInterval(detailsTimer);
    detailsTimer = null;
    const box = $('drone-details');
    box.hidden = true;
    delete box.dataset.drone;
    box.replaceChildren();
  }
  async function loadDetails() {
    const id = state.focus;
    if (!id) return;
    const req = ++detailsReq;
    try {
      const d = await api('GET', '/api/fleet/' + encodeURIComponent(id));
      if (req !== detailsReq || state.focus !== id) return;
      renderDetails(id, d);
    } catch (err) {
      if (req !== detailsReq || state.focus !== id) return;
      const box = $('drone-details');
      box.replaceChildren(el('div', { class: 'hd' }, el('strong', null, id)), el('div', { class: 'error' }, errorText(err)));
    }
  }
  function alertNamesOf(v) {
    if (v == null) return [];
    if (Array.isArray(v)) return v.map(String);
    if (typeof v === 'number') return state.alertKinds.filter((_, k) => v & (1 << k));
    if (typeof v === 'string') return v ? [v] : [];
    return [JSON.stringify(v)];
  }
  function fmtFailsafe(f) {
    if (f == null) return '—';
    if (typeof f === 'string') return f;
    if (typeof f === 'object') {
      const action = f.action != null ? String(f.action) : '';
      const causes = Array.isArray(f.causes) ? f.causes.join(', ') : (f.causes != null ? String(f.causes) : '');
      if (action || causes) return action + (causes ? ` (${causes})` : '');
      return JSON.stringify(f);
    }
    return String(f);
  }
  function renderDetails(id, d) {
    const box = $('drone-details');
    const i = state.idIndex.get(id);
    let battery = null;
    if (i != null && i < state.n) battery = state.battery[i];
    else if (typeof d.battery === 'number') battery = d.battery <= 1 ? d.battery * 100 : d.battery;
    const alerts = alertNamesOf(d.alerts);
    const rows = [
      ['Mode', el('span', null, el('span', { class: 'swatch', style: 'background:' + modeColour(String(d.mode)) }), String(d.mode != null ? d.mode : '—'))],
      ['Battery', battery == null ? '—' : Math.round(battery) + ' %'],
      ['Altitude', fmtNum(d.alt_m, 1, ' m')],
      ['Speed', fmtNum(d.speed_mps, 1, ' m/s')],
      ['Heading', fmtNum(d.heading_deg, 0, '°')],
      ['Link age', fmtNum(d.link_age_s, 1, ' s')],
      ['Sortie', d.sortie == null ? '—' : String(d.sortie)],
      ['Failsafe', fmtFailsafe(d.failsafe)],
      ['Alerts', alerts.length ? el('span', { class: 'bad' }, alerts.join(', ')) : 'none'],
      ['Position', `${fmtNum(d.lat, 5)}, ${fmtNum(d.lon, 5)}`],
    ];
    const table = el('table', null, el('tbody', null, ...rows.map(([k, v]) => el('tr', null, el('th', null, k), el('td', null, v)))));
    const evs = Array.isArray(d.events) ? d.events.slice(-20).reverse() : [];
    const evList = el('ul', { class: 'events' }, ...evs.map((e) => {
      let data = '';
      if (e.data != null) {
        if (typeof e.data === 'object' && !Array.isArray(e.data)) {
          data = Object.entries(e.data).map(([k, v]) => {
            let t;
            try { t = typeof v === 'number' ? String(Math.round(v * 100) / 100) : typeof v === 'string' ? v : JSON.stringify(v); } catch (x) { t = String(v); }
            return `${k}: ${t}`;
          }).join(', ');
        } else {
          try { data = typeof e.data === 'string' ? e.data : JSON.stringify(e.data); } catch (x) { data = String(e.data); }
        }
      }
      if (data.length > 140) data = data.slice(0, 140) + '…';
      return el('li', null, el('span', { class: 'mono' }, 'T+' + fmtDuration(e.t_s)), ' ', el('strong', null, String(e.kind)), ' ', el('span', { class: 'muted' }, data));
    }));
    box.replaceChildren(
      el('div', { class: 'hd' }, el('strong', { class: 'drone-id' }, String(d.id != null ? d.id : id)), el('span', { class: 'spacer' }),
        el('button', { type: 'button', class: 'small', onclick: () => flyToDrone(id) }, 'Centre'),
        el('button', { type: 'button', class: 'small', onclick: () => clearSelection() }, 'Close')),
      table,
      el('div', { class: 'small muted' }, `Recent events (${evs.length})`),
      evs.length ? evList : el('div', { class: 'empty small' }, 'none'));
  }

  function flyTo(lon, lat, zoom) {
    if (!map || !isFinite(lon) || !isFinite(lat)) return;
    map.flyTo({ center: [lon, lat], zoom: Math.max(map.getZoom(), zoom || 15), duration: 800 });
  }
  function flyToDrone(id) {
    const i = state.idIndex.get(id);
    if (i == null || i >= state.n) return;
    flyTo(state.lon[i], state.lat[i]);
  }

  // ---------------------------------------------------------------- map interaction
  function nearestDrone(px, py, maxPx) {
    let best = -1, bestD = maxPx * maxPx;
    const n = Math.min(state.n, sx.length);
    for (let i = 0; i < n; i++) {
      const dx = sx[i] - px, dy = sy[i] - py;
      const d = dx * dx + dy * dy;
      if (d <= bestD) { bestD = d; best = i; }
    }
    return best;
  }
  let suppressClick = false;
  function onMapClick(e) {
    if (suppressClick) { suppressClick = false; return; }
    if (drawing) { addDrawVertex(e.lngLat, e.point); return; }
    projectAll();
    const i = nearestDrone(e.point.x, e.point.y, 12);
    if (i >= 0) {
      const id = state.ids[i];
      const additive = e.originalEvent && (e.originalEvent.ctrlKey || e.originalEvent.metaKey || e.originalEvent.shiftKey);
      if (additive) toggle(id);
      else { select([id]); showDetails(id); }
      return;
    }
    const hits = map.queryRenderedFeatures(
      [[e.point.x - 6, e.point.y - 6], [e.point.x + 6, e.point.y + 6]], { layers: ['detections'] });
    if (hits.length) {
      const id = hits[0].properties.id;
      const d = state.detections.find((x) => String(x.id) === String(id));
      if (d) { openDetectionPopup(d); return; }
    }
    clearSelection();
  }
  function onMapMouseMove(e) {
    if (drawing) {
      drawCursor = [e.lngLat.lng, e.lngLat.lat];
      if (drawVerts.length) updateDrawPreview();
      return;
    }
  }
  function onMapDblClick(e) {
    if (!drawing) return;
    e.preventDefault();
    finishDrawing();
  }

  function installBoxSelect() {
    const container = map.getContainer();
    const box = $('selbox');
    let start = null;
    let cur = null;
    const rel = (ev) => {
      const r = container.getBoundingClientRect();
      return { x: ev.clientX - r.left, y: ev.clientY - r.top };
    };
    const onMove = (ev) => {
      cur = rel(ev);
      const x = Math.min(start.x, cur.x), y = Math.min(start.y, cur.y);
      Object.assign(box.style, { left: x + 'px', top: y + 'px', width: Math.abs(cur.x - start.x) + 'px', height: Math.abs(cur.y - start.y) + 'px' });
      box.hidden = false;
      ev.preventDefault();
    };
    const onUp = (ev) => {
      window.removeEventListener('mousemove', onMove, true);
      window.removeEventListener('mouseup', onUp, true);
      box.hidden = true;
      cur = rel(ev);
      const x0 = Math.min(start.x, cur.x), x1 = Math.max(start.x, cur.x);
      const y0 = Math.min(start.y, cur.y), y1 = Math.max(start.y, cur.y);
      start = null;
      suppressClick = true;
      setTimeout(() => { suppressClick = false; }, 0);
      projectAll();
      if (x1 - x0 < 3 && y1 - y0 < 3) {
        const i = nearestDrone(x0, y0, 12);
        if (i >= 0) toggle(state.ids[i]);
        return;
      }
      const ids = [];
      for (let i = 0; i < state.n; i++) {
        if (sx[i] >= x0 && sx[i] <= x1 && sy[i] >= y0 && sy[i] <= y1) ids.push(state.ids[i]);
      }
      select(ids);
      setStatus(`${ids.length} drone${ids.length === 1 ? '' : 's'} selected`, '');
    };
    // Capture phase on the map container: runs before MapLibre's own handlers on the canvas,
    // so a shift+drag never pans the map.
    container.addEventListener('mousedown', (ev) => {
      if (!ev.shiftKey || ev.button !== 0 || drawing) return;
      if (!ev.target.closest || !ev.target.closest('.maplibregl-canvas-container')) return;
      ev.stopPropagation();
      ev.preventDefault();
      start = rel(ev);
      window.addEventListener('mousemove', onMove, true);
      window.addEventListener('mouseup', onUp, true);
    }, true);
    container.addEventListener('click', (ev) => {
      if (suppressClick) { ev.stopPropagation(); suppressClick = false; }
    }, true);
  }

  document.addEventListener('keydown', (ev) => {
    const t = ev.target;
    if (t && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA' || t.isContentEditable)) return;
    if (ev.key === 'Escape') {
      if (drawing) { setDrawing(false); setStatus('drawing cancelled', ''); }
      else clearSelection();
    } else if (ev.key === 'Enter' && drawing) {
      ev.preventDefault();
      finishDrawing();
    }
  });

  // ---------------------------------------------------------------- summary, alerts panels
  let modeRows = null;
  function buildModeRows() {
    const tb = $('mode-counts').tBodies[0];
    tb.replaceChildren();
    modeRows = {};
    for (const m of state.modes) {
      const n = el('td', { class: 'n' }, '0');
      const tr = el('tr', { 'data-mode': m }, el('td', null, el('span', { class: 'swatch', style: 'background:' + modeColour(m) }), m), n);
      tb.append(tr);
      modeRows[m] = { tr, n };
    }
  }
  function badgeClass(v, good, warn) {
    if (v == null) return 'badge';
    const s = String(v).toUpperCase();
    if (good.includes(s)) return 'badge ok';
    if (warn.includes(s)) return 'badge warn';
    return 'badge bad';
  }
  let lastReasons = '';
  function renderSummary(s) {
    $('mission-state').textContent = s.state != null ? String(s.state) : '—';
    $('mission-state').className = badgeClass(s.state, ['RUNNING', 'FLYING', 'ACTIVE'], ['PAUSED', 'PLANNED', 'STARTING', 'IDLE', 'DONE', 'COMPLETE', 'COMPLETED', 'FINISHED']);
    $('mission-health').textContent = s.health != null ? String(s.health) : '—';
    $('mission-health').className = badgeClass(s.health, ['NOMINAL', 'OK', 'GOOD'], ['DEGRADED', 'WARNING', 'CAUTION']);
    const reasons = Array.isArray(s.reasons) ? s.reasons.map(String) : [];
    const rk = reasons.join('\n');
    if (rk !== lastReasons) {
      lastReasons = rk;
      $('health-reasons').replaceChildren(...reasons.map((r) => el('li', null, r)));
    }
    $('mission-time').textContent = fmtDuration(s.t_s);
    const pct = typeof s.progress === 'number' ? s.progress * 100 : null;
    $('progress-pct').textContent = pct == null ? '—' : pct.toFixed(1) + ' %';
    $('progress-bar').style.width = pct == null ? '0' : Math.min(100, Math.max(0, pct)).toFixed(1) + '%';
    $('eta').textContent = s.eta_s == null ? '—' : fmtDuration(s.eta_s);
    $('frame-no').textContent = s.frame != null ? String(s.frame) : '—';
    if (!modeRows) buildModeRows();
    const counts = s.counts || {};
    for (const m in counts) if (!modeRows[m]) { state.modes.includes(m) || state.modes.push(m); buildModeRows(); break; }
    for (const m in modeRows) {
      const v = counts[m] || 0;
      const r = modeRows[m];
      const t = String(v);
      if (r.n.textContent !== t) r.n.textContent = t;
      r.tr.className = v ? '' : 'zero';
    }
  }

  const alertRows = [];
  let lastAlertsKey = null;
  const ALERT_CAP = 50;
  function renderAlerts(alerts) {
    alerts = Array.isArray(alerts) ? alerts.slice(0, ALERT_CAP) : [];
    const key = alerts.map((a) => a.drone + '|' + a.kind + '|' + a.severity + '|' + a.message).join('\n');
    if (key === lastAlertsKey) return;
    lastAlertsKey = key;
    const box = $('alerts');
    $('alert-count').textContent = alerts.length ? String(alerts.length) + (alerts.length >= ALERT_CAP ? '+' : '') : '';
    // reuse row elements: no full rebuild, clicks aren't lost mid-update
    while (alertRows.length < alerts.length) {
      const drone = el('span', { class: 'drone' }), kind = el('span', { class: 'kind' }), msg = el('span', { class: 'message' });
      const row = el('div', { class: 'alert', role: 'button', tabindex: '0' }, drone, kind, msg);
      alertRows.push({ row, drone, kind, msg });
    }
    for (let i = 0; i < alertRows.length; i++) {
      const r = alertRows[i];
      if (i < alerts.length) {
        const a = alerts[i];
        r.row.dataset.drone = String(a.drone);
        r.row.className = 'alert sev-' + (a.severity != null ? a.severity : 0) + (state.selected.has(String(a.drone)) ? ' selected' : '');
        if (r.drone.textContent !== String(a.drone)) r.drone.textContent = String(a.drone);
        if (r.kind.textContent !== String(a.kind)) r.kind.textContent = String(a.kind);
        const m = a.message != null ? String(a.message) : '';
        if (r.msg.textContent !== m) r.msg.textContent = m;
        if (r.row.parentNode !== box) box.append(r.row);
      } else if (r.row.parentNode) {
        r.row.remove();
      }
    }
    let empty = box.querySelector('.empty');
    if (!alerts.length && !empty) box.append(el('div', { class: 'empty' }, 'no alerts'));
    else if (alerts.length && empty) empty.remove();
  }
  function markSelectedAlerts() {
    for (const r of alertRows) {
      if (r.row.parentNode) r.row.classList.toggle('selected', state.selected.has(r.row.dataset.drone));
    }
  }
  function onAlertActivate(ev) {
    const row = ev.target.closest('.alert');
    if (!row || !row.dataset.drone) return;
    const id = row.dataset.drone;
    select([id]);
    showDetails(id);
    flyToDrone(id);
  }
  $('alerts').addEventListener('click', onAlertActivate);
  $('alerts').addEventListener('keydown', (ev) => { if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); onAlertActivate(ev); } });

  // ---------------------------------------------------------------- stream
  let ws = null;
  let backoff = 500;
  let reconnectTimer = null;
  let streamPath = '/api/stream';
  let pendingSummary = null, summaryScheduled = false;

  function setConnected(on, text) {
    state.connected = on;
    const c = $('connection');
    c.className = 'conn ' + (on ? 'connected' : 'disconnected');
    c.textContent = text || (on ? 'live' : 'disconnected');
  }

  function connect() {
    clearTimeout(reconnectTimer);
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = proto + '//' + location.host + streamPath + (TOKEN ? '?token=' + encodeURIComponent(TOKEN) : '');
    let sock;
    try {
      sock = new WebSocket(url);
    } catch (err) {
      scheduleReconnect();
      return;
    }
    ws = sock;
    sock.binaryType = 'arraybuffer';
    setConnected(false, 'connecting…');
    sock.onmessage = (ev) => {
      if (sock !== ws) return;
      if (typeof ev.data === 'string') {
        let msg;
        try { msg = JSON.parse(ev.data); } catch (e) { console.warn('stream: bad JSON'); return; }
        if (msg.type === 'hello') onHello(msg);
        else if (msg.type === 'summary') onSummary(msg);
      } else if (ev.data instanceof ArrayBuffer) {
        onFrame(ev.data);
      }
    };
    sock.onclose = (ev) => {
      if (sock !== ws) return;
      ws = null;
      if (ev.code === 1008 || ev.code === 4401 || ev.code === 4403) {
        setStatus('stream refused (' + ev.code + (ev.reason ? ': ' + ev.reason : '') + ')', 'error');
      }
      scheduleReconnect();
    };
    sock.onerror = () => { /* onclose follows */ };
  }
  function scheduleReconnect() {
    setConnected(false, `disconnected — retry in ${Math.round(backoff / 100) / 10} s`);
    clearTimeout(reconnectTimer);
    reconnectTimer = setTimeout(connect, backoff);
    backoff = Math.min(backoff * 2, 15000);
  }

  function onHello(h) {
    backoff = 500;
    state.hello = h;
    const newIds = Array.isArray(h.ids) ? h.ids.map(String) : [];
    state.ids = newIds;
    state.idIndex = new Map(newIds.map((id, i) => [id, i]));
    state.modes = Array.isArray(h.modes) ? h.modes.map(String) : [];
    state.alertKinds = Array.isArray(h.alerts) ? h.alerts.map(String) : [];
    // drop selected drones that no longer exist
    for (const id of Array.from(state.selected)) if (!state.idIndex.has(id)) state.selected.delete(id);
    modeRows = null;
    buildModeRows();
    $('drone-total').textContent = String(newIds.length);
    state.zonesVersion = null;   // refetch mission/detections on the next summary
    state.detectionsCount = null;
    setConnected(true, 'live');
    selectionChanged();
  }

  function ensureCapacity(n) {
    if (state.lon.length === n) return;
    state.lon = new Float64Array(n); state.lat = new Float64Array(n);
    state.heading = new Float32Array(n); state.alt = new Float32Array(n);
    state.mode = new Uint8Array(n); state.battery = new Uint8Array(n); state.alertBits = new Uint8Array(n);
    mx = new Float64Array(n); my = new Float64Array(n);
    hs = new Float32Array(n); hc = new Float32Array(n);
    sx = new Float32Array(n); sy = new Float32Array(n);
    order = new Uint32Array(n); onScreen = new Uint8Array(n);
  }

  const D2R = Math.PI / 180;
  function onFrame(buf) {
    if (buf.byteLength < 24) return;
    const dv = new DataView(buf);
    if (dv.getUint8(0) !== 0x53 || dv.getUint8(1) !== 0x4b || dv.getUint8(2) !== 0x59 || dv.getUint8(3) !== 0x31) {
      console.warn('stream: not a SKY1 frame');
      return;
    }
    const n = dv.getUint32(16, true);
    if (buf.byteLength < 24 + 15 * n) { console.warn('stream: short frame'); return; }
    ensureCapacity(n);
    state.n = n;
    state.frame = dv.getUint32(4, true);
    state.t_s = dv.getFloat64(8, true);
    const pv = dv.getUint32(20, true);
    state.framePlanVersion = pv;
    state.framesReceived++;
    // int32 at 24 (4-aligned); uint16/int16 at 24+8n and 24+10n (always even); bytes after.
    const lonI = new Int32Array(buf, 24, n);
    const latI = new Int32Array(buf, 24 + 4 * n, n);
    const hdg = new Uint16Array(buf.slice(24 + 8 * n, 24 + 10 * n));
    const alt = new Int16Array(buf.slice(24 + 10 * n, 24 + 12 * n));
    const mode = new Uint8Array(buf, 24 + 12 * n, n);
    const bat = new Uint8Array(buf, 24 + 13 * n, n);
    const al = new Uint8Array(buf, 24 + 14 * n, n);
    const L = state.lon, B = state.lat, H = state.heading, A = state.alt;
    for (let i = 0; i < n; i++) {
      const lo = lonI[i] * 1e-7, la = latI[i] * 1e-7;
      L[i] = lo; B[i] = la;
      mx[i] = (lo + 180) / 360;
      const s = Math.sin(la * D2R);
      my[i] = 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
      const h = hdg[i] * 0.01;
      H[i] = h;
      hs[i] = Math.sin(h * D2R); hc[i] = Math.cos(h * D2R);
      A[i] = alt[i] * 0.1;
    }
    state.mode.set(mode);
    state.battery.set(bat);
    state.alertBits.set(al);
    if (state.ids.length < n) {
      for (let i = state.ids.length; i < n; i++) { state.ids.push('#' + i); state.idIndex.set('#' + i, i); }
    }
    // group drones by mode (counting sort) so each colour is one path
    const nm = Math.max(state.modes.length, 1);
    const counts = new Uint32Array(nm + 1);
    const M = state.mode;
    for (let i = 0; i < n; i++) counts[M[i] < nm ? M[i] : nm]++;
    groupStart = new Array(nm + 2);
    groupStart[0] = 0;
    for (let k = 0; k <= nm; k++) groupStart[k + 1] = groupStart[k] + counts[k];
    const pos = groupStart.slice();
    for (let i = 0; i < n; i++) order[pos[M[i] < nm ? M[i] : nm]++] = i;

    if (state.planVersion !== pv && !planFetching) fetchPlan(pv);
    else if (state.planVersion !== pv) planWanted = pv;
    requestRedraw();
  }

  function onSummary(s) {
    state.summary = s;
    pendingSummary = s;
    if (!summaryScheduled) {
      summaryScheduled = true;
      // panels at most once per animation frame (and at all when the tab is hidden)
      const run = () => { summaryScheduled = false; if (pendingSummary) applySummary(pendingSummary); pendingSummary = null; };
      if (document.hidden) setTimeout(run, 0); else requestAnimationFrame(run);
    }
    if (s.zones_version !== state.zonesVersion) { state.zonesVersion = s.zones_version; fetchMission(); }
    if (s.detections !== state.detectionsCount) { state.detectionsCount = s.detections; fetchDetections(); }
    if (s.plan_version != null && state.planVersion !== s.plan_version && !planFetching && state.framePlanVersion == null) fetchPlan(s.plan_version);
  }
  function applySummary(s) {
    renderSummary(s);
    renderAlerts(s.alerts);
  }

  // ---------------------------------------------------------------- drawing drones
  let redrawQueued = false;
  function requestRedraw() {
    if (redrawQueued) return;
    redrawQueued = true;
    requestAnimationFrame(() => { redrawQueued = false; redraw(true); });
  }

  // screen = (a*mx + b*my + c, d*mx + e*my + f): exact for a flat (unpitched) Web Mercator map
  const aff = { a: 0, b: 0, c: 0, d: 0, e: 0, f: 0, ok: false };
  function computeAffine() {
    aff.ok = false;
    if (!map) return;
    if (map.getPitch && map.getPitch() > 0.01) return;
    const ctr = map.getCenter();
    const cx = (ctr.lng + 180) / 360;
    const s = Math.sin(Math.max(-85.05, Math.min(85.05, ctr.lat)) * D2R);
    const cy = 0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI);
    const d = 1 / (512 * Math.pow(2, map.getZoom())) * 100; // ~100 px
    const toLL = (x, y) => [x * 360 - 180, Math.atan(Math.sinh(Math.PI * (1 - 2 * y))) / D2R];
    const p0 = map.project(toLL(cx, cy));
    const p1 = map.project(toLL(cx + d, cy));
    const p2 = map.project(toLL(cx, cy + d));
    aff.a = (p1.x - p0.x) / d; aff.d = (p1.y - p0.y) / d;
    aff.b = (p2.x - p0.x) / d; aff.e = (p2.y - p0.y) / d;
    aff.c = p0.x - aff.a * cx - aff.b * cy;
    aff.f = p0.y - aff.d * cx - aff.e * cy;
    aff.ok = isFinite(aff.a + aff.b + aff.c + aff.d + aff.e + aff.f);
  }

  function projectAll() {
    if (!map) return;
    computeAffine();
    const n = state.n;
    if (aff.ok) {
      const { a, b, c, d, e, f } = aff;
      for (let i = 0; i < n; i++) {
        const x = mx[i], y = my[i];
        sx[i] = a * x + b * y + c;
        sy[i] = d * x + e * y + f;
      }
    } else {
      for (let i = 0; i < n; i++) {
        const p = map.project([state.lon[i], state.lat[i]]);
        sx[i] = p.x; sy[i] = p.y;
      }
    }
  }

  let lastDrawKey = '';
  function redraw(force) {
    if (!ctx || !map) return 0;
    const t0 = performance.now();
    const c = map.getCenter();
    const key = `${c.lng},${c.lat},${map.getZoom()},${map.getBearing()},${canvas.width},${canvas.height},${state.framesReceived},${selVersion}`;
    if (!force && key === lastDrawKey) return 0;
    lastDrawKey = key;
    drawAll();
    return performance.now() - t0;
  }

  function drawAll() {
    const W = canvas.width / dpr, H = canvas.height / dpr;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, W, H);
    drawGridLabels(W, H);
    drawSiteLabels();
    const n = state.n;
    if (!n) return;
    projectAll();
    const margin = 16;
    let visible = 0;
    for (let i = 0; i < n; i++) {
      const v = sx[i] > -margin && sx[i] < W + margin && sy[i] > -margin && sy[i] < H + margin ? 1 : 0;
      onScreen[i] = v;
      visible += v;
    }
    // bearing: a heading h (from north) is drawn at screen angle h - bearing
    const br = map.getBearing() * D2R;
    const cb = Math.cos(br), sb = Math.sin(br);
    const size = visible > 1500 ? 0.8 : 1; // a little smaller when crowded

    // selection halos (under the arrows)
    const sel = state.selected;
    if (sel.size) {
      ctx.beginPath();
      for (const id of sel) {
        const i = state.idIndex.get(id);
        if (i == null || i >= n || !onScreen[i]) continue;
        ctx.moveTo(sx[i] + 11, sy[i]);
        ctx.arc(sx[i], sy[i], 11, 0, 2 * Math.PI);
      }
      ctx.fillStyle = 'rgba(255,235,59,0.85)';
      ctx.fill();
      ctx.lineWidth = 1.5;
      ctx.strokeStyle = '#212121';
      ctx.stroke();
    }

    // arrows, one path per mode colour
    const tip = 8 * size, back = 5 * size, half = 4.5 * size;
    ctx.lineWidth = 0.8;
    ctx.strokeStyle = 'rgba(20,20,20,0.85)';
    ctx.lineJoin = 'round';
    const nm = groupStart.length - 1;
    for (let k = 0; k < nm; k++) {
      const g0 = groupStart[k], g1 = groupStart[k + 1];
      if (g1 <= g0) continue;
      ctx.beginPath();
      for (let j = g0; j < g1; j++) {
        const i = order[j];
        if (!onScreen[i]) continue;
        // rotate the heading vector by -bearing; screen y grows downwards
        const s0 = hs[i], c0 = hc[i];
        const ux = s0 * cb - c0 * sb;     // sin(h - b)
        const uy = -(c0 * cb + s0 * sb);  // -cos(h - b)
        const x = sx[i], y = sy[i];
        const bx = x - back * ux, by = y - back * uy;
        ctx.moveTo(x + tip * ux, y + tip * uy);
        ctx.lineTo(bx - half * uy, by + half * ux);
        ctx.lineTo(x - 2 * size * ux, y - 2 * size * uy);
        ctx.lineTo(bx + half * uy, by - half * ux);
        ctx.closePath();
      }
      ctx.fillStyle = k < state.modes.length ? modeColour(state.modes[k]) : '#ff00ff';
      ctx.fill();
      ctx.stroke();
    }

    // alert rings
    const AB = state.alertBits;
    ctx.beginPath();
    let rings = 0;
    for (let i = 0; i < n; i++) {
      if (!AB[i] || !onScreen[i]) continue;
      ctx.moveTo(sx[i] + 9, sy[i]);
      ctx.arc(sx[i], sy[i], 9, 0, 2 * Math.PI);
      rings++;
    }
    if (rings) {
      ctx.lineWidth = 2;
      ctx.strokeStyle = '#e53935';
      ctx.stroke();
    }

    // labels when zoomed in enough for them to be readable
    if (visible <= 60 || (sel.size && sel.size <= 20)) {
      ctx.font = '11px system-ui, sans-serif';
      ctx.textBaseline = 'middle';
      ctx.lineWidth = 3;
      ctx.strokeStyle = 'rgba(255,255,255,0.9)';
      ctx.fillStyle = '#1d2329';
      const placed = [];
      const label = (i) => {
        const t = state.ids[i];
        const x = sx[i] + 12, y = sy[i] - 8, w = ctx.measureText(t).width, h = 12;
        for (const r of placed) if (x < r[0] + r[2] && r[0] < x + w && y - h / 2 < r[1] + h / 2 && r[1] - h / 2 < y + h / 2) return;
        placed.push([x, y, w]);
        ctx.strokeText(t, x, y);
        ctx.fillText(t, x, y);
      };
      if (visible <= 60) { for (let i = 0; i < n; i++) if (onScreen[i]) label(i); }
      else {
        let k = 0;
        for (const id of sel) {
          const i = state.idIndex.get(id);
          if (i != null && i < n && onScreen[i]) label(i);
          if (++k >= 60) break;
        }
      }
    }
  }

  function drawGridLabels(W, H) {
    if (!grid || !map) return;
    const dl = stepDecimals(grid.lonStep), dt = stepDecimals(grid.latStep);
    ctx.font = '10px ui-monospace, "DejaVu Sans Mono", monospace';
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(255,255,255,0.85)';
    ctx.fillStyle = '#55606b';
    const c = map.getCenter();
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    for (const v of grid.lons) {
      const p = map.project([v, c.lat]);
      if (p.x < 60 || p.x > W - 30) continue;
      const t = v.toFixed(dl) + '°';
      ctx.strokeText(t, p.x, 3);
      ctx.fillText(t, p.x, 3);
    }
    ctx.textBaseline = 'middle';
    ctx.textAlign = 'right';
    for (const v of grid.lats) {
      const p = map.project([c.lng, v]);
      if (p.y < 20 || p.y > H - 40) continue;
      const t = v.toFixed(dt) + '°';
      ctx.strokeText(t, W - 4, p.y);
      ctx.fillText(t, W - 4, p.y);
    }
    ctx.textAlign = 'start';
  }

  function drawSiteLabels() {
    const m = state.mission;
    const feats = m && m.features && Array.isArray(m.features.features) ? m.features.features : [];
    ctx.font = 'bold 11px system-ui, sans-serif';
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    ctx.lineWidth = 3;
    ctx.strokeStyle = 'rgba(255,255,255,0.9)';
    for (const f of feats) {
      const p = f.properties || {};
      if (!p.name || !f.geometry) continue;
      let at = null;
      if (p.kind === 'site' && f.geometry.type === 'Point') {
        at = map.project(f.geometry.coordinates);
        at.y += 9;
        ctx.fillStyle = '#1d2329';
      } else if (p.kind === 'keep_out' && f.geometry.type === 'Polygon') {
        const ring = f.geometry.coordinates[0];
        let lo = 0, la = 0;
        const k = ring.length > 1 ? ring.length - 1 : ring.length;
        for (let i = 0; i < k; i++) { lo += ring[i][0]; la += ring[i][1]; }
        at = map.project([lo / k, la / k]);
        ctx.fillStyle = '#b71c1c';
      }
      if (!at) continue;
      const t = String(p.name);
      ctx.strokeText(t, at.x, at.y);
      ctx.fillText(t, at.x, at.y);
    }
    ctx.textAlign = 'start';
  }

  function measureRedraw() {
    const t0 = performance.now();
    performance.mark('skysweep-redraw-start');
    if (ctx && map) {
      lastDrawKey = '';
      drawAll();
    }
    performance.mark('skysweep-redraw-end');
    const ms = performance.now() - t0;
    try { performance.measure('skysweep-redraw', 'skysweep-redraw-start', 'skysweep-redraw-end'); } catch (e) { /* ignore */ }
    return ms;
  }

  // ---------------------------------------------------------------- boot
  for (const c of CMDS) $('cmd-' + c).addEventListener('click', () => sendCommand(c));
  $('clear-selection').addEventListener('click', () => clearSelection());
  $('draw-zone').addEventListener('click', () => {
    if (drawing) { setDrawing(false); setStatus('drawing cancelled', ''); return; }
    if (!mapReady) { setStatus('the map is not ready yet', 'error'); return; }
    setDrawing(true);
    setStatus('drawing a keep-out zone: click corners, double-click or Enter to finish', '');
  });
  updateCommandLabels();
  renderAlerts([]);
  renderDetectionsList();

  async function boot() {
    const [session, tiles, mission] = await Promise.all([
      api('GET', '/api/session').catch((err) => { console.warn('session:', err); return err; }),
      api('GET', '/api/tiles').catch((err) => { console.warn('tiles:', err); return null; }),
      api('GET', '/api/mission').catch((err) => { console.warn('mission:', err); return err; }),
    ]);
    if (session instanceof ApiError && session.status === 401) {
      setStatus('Not authorised (401): open this page with the URL printed by `skysweep serve` (…/?token=…).', 'error');
      setConnected(false, 'not signed in');
      return;
    }
    if (session && !(session instanceof Error)) {
      state.session = session;
      if (session.stream) streamPath = session.stream;
      const roles = Array.isArray(session.roles) ? session.roles : [];
      $('session-user').textContent = `${session.user || '?'} · ${roles.join(', ') || 'no roles'}`;
      const op = roles.includes('operator'), safety = roles.includes('safety');
      for (const c of CMDS) {
        $('cmd-' + c).classList.toggle('noperm', !op);
        $('cmd-' + c).title = op ? '' : 'needs the operator role';
      }
      $('draw-zone').classList.toggle('noperm', !safety);
      $('draw-zone').title = safety ? '' : 'needs the safety role';
    }
    state.tiles = tiles;
    if (mission && !(mission instanceof Error)) {
      state.mission = mission;
      if (mission.name) { $('mission-name').textContent = mission.name; document.title = 'skysweep — ' + mission.name; }
      renderZones();
    } else if (mission instanceof ApiError) {
      setStatus('mission: ' + errorText(mission), 'error');
    }
    try {
      initMap(state.mission, tiles || { kind: 'none' });
    } catch (err) {
      console.error(err);
      setStatus('the map could not start: ' + (err && err.message ? err.message : err), 'error');
    }
    connect();
    setInterval(refreshCoverage, 3000);
    setInterval(refreshSearch, 5000);
  }

  window.skysweep = {
    state,
    redraw: () => redraw(true),
    measureRedraw,
    addZone,
    select: (ids) => select(Array.isArray(ids) ? ids.map(String) : [String(ids)]),
    clearSelection,
    sendCommand,
    get map() { return map; },
  };

  boot();
})();
