// pointsam annotate: the geometry of the hand tools (lasso, box, brush), free of the page and of three.js
// so that it runs (and is tested) under Node too. Points are the page's display copy: `positions` is a
// flat Float32Array (x, y, z per point); selections are display indices, mapped to cloud indices at the end.

// Area of a polygon [[x, y], ...] in square pixels (shoelace formula; 0 for fewer than 3 vertices).
export function polygonArea(poly) {
  let twice = 0;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    twice += (poly[j][0] + poly[i][0]) * (poly[j][1] - poly[i][1]);
  }
  return Math.abs(twice) / 2;
}

// Even-odd rule: is (x, y) inside the polygon? Points exactly on an edge may go either way.
export function pointInPolygon(x, y, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i];
    const [xj, yj] = poly[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

export const MIN_AREA_PX = 4;  // a lasso or box smaller than this (2x2 pixels) selects nothing on purpose

// Screen position of every point: [x, y, depth] per point in canvas pixels (origin top left) for a
// column-major 4x4 view-projection matrix `m` (three.js `elements`); depth = clip w, NaN behind the camera.
export function projectPoints(positions, m, width, height) {
  const n = positions.length / 3;
  const out = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const x = positions[3 * i]; const y = positions[3 * i + 1]; const z = positions[3 * i + 2];
    const w = m[3] * x + m[7] * y + m[11] * z + m[15];
    if (w <= 0) { out[3 * i] = NaN; out[3 * i + 1] = NaN; out[3 * i + 2] = NaN; continue; }
    out[3 * i] = ((m[0] * x + m[4] * y + m[8] * z + m[12]) / w * 0.5 + 0.5) * width;
    out[3 * i + 1] = (0.5 - (m[1] * x + m[5] * y + m[9] * z + m[13]) / w * 0.5) * height;
    out[3 * i + 2] = w;
  }
  return out;
}

// A simple depth-buffer test: a point is visible when its depth is within `slack` of the nearest shown
// point in its `cell` x `cell` pixel square. `shown` (Uint8Array or null) leaves hidden points out.
export function visibleMask(screen, width, height, cell, slack, shown = null) {
  const n = screen.length / 3;
  const cols = Math.max(1, Math.ceil(width / cell));
  const rows = Math.max(1, Math.ceil(height / cell));
  const nearest = new Float32Array(cols * rows).fill(Infinity);
  const cellOf = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    if (shown && !shown[i]) continue;
    const x = screen[3 * i]; const y = screen[3 * i + 1];
    if (!(x >= 0 && x < width && y >= 0 && y < height)) continue;  // also NaN (behind the camera)
    const c = Math.floor(y / cell) * cols + Math.floor(x / cell);
    cellOf[i] = c;
    if (screen[3 * i + 2] < nearest[c]) nearest[c] = screen[3 * i + 2];
  }
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) if (cellOf[i] >= 0 && screen[3 * i + 2] <= nearest[cellOf[i]] + slack) out[i] = 1;
  return out;
}

function keep(i, screen, opts) {
  if (opts.shown && !opts.shown[i]) return false;
  if (opts.visible && !opts.visible[i]) return false;
  return !Number.isNaN(screen[3 * i]);
}

// Display indices of the points drawn inside the lasso `poly`; `opts.visible` / `opts.shown` (Uint8Array)
// restrict it to visible / shown points. Throws a clear error for a lasso without area.
export function selectPolygon(screen, poly, opts = {}) {
  if (poly.length < 3 || polygonArea(poly) < MIN_AREA_PX) {
    throw new Error('the lasso has zero area: drag around the points to select them');
  }
  let x0 = Infinity; let y0 = Infinity; let x1 = -Infinity; let y1 = -Infinity;
  for (const [x, y] of poly) { x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y); }
  const out = [];
  for (let i = 0; i < screen.length / 3; i++) {
    const x = screen[3 * i]; const y = screen[3 * i + 1];
    if (x < x0 || x > x1 || y < y0 || y > y1 || !keep(i, screen, opts)) continue;
    if (pointInPolygon(x, y, poly)) out.push(i);
  }
  return out;
}

// Display indices of the points drawn inside the box with corners (ax, ay) and (bx, by).
export function selectBox(screen, ax, ay, bx, by, opts = {}) {
  const x0 = Math.min(ax, bx); const x1 = Math.max(ax, bx);
  const y0 = Math.min(ay, by); const y1 = Math.max(ay, by);
  if ((x1 - x0) * (y1 - y0) < MIN_AREA_PX) throw new Error('the box has zero area: drag a rectangle around the points');
  const out = [];
  for (let i = 0; i < screen.length / 3; i++) {
    const x = screen[3 * i]; const y = screen[3 * i + 1];
    if (x >= x0 && x <= x1 && y >= y0 && y <= y1 && keep(i, screen, opts)) out.push(i);
  }
  return out;
}

// Display indices of the (shown) points within `radius` of `center` [x, y, z]: the 3D brush.
export function selectSphere(positions, center, radius, shown = null) {
  const out = [];
  const r2 = radius * radius;
  for (let i = 0; i < positions.length / 3; i++) {
    if (shown && !shown[i]) continue;
    const dx = positions[3 * i] - center[0]; const dy = positions[3 * i + 1] - center[1];
    const dz = positions[3 * i + 2] - center[2];
    if (dx * dx + dy * dy + dz * dz <= r2) out.push(i);
  }
  return out;
}

// Display indices -> sorted, unique cloud indices (`indices` maps display index -> cloud index).
export function toCloudIndices(display, indices) {
  const out = new Uint32Array(display.length);
  display.forEach((d, k) => { out[k] = indices[d]; });
  out.sort();
  let n = 0;
  for (let k = 0; k < out.length; k++) if (k === 0 || out[k] !== out[k - 1]) out[n++] = out[k];
  return out.slice(0, n);
}

// Cloud indices as the server's "packed" field: base64 of little-endian uint32.
export function packIndices(cloudIndices) {
  const bytes = new Uint8Array(4 * cloudIndices.length);
  const view = new DataView(bytes.buffer);
  cloudIndices.forEach((v, k) => view.setUint32(4 * k, v, true));
  let text = '';
  for (let k = 0; k < bytes.length; k += 0x8000) text += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return btoa(text);
}
