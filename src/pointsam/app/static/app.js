// pointsam annotate: the page. Draws the (display copy of the) cloud with three.js, picks the clicked point
// on screen, and sends every action to the local server, which owns the session and saves each change.
// Hand tools (lasso, box, brush) compute the selected points here (select.js) and send their indices.
import * as THREE from './vendor/three/three.module.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';
import {
  packIndices, projectPoints, selectBox, selectPolygon, selectSphere, toCloudIndices, visibleMask,
} from './select.js';

const $ = (id) => document.getElementById(id);
const MASK_BIT = 1 << 30;
const MASK_COLOR = [255, 212, 0];
const PICK_RADIUS_PX = 10;
const PREVIEW_COLOR = [0, 220, 255];
const TOOLS = ['click', 'lasso', 'box', 'brush'];
const UNLABELLED_GREY = [110, 110, 110];

// ------------------------------------------------------------------------------------------- server

// The per-launch access token of the URL the server printed (?token=...), sent with every API request.
const TOKEN = new URLSearchParams(window.location.search).get('token') || '';

async function request(path, options = {}) {
  const headers = { ...(options.headers || {}), 'X-PointSAM-Token': TOKEN };
  const response = await fetch(path, { ...options, headers });
  if (!response.ok) {
    let data = {};
    try { data = await response.json(); } catch { data = { error: `HTTP ${response.status}` }; }
    const err = new Error(data.error || `HTTP ${response.status}`);
    err.status = response.status;
    err.data = data;
    throw err;
  }
  return response;
}
const getJSON = async (path) => (await request(path)).json();
const getBinary = async (path) => (await request(path)).arrayBuffer();
const post = async (path, body = {}) => (await request(path, {
  method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
})).json();

// Actions run one after another, in click order.
let queue = Promise.resolve();
let pending = 0;
function enqueue(fn) {
  pending += 1;
  $('busy').hidden = false;
  queue = queue.then(fn).catch(showError).finally(() => {
    pending -= 1;
    if (pending === 0) $('busy').hidden = true;
  });
  return queue;
}

function showStatus(text, isError = false) {
  const el = $('status');
  el.textContent = text;
  el.classList.toggle('error', isError);
}
function showError(err) { showStatus(err.message || String(err), true); }

// -------------------------------------------------------------------------------------------- scene

const ui = {
  state: null, revision: -1, positions: null, base: null, indices: null, view: null,
  positive: true, selectedObject: null, showObjects: true, up: 'z', pendingAccept: null,
  tool: 'click', stroke: null, preview: null, shown: null, onlyUnlabelled: false, hiddenObjects: new Set(),
  colorBy: 'rgb', rgb: null, height: null, intensity: null, visibleOnly: true, brushFraction: 0.03, timings: [],
  warnedUnknown: false, displayVersion: null, minimapImage: null,
};
const canvas = $('canvas');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x1b1d21);
const camera = new THREE.PerspectiveCamera(50, 1, 0.01, 100);
const controls = new OrbitControls(camera, canvas);
controls.addEventListener('change', () => { render(); drawMinimap(); });
const cloudGeometry = new THREE.BufferGeometry();
const cloudMaterial = new THREE.PointsMaterial({ size: 2.5, sizeAttenuation: false, vertexColors: true });
const markerGeometry = new THREE.BufferGeometry();
const markerMaterial = new THREE.PointsMaterial({
  size: 11, sizeAttenuation: false, vertexColors: true, depthTest: false, transparent: true,
});
const markers = new THREE.Points(markerGeometry, markerMaterial);
markers.renderOrder = 1;

function render() { renderer.render(scene, camera); }

function resize() {
  const rect = canvas.parentElement.getBoundingClientRect();
  renderer.setSize(rect.width, rect.height, false);
  camera.aspect = rect.width / Math.max(rect.height, 1);
  camera.updateProjectionMatrix();
  render();
}

function resetView() {
  const r = ui.state.display.radius || 1;
  camera.near = r / 500;
  camera.far = r * 50;
  setCameraUp();
  camera.position.set(ui.up === 'z' ? 1.7 * r : 1.5 * r,
    ui.up === 'z' ? -1.7 * r : 1.2 * r, ui.up === 'z' ? 1.2 * r : 1.7 * r);
  controls.target.set(0, 0, 0);
  camera.updateProjectionMatrix();
  controls.update();
  $('up-axis').textContent = `Up: ${ui.up}`;
  ui.height = heightColors();
  ui.base = baseColors();
  recolor();
}

function baseColors() {
  if (ui.colorBy === 'rgb' && ui.rgb) return ui.rgb;
  if (ui.colorBy === 'intensity' && ui.intensity) return ui.intensity;
  return ui.height;
}

function setCameraUp() {  // OrbitControls keeps the rotation of its up axis from construction: redo it
  camera.up.set(0, ui.up === 'z' ? 0 : 1, ui.up === 'z' ? 1 : 0);
  controls._quat.setFromUnitVectors(camera.up, new THREE.Vector3(0, 1, 0));
  controls._quatInverse.copy(controls._quat).invert();
}

// Camera presets: look down the up axis (top), or from the front (-y for z up) or the side (+x).
function viewFrom(which) {
  const r = 2.6 * (ui.state.display.radius || 1);
  const zUp = ui.up === 'z';
  setCameraUp();
  const at = {
    top: zUp ? [0, -0.001 * r, r] : [0, r, 0.001 * r],
    front: zUp ? [0, -r, 0] : [0, 0, r],
    side: [r, 0, 0],
  }[which];
  camera.position.set(...at);
  controls.target.set(0, 0, 0);
  controls.update();
  render();
}

function heightColors() {  // no colours in the file: shade by height so the shape reads
  const n = ui.positions.length / 3;
  const axis = ui.up === 'z' ? 2 : 1;
  let lo = Infinity; let hi = -Infinity;
  for (let i = 0; i < n; i++) { const h = ui.positions[3 * i + axis]; lo = Math.min(lo, h); hi = Math.max(hi, h); }
  const out = new Uint8Array(3 * n);
  const span = hi - lo || 1;
  for (let i = 0; i < n; i++) {
    const t = (ui.positions[3 * i + axis] - lo) / span;
    out[3 * i] = 70 + 150 * t; out[3 * i + 1] = 110 + 100 * t; out[3 * i + 2] = 170 - 40 * t;
  }
  return out;
}

function recolor() {
  const colors = cloudGeometry.getAttribute('color');
  if (!colors || !ui.view) return;
  const out = colors.array;
  const base = ui.base;
  const view = ui.view;
  const byClass = ui.colorBy === 'class';
  const classColors = new Map((ui.state.classes || []).map((c) => [c.name, c.color]));
  const objectColors = new Map((ui.state.objects || []).map((o) => [o.id, byClass ? classColors.get(o.class) : o.color]));
  const selected = ui.selectedObject;
  const preview = ui.preview;
  for (let i = 0; i < view.length; i++) {
    let r = base[3 * i]; let g = base[3 * i + 1]; let b = base[3 * i + 2];
    const v = view[i];
    const id = v & (MASK_BIT - 1);
    if (byClass && !id) [r, g, b] = UNLABELLED_GREY;
    if (id && (ui.showObjects || byClass)) {
      const c = objectColors.get(id);
      const a = byClass ? 1 : (selected === null || selected === id ? 0.7 : 0.25);
      if (c) { r = r * (1 - a) + c[0] * a; g = g * (1 - a) + c[1] * a; b = b * (1 - a) + c[2] * a; }
    }
    if (v & MASK_BIT) { r = r * 0.25 + MASK_COLOR[0] * 0.75; g = g * 0.25 + MASK_COLOR[1] * 0.75; b = b * 0.25 + MASK_COLOR[2] * 0.75; }
    if (preview && preview[i]) [r, g, b] = PREVIEW_COLOR;
    out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b;
  }
  colors.needsUpdate = true;
  render();
}

// Hide / isolate: draw (and select) only the shown points: unlabelled ones (and the mask) when isolating,
// and never the hidden objects.
function updateShown() {
  if (!ui.view) return;
  if (!ui.onlyUnlabelled && !ui.hiddenObjects.size) {
    ui.shown = null;
    cloudGeometry.setIndex(null);
  } else {
    const n = ui.view.length;
    const shown = new Uint8Array(n);
    const list = [];
    for (let i = 0; i < n; i++) {
      const v = ui.view[i];
      const id = v & (MASK_BIT - 1);
      if ((ui.onlyUnlabelled && id && !(v & MASK_BIT)) || ui.hiddenObjects.has(id)) continue;
      shown[i] = 1;
      list.push(i);
    }
    ui.shown = shown;
    cloudGeometry.setIndex(new THREE.BufferAttribute(Uint32Array.from(list), 1));
  }
  const hidden = ui.shown ? ui.view.length - ui.shown.reduce((a, b) => a + b, 0) : 0;
  $('hidden-info').textContent = hidden ? `${hidden.toLocaleString()} points hidden` : '';
  $('isolate').classList.toggle('active', ui.onlyUnlabelled);
  render();
}

function updateMarkers() {
  const clicks = ui.state.clicks;
  const pos = new Float32Array(3 * clicks.length);
  const col = new Float32Array(3 * clicks.length);
  clicks.forEach((c, k) => {
    pos.set(c.position, 3 * k);
    col.set(c.positive ? [0.18, 0.8, 0.25] : [1.0, 0.25, 0.21], 3 * k);
  });
  markerGeometry.setAttribute('position', new THREE.BufferAttribute(pos, 3));
  markerGeometry.setAttribute('color', new THREE.BufferAttribute(col, 3));
  markerGeometry.computeBoundingSphere();
}

// ------------------------------------------------------------------------------------------ picking

function projector() {
  const m = new THREE.Matrix4().multiplyMatrices(camera.projectionMatrix, camera.matrixWorldInverse).elements;
  const rect = canvas.getBoundingClientRect();
  return (x, y, z) => {
    const w = m[3] * x + m[7] * y + m[11] * z + m[15];
    if (w <= 0) return null;
    const sx = (m[0] * x + m[4] * y + m[8] * z + m[12]) / w;
    const sy = (m[1] * x + m[5] * y + m[9] * z + m[13]) / w;
    return [rect.left + (sx * 0.5 + 0.5) * rect.width, rect.top + (0.5 - sy * 0.5) * rect.height, w];
  };
}

// The clicked point: among displayed points within PICK_RADIUS_PX of the cursor, the front-most surface
// (depth within 1% of the cloud radius of the nearest), and on it the one closest to the cursor.
function pick(clientX, clientY) {
  const i = pickDisplay(clientX, clientY);
  return i === null ? null : ui.indices[i];
}

function pickDisplay(clientX, clientY) {
  const project = projector();
  const p = ui.positions;
  const hits = [];
  const r2 = PICK_RADIUS_PX * PICK_RADIUS_PX;
  for (let i = 0; i < p.length / 3; i++) {
    if (ui.shown && !ui.shown[i]) continue;
    const s = project(p[3 * i], p[3 * i + 1], p[3 * i + 2]);
    if (!s) continue;
    const d2 = (s[0] - clientX) ** 2 + (s[1] - clientY) ** 2;
    if (d2 <= r2) hits.push([i, d2, s[2]]);
  }
  if (!hits.length) return null;
  let front = Infinity;
  for (const h of hits) front = Math.min(front, h[2]);
  const slack = 0.01 * ui.state.display.radius;
  let best = null;
  for (const h of hits) if (h[2] <= front + slack && (best === null || h[1] < best[1])) best = h;
  return best[0];
}

function screenOf(cloudIndex) {  // page coordinates of a displayed point (for tests and tooling)
  let lo = 0; let hi = ui.indices.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (ui.indices[mid] === cloudIndex) {
      const s = projector()(ui.positions[3 * mid], ui.positions[3 * mid + 1], ui.positions[3 * mid + 2]);
      return s && { x: s[0], y: s[1] };
    }
    if (ui.indices[mid] < cloudIndex) lo = mid + 1; else hi = mid - 1;
  }
  return null;
}

// --------------------------------------------------------------------------------------- hand tools

function setTool(tool) {
  ui.tool = tool;
  for (const t of TOOLS) $(`tool-${t}`).classList.toggle('active', t === tool);
  // with a hand tool, the left button draws and the right button rotates
  controls.mouseButtons.LEFT = tool === 'click' ? THREE.MOUSE.ROTATE : -1;
  controls.mouseButtons.RIGHT = tool === 'click' ? THREE.MOUSE.PAN : THREE.MOUSE.ROTATE;
  canvas.style.cursor = tool === 'click' ? 'crosshair' : 'cell';
  $('brush-row').hidden = tool !== 'brush';
  endStroke();
}

function canvasXY(e) {
  const rect = canvas.getBoundingClientRect();
  return [e.clientX - rect.left, e.clientY - rect.top];
}

function viewProjection() {
  return new THREE.Matrix4().multiplyMatrices(camera.projectionMatrix, camera.matrixWorldInverse).elements;
}

function brushRadius() { return ui.brushFraction * (ui.state.display.radius || 1); }

function brushAt(e) {  // the brush: every shown point within the radius of the surface point under the cursor
  const i = pickDisplay(e.clientX, e.clientY);
  if (i === null) return;
  const center = [ui.positions[3 * i], ui.positions[3 * i + 1], ui.positions[3 * i + 2]];
  const r = brushRadius();
  for (const k of selectSphere(ui.positions, center, r, ui.shown)) { ui.stroke.sel.add(k); ui.preview[k] = 1; }
  const right = new THREE.Vector3().setFromMatrixColumn(camera.matrixWorld, 0).multiplyScalar(r);
  const a = projector()(...center);
  const b = projector()(center[0] + right.x, center[1] + right.y, center[2] + right.z);
  ui.stroke.circle = a && b ? [e.clientX, e.clientY, Math.hypot(b[0] - a[0], b[1] - a[1])] : null;
  recolor();
}

function startStroke(e) {
  const [x, y] = canvasXY(e);
  ui.stroke = { tool: ui.tool, points: [[x, y]], end: [x, y], remove: e.shiftKey !== !ui.positive, sel: new Set() };
  if (ui.tool === 'brush') { ui.preview = new Uint8Array(ui.view.length); brushAt(e); }
  drawOverlay();
}

function moveStroke(e) {
  const s = ui.stroke;
  const [x, y] = canvasXY(e);
  if (s.tool === 'lasso') s.points.push([x, y]);
  s.end = [x, y];
  if (s.tool === 'brush') brushAt(e);
  drawOverlay();
}

function endStroke() {
  ui.stroke = null;
  ui.preview = null;
  drawOverlay();
  if (ui.view) recolor();
}

function drawOverlay() {
  const overlay = $('overlay');
  const rect = canvas.getBoundingClientRect();
  if (overlay.width !== Math.round(rect.width) || overlay.height !== Math.round(rect.height)) {
    overlay.width = Math.round(rect.width); overlay.height = Math.round(rect.height);
  }
  const g = overlay.getContext('2d');
  g.clearRect(0, 0, overlay.width, overlay.height);
  const s = ui.stroke;
  if (!s) return;
  g.lineWidth = 1.5;
  g.strokeStyle = s.remove ? '#ff6b5e' : '#00dcff';
  g.fillStyle = s.remove ? 'rgba(255,107,94,0.12)' : 'rgba(0,220,255,0.12)';
  g.beginPath();
  if (s.tool === 'lasso') {
    s.points.forEach(([x, y], k) => (k ? g.lineTo(x, y) : g.moveTo(x, y)));
    g.closePath();
  } else if (s.tool === 'box') {
    g.rect(s.points[0][0], s.points[0][1], s.end[0] - s.points[0][0], s.end[1] - s.points[0][1]);
  } else if (s.circle) {
    g.arc(s.circle[0] - rect.left, s.circle[1] - rect.top, s.circle[2], 0, 2 * Math.PI);
  }
  g.fill();
  g.stroke();
}

// The selection of a finished stroke, as display indices (throws a clear error for a zero-area lasso/box).
function strokeSelection(s) {
  if (s.tool === 'brush') return [...s.sel];
  const rect = canvas.getBoundingClientRect();
  const screen = projectPoints(ui.positions, viewProjection(), rect.width, rect.height);
  const visible = ui.visibleOnly ?
    visibleMask(screen, rect.width, rect.height, Math.max(3, 1.5 * cloudMaterial.size), 0.01 * ui.state.display.radius, ui.shown) : null;
  const opts = { shown: ui.shown, visible };
  if (s.tool === 'lasso') return selectPolygon(screen, s.points, opts);
  return selectBox(screen, s.points[0][0], s.points[0][1], s.end[0], s.end[1], opts);
}

function finishStroke() {
  const s = ui.stroke;
  let display;
  try {
    display = strokeSelection(s);
  } catch (err) {
    endStroke();
    showError(err);
    return;
  }
  endStroke();
  if (!display.length) { showStatus(`the ${s.tool} holds no shown points: nothing changed`, true); return; }
  editPoints(toCloudIndices(display, ui.indices), !s.remove, s.tool);
}

function editPoints(cloudIndices, add, tool) {
  const body = { packed: packIndices(cloudIndices), add, tool, target: ui.selectedObject };
  return act('/api/edit', body, `${tool} ${add ? '+' : '−'}${cloudIndices.length.toLocaleString()}`);
}

function grow(shrink) {
  return act('/api/grow', { shrink, target: ui.selectedObject }, shrink ? 'shrink' : 'grow');
}

function targetText() {
  return ui.selectedObject === null ? 'the current mask' : `object #${ui.selectedObject}`;
}

// -------------------------------------------------------------------------------------------- state

async function applyState(state) {
  ui.state = state;
  if (state.display.version !== ui.displayVersion) await loadDisplay(state);
  if (state.revision !== ui.revision) {
    ui.view = new Int32Array(await getBinary('/api/view'));
    ui.revision = state.revision;
  }
  if (ui.selectedObject !== null && !state.objects.some((o) => o.id === ui.selectedObject)) closeEdit();
  for (const id of [...ui.hiddenObjects]) if (!state.objects.some((o) => o.id === id)) ui.hiddenObjects.delete(id);
  updateMarkers();
  updateShown();
  updatePanel();
  recolor();
  drawMinimap();
  window.pointsam.state = state;
}

function updatePanel() {
  const s = ui.state;
  const d = s.display;
  $('file').textContent = `${s.input}: ${d.total.toLocaleString()} points` +
    (d.count < d.total ? ` (showing ${d.count.toLocaleString()}: ${d.lod ? 'an overview, full detail ' +
      (d.focus ? 'around the work area' : 'after the first click') : 'a subset'})` : '');
  $('model').textContent = s.model ? `model: ${s.model}` : '';
  $('target').textContent = `Tools edit ${targetText()}` +
    (ui.selectedObject === null ? ' (select an object in the list to edit it instead).' : ' (click it in the list again to go back to the mask).');
  $('history').replaceChildren(...s.history.slice(-8).map((h) => Object.assign(document.createElement('li'), { textContent: h })));
  $('grow').disabled = $('shrink').disabled = ui.selectedObject === null && !s.mask_points;
  updatePalette();
  updateDataset();
  if (s.unknown_classes.length && !ui.warnedUnknown) {
    ui.warnedUnknown = true;
    showStatus(`the annotation file uses classes that the class map lacks: ${s.unknown_classes.join(', ')}; ` +
      'they are kept, with new ids (see the palette)', true);
  }
  $('undo').disabled = !s.can_undo;
  $('redo').disabled = !s.can_redo;
  $('clear').disabled = !s.clicks.length;
  $('cycle').disabled = !s.clicks.length;
  $('accept').disabled = !s.mask_points;
  $('cand').textContent = s.selected === null ? '' :
    `candidate ${s.selected + 1} of ${s.candidates.length} (score ${s.candidates[s.selected].score.toFixed(3)})`;
  $('mask-info').textContent = s.clicks.length || s.mask_points ?
    `${s.clicks.length} click(s), ${s.mask_edits} edit(s) · mask: ${s.mask_points.toLocaleString()} points` +
    (s.last_decode_ms !== null ? ` · last decode ${Math.round(s.last_decode_ms)} ms` : '') : 'No clicks yet.';
  $('timings').replaceChildren(...ui.timings.map((t) => Object.assign(document.createElement('li'), { textContent: t })));
  $('name').placeholder = `object ${nextId()}`;
  const list = $('objects');
  list.replaceChildren(...s.objects.map(objectRow));
  $('count').textContent = `(${s.objects.length})`;
  $('class-list').replaceChildren(...s.classes.map((c) => Object.assign(document.createElement('option'), { value: c.name })));
}

function classKeyOf(name) {
  const entry = (ui.state.palette || []).find((c) => c.name === name);
  return entry ? entry.key : '';
}

function updatePalette() {
  const s = ui.state;
  const entries = s.palette || s.classes.map((c) => ({ ...c, key: '', stuff: false }));
  $('mode').textContent = s.mode === 'semantic' ? 'semantic mode: one object per class' : 'instance mode';
  $('palette').replaceChildren(...entries.map((c) => {
    const li = document.createElement('li');
    li.dataset.name = c.name;
    li.classList.toggle('selected', $('class').value === c.name);
    const dot = document.createElement('span');
    dot.className = 'dot';
    dot.style.background = `rgb(${c.color.join(',')})`;
    const label = document.createElement('span');
    label.className = 'label';
    label.textContent = `${c.id} ${c.name}${c.stuff ? ' (stuff)' : ''}`;
    const key = document.createElement('kbd');
    key.textContent = c.key || '';
    li.append(dot, label);
    if (c.key) li.append(key);
    li.addEventListener('click', () => chooseClass(c.name));
    return li;
  }));
}

function chooseClass(name) {
  if (ui.selectedObject !== null) $('edit-class').value = name;
  else $('class').value = name;
  updatePalette();
  showStatus(`class: ${name}`);
}

function updateDataset() {
  const d = ui.state.dataset;
  $('dataset').hidden = !d;
  if (!d) return;
  $('dataset-info').textContent = `${d.folder}: file ${d.current + 1} of ${d.files.length} · ` +
    `${d.files.filter((f) => f.status === 'labelled').length} labelled`;
  $('files').replaceChildren(...d.files.map((f, k) => {
    const li = document.createElement('li');
    li.classList.toggle('selected', k === d.current);
    li.className += ` ${f.status}`;
    const ready = (d.ready || []).includes(k) ? ' · encoded' : '';
    li.textContent = `${f.name} · ${f.status}${ready}${f.error ? `: ${f.error}` : ''}`;
    li.title = f.error || f.status;
    if (f.status !== 'unreadable') li.addEventListener('click', () => openFile(k));
    return li;
  }));
  $('prev-file').disabled = d.current <= 0;
  $('next-file').disabled = d.current >= d.files.length - 1;
  $('mark-done').textContent = d.files[d.current].status === 'labelled' ? 'Mark as in progress' : 'Mark as labelled';
}

function openFile(index) {
  return enqueue(async () => {
    showStatus('opening the file (reading and encoding)…');
    try {
      await post('/api/dataset/open', { index });
    } catch (err) {  // listed as unreadable now, with the reason; the current file stays open
      await applyState(await getJSON('/api/state'));
      throw err;
    }
    window.location.reload();  // a new cloud: load it afresh
  });
}

function nextId() { return Math.max(0, ...ui.state.objects.map((o) => o.id)) + 1; }

function objectRow(o) {
  const li = document.createElement('li');
  li.dataset.id = o.id;
  li.classList.toggle('selected', o.id === ui.selectedObject);
  const dot = document.createElement('span');
  dot.className = 'dot';
  dot.style.background = `rgb(${o.color.join(',')})`;
  const label = document.createElement('span');
  label.className = 'label';
  label.textContent = `#${o.id} ${o.name} · ${o.class}`;
  const count = document.createElement('span');
  count.className = 'small';
  count.textContent = o.num_points.toLocaleString();
  li.append(dot, label, count);
  li.addEventListener('click', () => selectObject(o.id));
  return li;
}

function selectObject(id) {
  ui.selectedObject = ui.selectedObject === id ? null : id;
  const o = ui.state.objects.find((x) => x.id === ui.selectedObject);
  $('edit').hidden = !o;
  if (o) { $('edit-name').value = o.name; $('edit-class').value = o.class; }
  updatePanel();
  recolor();
}

function closeEdit() { ui.selectedObject = null; $('edit').hidden = true; }

// ------------------------------------------------------------------------------------------ actions

function act(path, body = {}, what = null) {
  return enqueue(async () => {
    const t0 = performance.now();
    const state = await post(path, body);
    const ms = Math.round(performance.now() - t0);
    if (what) {
      const model = path === '/api/click' && state.last_decode_ms !== null ? ` (model ${Math.round(state.last_decode_ms)} ms)` : '';
      ui.timings = [`${what}: ${ms} ms${model}`, ...ui.timings].slice(0, 6);
    }
    await applyState(state);
    showStatus(`saved to ${state.sidecar} at ${new Date().toLocaleTimeString()}`);
    return state;
  });
}

function addClick(index, positive) {
  return act('/api/click', { index, positive }, `${positive ? '+' : '−'} click on ${index}`);
}

function accept(overlap = null) {
  const body = { name: $('name').value || null, class: $('class').value || null, overlap };
  return enqueue(async () => {
    try {
      await applyState(await post('/api/accept', body));
    } catch (err) {
      if (err.status === 409 && err.data.overlap) {
        $('overlap-text').textContent = err.message;
        $('overlap').hidden = false;
        return;
      }
      throw err;
    }
    $('overlap').hidden = true;
    $('name').value = '';
    showStatus(`object accepted and saved to ${ui.state.sidecar}`);
  });
}

function exportLabels(overwrite = false) {
  return enqueue(async () => {
    let state;
    try {
      state = await post('/api/export', { overwrite });
    } catch (err) {
      if (err.status === 409 && err.data.exists && !overwrite) {
        if (window.confirm(`${err.message}\n\nReplace them?`)) queueMicrotask(() => exportLabels(true));
        else showStatus('export cancelled: the files exist');
        return;
      }
      throw err;
    }
    await applyState(state);
    $('export-result').textContent = `wrote ${state.exported.join(', ')}`;
    showStatus(`exported ${state.exported.length} files to ${state.out_dir}`);
  });
}

function setMode(positive) {
  ui.positive = positive;
  $('mode-pos').classList.toggle('active', positive);
  $('mode-neg').classList.toggle('active', !positive);
}

function wire() {
  $('mode-pos').addEventListener('click', () => setMode(true));
  $('mode-neg').addEventListener('click', () => setMode(false));
  $('undo').addEventListener('click', () => act('/api/undo'));
  $('redo').addEventListener('click', () => act('/api/redo'));
  $('clear').addEventListener('click', () => act('/api/clear'));
  $('cycle').addEventListener('click', () => act('/api/cycle'));
  $('accept').addEventListener('click', () => accept());
  $('overlap-keep').addEventListener('click', () => accept('keep'));
  $('overlap-replace').addEventListener('click', () => accept('replace'));
  $('overlap-cancel').addEventListener('click', () => { $('overlap').hidden = true; });
  $('edit-save').addEventListener('click', () => act('/api/object/update',
    { id: ui.selectedObject, name: $('edit-name').value, class: $('edit-class').value }));
  $('edit-delete').addEventListener('click', () => {
    const id = ui.selectedObject;
    if (id !== null && window.confirm(`Delete object #${id}? Its points become unlabelled.`)) {
      closeEdit();
      act('/api/object/delete', { id });
    }
  });
  $('edit-close').addEventListener('click', () => { closeEdit(); updatePanel(); recolor(); });
  $('export').addEventListener('click', () => exportLabels());
  $('minimap').addEventListener('click', minimapClick);
  $('point-size').addEventListener('input', (e) => { cloudMaterial.size = Number(e.target.value); render(); });
  $('show-objects').addEventListener('change', (e) => { ui.showObjects = e.target.checked; recolor(); });
  $('up-axis').addEventListener('click', () => { ui.up = ui.up === 'z' ? 'y' : 'z'; resetView(); });
  $('reset-view').addEventListener('click', resetView);
  for (const which of ['top', 'front', 'side']) $(`view-${which}`).addEventListener('click', () => viewFrom(which));
  $('color-by').addEventListener('change', (e) => setColorBy(e.target.value));
  for (const t of TOOLS) $(`tool-${t}`).addEventListener('click', () => setTool(t));
  $('visible-only').addEventListener('change', (e) => { ui.visibleOnly = e.target.checked; });
  $('brush-size').addEventListener('input', (e) => { ui.brushFraction = Number(e.target.value) / 100; showBrushSize(); });
  $('grow').addEventListener('click', () => grow(false));
  $('shrink').addEventListener('click', () => grow(true));
  $('isolate').addEventListener('click', () => { ui.onlyUnlabelled = !ui.onlyUnlabelled; updateShown(); });
  $('hide-object').addEventListener('click', hideSelected);
  $('show-all').addEventListener('click', () => { ui.onlyUnlabelled = false; ui.hiddenObjects.clear(); updateShown(); });
  $('save-classes').addEventListener('click', () => enqueue(async () => {
    const state = await post('/api/classes/save');
    await applyState(state);
    showStatus(`class map saved to ${state.saved_classes}`);
  }));
  $('help-button').addEventListener('click', toggleHelp);
  $('help').addEventListener('click', toggleHelp);
  $('prev-file').addEventListener('click', () => openFile(ui.state.dataset.current - 1));
  $('next-file').addEventListener('click', () => openFile(ui.state.dataset.current + 1));
  $('mark-done').addEventListener('click', () => {
    const d = ui.state.dataset;
    act('/api/dataset/mark', { labelled: d.files[d.current].status !== 'labelled' });
  });
  $('export-all').addEventListener('click', () => enqueue(async () => {
    const state = await post('/api/dataset/export', { overwrite: window.confirm('Replace export files that already exist?') });
    await applyState(state);
    $('export-result').textContent = state.exported_all;
    showStatus(state.exported_all);
  }));
  for (const id of ['name', 'class']) {
    $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); accept(); } });
  }

  let down = null;
  canvas.addEventListener('pointerdown', (e) => {
    if (ui.tool !== 'click' && e.button === 0) {
      canvas.setPointerCapture(e.pointerId);
      startStroke(e);
      return;
    }
    down = { x: e.clientX, y: e.clientY, t: performance.now() };
  });
  canvas.addEventListener('pointermove', (e) => { if (ui.stroke) moveStroke(e); });
  canvas.addEventListener('pointercancel', endStroke);
  canvas.addEventListener('pointerup', (e) => {
    if (ui.stroke && e.button === 0) { finishStroke(); return; }
    if (!down || ui.tool !== 'click') { down = null; return; }
    const moved = Math.hypot(e.clientX - down.x, e.clientY - down.y);
    const quick = performance.now() - down.t < 800;
    down = null;
    if (moved > 4 || !quick || (e.button !== 0 && e.button !== 2)) return;  // a drag rotates/pans
    const index = pick(e.clientX, e.clientY);
    if (index === null) { showStatus('no point under the cursor'); return; }
    addClick(index, e.button === 0 && !e.shiftKey && ui.positive);
  });
  canvas.addEventListener('contextmenu', (e) => e.preventDefault());

  window.addEventListener('keydown', (e) => {
    if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement) return;
    if (e.key === 'Enter' && e.target instanceof HTMLButtonElement) return;  // the button's own click
    const ctrl = e.ctrlKey || e.metaKey;
    const key = e.key.toLowerCase();
    const entry = (ui.state && ui.state.palette || []).find((c) => c.key && c.key === e.key);
    if (ctrl && (key === 'y' || (key === 'z' && e.shiftKey))) { e.preventDefault(); act('/api/redo'); }
    else if (ctrl && key === 'z') { e.preventDefault(); act('/api/undo'); }
    else if (ctrl || e.altKey) return;
    else if (e.key === 'Escape') { if (!$('help').hidden) toggleHelp(); else if (ui.stroke) endStroke(); else act('/api/clear'); }
    else if (e.key === '?') toggleHelp();
    else if (entry) chooseClass(entry.name);
    else if (key === 'c') act('/api/cycle');
    else if (key === 'n') setMode(!ui.positive);
    else if (e.key === 'Enter') accept();
    else if (key === 'v') setTool('click');
    else if (key === 'l') setTool('lasso');
    else if (key === 'b') setTool('box');
    else if (key === 'r') setTool('brush');
    else if (e.key === '[' || e.key === ']') {
      ui.brushFraction = Math.min(0.3, Math.max(0.002, ui.brushFraction * (e.key === ']' ? 1.25 : 0.8)));
      $('brush-size').value = String(100 * ui.brushFraction);
      showBrushSize();
    }
    else if (key === 'g') grow(e.shiftKey);
    else if (key === 'k') grow(true);
    else if (key === 'i') { ui.onlyUnlabelled = !ui.onlyUnlabelled; updateShown(); }
    else if (key === 'h') hideSelected();
    else if (key === 'w') { ui.visibleOnly = !ui.visibleOnly; $('visible-only').checked = ui.visibleOnly; }
    else if (key === 't') viewFrom('top');
    else if (key === 'f') viewFrom('front');
    else if (key === 's') viewFrom('side');
  });
  window.addEventListener('resize', resize);
}

function setColorBy(value) {
  ui.colorBy = value;
  $('color-by').value = value;
  ui.base = baseColors();
  recolor();
}

function showBrushSize() {
  $('brush-size-text').textContent = `${(100 * ui.brushFraction).toFixed(1)}% of the cloud radius (${brushRadius().toPrecision(3)})`;
}

function hideSelected() {
  if (ui.selectedObject === null) { showStatus('select an object in the list to hide it'); return; }
  ui.hiddenObjects.add(ui.selectedObject);
  showStatus(`object #${ui.selectedObject} hidden (Show all brings it back)`);
  closeEdit();
  updatePanel();
  updateShown();
  recolor();
}

function toggleHelp() { $('help').hidden = !$('help').hidden; }

// ------------------------------------------------------------------------------------ display copy

// The drawn points (all of them, or a big scan's level of detail: a voxel overview plus full resolution
// around the work area). Fetched at start and again whenever the server moves the full-resolution area.
async function loadDisplay(state) {
  const d = state.display;
  ui.positions = new Float32Array(await getBinary('/api/cloud/positions'));
  ui.indices = new Uint32Array(await getBinary('/api/cloud/indices'));
  ui.rgb = d.has_color ? new Uint8Array(await getBinary('/api/cloud/colors')) : null;
  ui.intensity = null;
  if (d.has_intensity) {  // grey levels -> RGB triplets
    const grey = new Uint8Array(await getBinary('/api/cloud/intensity'));
    ui.intensity = new Uint8Array(3 * grey.length);
    grey.forEach((v, i) => { ui.intensity[3 * i] = v; ui.intensity[3 * i + 1] = v; ui.intensity[3 * i + 2] = v; });
  }
  ui.height = heightColors();
  ui.base = baseColors();
  ui.displayVersion = d.version;
  ui.revision = null;  // the view (owner + mask per drawn point) follows the drawn points
  ui.shown = null;
  ui.preview = null;
  cloudGeometry.setIndex(null);
  cloudGeometry.setAttribute('position', new THREE.BufferAttribute(ui.positions, 3));
  cloudGeometry.setAttribute('color', new THREE.BufferAttribute(new Uint8Array(ui.positions.length), 3, true));
  cloudGeometry.computeBoundingSphere();
  drawMinimapPoints(d);
}

// The minimap (big scans only): the scan seen from above, the full-resolution area as a circle; a click
// on it draws that place in full and turns the camera towards it.
const MINIMAP_POINTS = 60000;
function minimapAxes() { return ui.up === 'z' ? [0, 1] : [0, 2]; }
function minimapScale(d) { const size = $('minimap').width; return [size, (0.5 * size) / (d.radius || 1)]; }

function drawMinimapPoints(d) {
  const map = $('minimap');
  map.hidden = !d.lod;
  if (!d.lod) return;
  const [size, k] = minimapScale(d);
  const [a, b] = minimapAxes();
  const image = document.createElement('canvas');
  image.width = image.height = size;
  const g = image.getContext('2d');
  g.fillStyle = '#111';
  g.fillRect(0, 0, size, size);
  const n = ui.positions.length / 3;
  const step = Math.max(1, Math.floor(n / MINIMAP_POINTS));
  for (let i = 0; i < n; i += step) {
    const c = ui.base;
    g.fillStyle = `rgb(${c[3 * i]},${c[3 * i + 1]},${c[3 * i + 2]})`;
    g.fillRect(size / 2 + ui.positions[3 * i + a] * k, size / 2 - ui.positions[3 * i + b] * k, 1, 1);
  }
  ui.minimapImage = image;
  drawMinimap();
}

function drawMinimap() {
  const d = ui.state && ui.state.display;
  if (!d || !d.lod || !ui.minimapImage) return;
  const map = $('minimap');
  const g = map.getContext('2d');
  const [size, k] = minimapScale(d);
  const [a, b] = minimapAxes();
  g.drawImage(ui.minimapImage, 0, 0);
  if (d.focus) {
    g.strokeStyle = '#ffd400';
    g.lineWidth = 2;
    g.beginPath();
    g.arc(size / 2 + d.focus.center[a] * k, size / 2 - d.focus.center[b] * k, Math.max(3, d.focus.radius * k), 0, 2 * Math.PI);
    g.stroke();
  }
  const t = controls.target.toArray();
  g.fillStyle = '#9cc3ff';
  g.fillRect(size / 2 + t[a] * k - 3, size / 2 - t[b] * k - 3, 6, 6);
}

function minimapClick(e) {
  const d = ui.state.display;
  const rect = $('minimap').getBoundingClientRect();
  const [size, k] = minimapScale(d);
  const x = ((e.clientX - rect.left) * size) / rect.width;
  const y = ((e.clientY - rect.top) * size) / rect.height;
  const ground = [(x - size / 2) / k, (size / 2 - y) / k];
  return act('/api/focus', { ground }, 'full detail here').then((state) => {
    if (state && state.display.focus) lookAt(state.display.focus.center);
  });
}

function lookAt(center) {  // move the orbit target (and the camera with it) onto `center`
  const shift = new THREE.Vector3(...center).sub(controls.target);
  controls.target.add(shift);
  camera.position.add(shift);
  controls.update();
  render();
  drawMinimap();
}

// --------------------------------------------------------------------------------------------- start

async function start() {
  window.pointsam = {
    ready: false, state: null, screenOf, pick, idle: () => queue, setTool, setColorBy, viewFrom,
    // page coordinates [x, y] of every displayed point, and their cloud indices (for tests and tooling)
    screenPoints: () => {
      const project = projector();
      const out = [];
      for (let i = 0; i < ui.positions.length / 3; i++) {
        const s = project(ui.positions[3 * i], ui.positions[3 * i + 1], ui.positions[3 * i + 2]);
        out.push(s ? [s[0], s[1]] : null);
      }
      return out;
    },
    cloudIndices: () => Array.from(ui.indices),
    setBrush: (fraction) => { ui.brushFraction = fraction; showBrushSize(); },
    setVisibleOnly: (on) => { ui.visibleOnly = on; $('visible-only').checked = on; },
    focusGround: (ground) => act('/api/focus', { ground }, 'full detail here'),
  };
  wire();
  const state = await getJSON('/api/state');
  ui.state = state;
  ui.up = state.display.up;
  document.title = `${state.input} · pointsam annotate`;
  await loadDisplay(state);
  $('color-by').querySelector('option[value=rgb]').disabled = !ui.rgb;
  $('color-by').querySelector('option[value=intensity]').disabled = !ui.intensity;
  if (!ui.rgb) { ui.colorBy = 'height'; $('color-by').value = 'height'; ui.base = baseColors(); }
  scene.add(new THREE.Points(cloudGeometry, cloudMaterial));
  scene.add(markers);
  resize();
  resetView();
  setTool('click');
  showBrushSize();
  await applyState(state);
  $('loading').hidden = true;
  showStatus(`annotations are saved to ${state.sidecar}`);
  window.pointsam.ready = true;
}

start().catch((err) => { $('loading').textContent = `Could not load: ${err.message}`; showError(err); });
