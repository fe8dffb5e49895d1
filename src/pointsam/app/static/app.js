// pointsam annotate: the page. Draws the (display copy of the) cloud with three.js, picks the clicked point
// on screen, and sends every action to the local server, which owns the session and saves each change.
import * as THREE from './vendor/three/three.module.js';
import { OrbitControls } from './vendor/three/OrbitControls.js';

const $ = (id) => document.getElementById(id);
const MASK_BIT = 1 << 30;
const MASK_COLOR = [255, 212, 0];
const PICK_RADIUS_PX = 10;

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
};
const canvas = $('canvas');
const renderer = new THREE.WebGLRenderer({ canvas, antialias: false, preserveDrawingBuffer: true });
renderer.setPixelRatio(window.devicePixelRatio || 1);
const scene = new THREE.Scene();
scene.background = new THREE.Color(0x1b1d21);
const camera = new THREE.PerspectiveCamera(50, 1, 0.01, 100);
const controls = new OrbitControls(camera, canvas);
controls.addEventListener('change', render);
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
  camera.up.set(0, ui.up === 'z' ? 0 : 1, ui.up === 'z' ? 1 : 0);
  camera.position.set(ui.up === 'z' ? 1.7 * r : 1.5 * r,
    ui.up === 'z' ? -1.7 * r : 1.2 * r, ui.up === 'z' ? 1.2 * r : 1.7 * r);
  controls.target.set(0, 0, 0);
  camera.updateProjectionMatrix();
  controls.update();
  $('up-axis').textContent = `Up: ${ui.up}`;
  if (!ui.state.display.has_color) ui.base = heightColors();
  recolor();
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
  const objectColors = new Map((ui.state.objects || []).map((o) => [o.id, o.color]));
  const selected = ui.selectedObject;
  for (let i = 0; i < view.length; i++) {
    let r = base[3 * i]; let g = base[3 * i + 1]; let b = base[3 * i + 2];
    const v = view[i];
    const id = v & (MASK_BIT - 1);
    if (id && ui.showObjects) {
      const c = objectColors.get(id);
      const a = selected === null || selected === id ? 0.7 : 0.25;
      if (c) { r = r * (1 - a) + c[0] * a; g = g * (1 - a) + c[1] * a; b = b * (1 - a) + c[2] * a; }
    }
    if (v & MASK_BIT) { r = r * 0.25 + MASK_COLOR[0] * 0.75; g = g * 0.25 + MASK_COLOR[1] * 0.75; b = b * 0.25 + MASK_COLOR[2] * 0.75; }
    out[3 * i] = r; out[3 * i + 1] = g; out[3 * i + 2] = b;
  }
  colors.needsUpdate = true;
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
  const project = projector();
  const p = ui.positions;
  const hits = [];
  const r2 = PICK_RADIUS_PX * PICK_RADIUS_PX;
  for (let i = 0; i < p.length / 3; i++) {
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
  return ui.indices[best[0]];
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

// -------------------------------------------------------------------------------------------- state

async function applyState(state) {
  ui.state = state;
  if (state.revision !== ui.revision) {
    ui.view = new Int32Array(await getBinary('/api/view'));
    ui.revision = state.revision;
  }
  if (ui.selectedObject !== null && !state.objects.some((o) => o.id === ui.selectedObject)) closeEdit();
  updateMarkers();
  updatePanel();
  recolor();
  window.pointsam.state = state;
}

function updatePanel() {
  const s = ui.state;
  const d = s.display;
  $('file').textContent = `${s.input}: ${d.total.toLocaleString()} points` +
    (d.count < d.total ? ` (showing ${d.count.toLocaleString()})` : '');
  $('undo').disabled = !s.can_undo;
  $('redo').disabled = !s.can_redo;
  $('clear').disabled = !s.clicks.length;
  $('cycle').disabled = !s.clicks.length;
  $('accept').disabled = !s.mask_points;
  $('cand').textContent = s.selected === null ? '' :
    `candidate ${s.selected + 1} of ${s.candidates.length} (score ${s.candidates[s.selected].score.toFixed(3)})`;
  $('mask-info').textContent = s.clicks.length ?
    `${s.clicks.length} click(s) · mask: ${s.mask_points.toLocaleString()} points` +
    (s.last_decode_ms !== null ? ` · decoded in ${Math.round(s.last_decode_ms)} ms` : '') : 'No clicks yet.';
  $('name').placeholder = `object ${nextId()}`;
  const list = $('objects');
  list.replaceChildren(...s.objects.map(objectRow));
  $('count').textContent = `(${s.objects.length})`;
  $('class-list').replaceChildren(...s.classes.map((c) => Object.assign(document.createElement('option'), { value: c.name })));
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

function act(path, body = {}) {
  return enqueue(async () => {
    const state = await post(path, body);
    await applyState(state);
    showStatus(`saved to ${state.sidecar} at ${new Date().toLocaleTimeString()}`);
    return state;
  });
}

function addClick(index, positive) { return act('/api/click', { index, positive }); }

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
  $('point-size').addEventListener('input', (e) => { cloudMaterial.size = Number(e.target.value); render(); });
  $('show-objects').addEventListener('change', (e) => { ui.showObjects = e.target.checked; recolor(); });
  $('up-axis').addEventListener('click', () => { ui.up = ui.up === 'z' ? 'y' : 'z'; resetView(); });
  $('reset-view').addEventListener('click', resetView);
  for (const id of ['name', 'class']) {
    $(id).addEventListener('keydown', (e) => { if (e.key === 'Enter') { e.preventDefault(); accept(); } });
  }

  let down = null;
  canvas.addEventListener('pointerdown', (e) => { down = { x: e.clientX, y: e.clientY, t: performance.now() }; });
  canvas.addEventListener('pointerup', (e) => {
    if (!down) return;
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
    if (e.target instanceof HTMLInputElement) return;
    if (e.key === 'Enter' && e.target instanceof HTMLButtonElement) return;  // the button's own click
    const ctrl = e.ctrlKey || e.metaKey;
    if (ctrl && (e.key === 'y' || (e.key.toLowerCase() === 'z' && e.shiftKey))) { e.preventDefault(); act('/api/redo'); }
    else if (ctrl && e.key === 'z') { e.preventDefault(); act('/api/undo'); }
    else if (e.key === 'Escape') act('/api/clear');
    else if (e.key === 'c') act('/api/cycle');
    else if (e.key === 'n') setMode(!ui.positive);
    else if (e.key === 'Enter') accept();
  });
  window.addEventListener('resize', resize);
}

// --------------------------------------------------------------------------------------------- start

async function start() {
  window.pointsam = { ready: false, state: null, screenOf, pick, idle: () => queue };
  wire();
  const state = await getJSON('/api/state');
  ui.state = state;
  ui.up = state.display.up;
  document.title = `${state.input} · pointsam annotate`;
  ui.positions = new Float32Array(await getBinary('/api/cloud/positions'));
  ui.indices = new Uint32Array(await getBinary('/api/cloud/indices'));
  ui.base = state.display.has_color ? new Uint8Array(await getBinary('/api/cloud/colors')) : heightColors();
  cloudGeometry.setAttribute('position', new THREE.BufferAttribute(ui.positions, 3));
  cloudGeometry.setAttribute('color', new THREE.BufferAttribute(new Uint8Array(ui.positions.length), 3, true));
  cloudGeometry.computeBoundingSphere();
  scene.add(new THREE.Points(cloudGeometry, cloudMaterial));
  scene.add(markers);
  resize();
  resetView();
  await applyState(state);
  $('loading').hidden = true;
  showStatus(`annotations are saved to ${state.sidecar}`);
  window.pointsam.ready = true;
}

start().catch((err) => { $('loading').textContent = `Could not load: ${err.message}`; showError(err); });
