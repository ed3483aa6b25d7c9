/* rb201 report, base.js: DOM helpers, colours, numbers as the command line prints them, the packed columns, the data, the tabs. */
// ---- small DOM helpers ------------------------------------------------------------------------------------------
const SVGNS = 'http://www.w3.org/2000/svg';
const $ = (sel, root = document) => root.querySelector(sel);
function put(el, attrs, kids) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of kids.flat(Infinity)) if (c !== null && c !== undefined && c !== false)
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}
const H = (tag, attrs, ...kids) => put(document.createElement(tag), attrs, kids);
const app = (el, ...kids) => put(el, {}, kids); // append, skipping null / false
const fill = (el, ...kids) => { el.replaceChildren(); return put(el, {}, kids); };
const S = (tag, attrs, ...kids) => put(document.createElementNS(SVGNS, tag), attrs, kids);
let uid = 0;
const newId = (p) => `${p}-${++uid}`;

// ---- colours (Okabe-Ito; sequential viridis; diverging ColorBrewer RdBu) -----------------------------------------
const C = { blue: '#0072b2', orange: '#e69f00', sky: '#56b4e9', green: '#009e73', yellow: '#f0e442',
  vermillion: '#d55e00', purple: '#cc79a7', black: '#000000', grey: '#8c8c8c', light: '#e6e6e6' };
const SERIES = [C.blue, C.vermillion, C.green, C.purple, C.orange, C.sky, C.yellow, C.black];
const OP_COLOURS = { skip_connect: '#4d4d4d', nor_conv_1x1: C.blue, nor_conv_3x3: C.vermillion, avg_pool_3x3: C.green };
const OP_DASH = { skip_connect: null, nor_conv_1x1: null, nor_conv_3x3: null, avg_pool_3x3: '6 3' };
const OP_CODE = { none: '-', skip_connect: 'sk', nor_conv_1x1: 'c1', nor_conv_3x3: 'c3', avg_pool_3x3: 'ap' };
const VIRIDIS = ['#440154', '#472c7a', '#3b518b', '#2c718e', '#21908d', '#27ad81', '#5cc863', '#aadc32', '#fde725'];
const RDBU = ['#67001f', '#b2182b', '#d6604d', '#f4a582', '#fddbc7', '#f7f7f7', '#d1e5f0', '#92c5de', '#4393c3',
  '#2166ac', '#053061'];
function ramp(stops, t) {
  t = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(Math.floor(t), stops.length - 2), f = t - i;
  const a = hex(stops[i]), b = hex(stops[i + 1]);
  return `rgb(${a.map((x, k) => Math.round(x + (b[k] - x) * f)).join(',')})`;
}
const hex = (h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16));
function inkOn(fill) {
  const m = fill.match(/\d+/g).map(Number);
  return 0.299 * m[0] + 0.587 * m[1] + 0.114 * m[2] > 140 ? '#000' : '#fff';
}

// ---- numbers as the command line prints them --------------------------------------------------------------------
function gfmt(x, p) { // Python's format(x, '.{p}g')
  if (x === 0) return '0';
  const s = x.toExponential(p - 1);
  const exp = parseInt(s.slice(s.indexOf('e') + 1), 10);
  const strip = (t) => (t.includes('.') ? t.replace(/0+$/, '').replace(/\.$/, '') : t);
  if (exp < -4 || exp >= p) {
    const mant = strip(s.slice(0, s.indexOf('e')));
    return `${mant}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  return strip(x.toFixed(Math.max(p - 1 - exp, 0)));
}
function fmt(v, show) {
  if (!Number.isFinite(v)) return '';
  v *= show.scale;
  if (show.decimals !== null) return v.toFixed(show.decimals);
  if (show.style === 'scientific' && v !== 0 && !(Math.abs(v) >= 1e-2 && Math.abs(v) < 1e4)) {
    const s = v.toExponential(show.digits - 1); // Python's format(v, '.{digits-1}e')
    const e = parseInt(s.slice(s.indexOf('e') + 1), 10);
    return `${s.slice(0, s.indexOf('e'))}e${e < 0 ? '-' : '+'}${String(Math.abs(e)).padStart(2, '0')}`;
  }
  return gfmt(v, show.digits);
}
function withUnit(show) { // a column's label with its unit, once
  if (show.label.includes('(')) return show.label;
  if (show.unit) return `${show.label} (${show.unit})`;
  return show.kind === 'accuracy' ? `${show.label} (fraction)` : show.label;
}
const fmt3 = (v) => (Number.isFinite(v) ? v.toFixed(3) : '–');
const int = (v) => (v === null || v === undefined ? '–' : Number(v).toLocaleString('en-US'));
function duration(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
  return `${(s / 86400).toFixed(1)} days`;
}
const clock = (t) => new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 19) + ' UTC';
const mb = (b) => `${(b / 1e6).toFixed(2)} MB`;

// ---- packed columns -----------------------------------------------------------------------------------------------
const B85 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$%,()*+-;.=>?@^_`{|}~';
const B85_LUT = new Int16Array(128).fill(-1);
for (let i = 0; i < B85.length; i++) B85_LUT[B85.charCodeAt(i)] = i;
function b85decode(text, size) {
  const out = new Uint8Array((text.length / 5) * 4);
  for (let i = 0, o = 0; i < text.length; i += 5, o += 4) {
    let v = 0;
    for (let k = 0; k < 5; k++) {
      const d = B85_LUT[text.charCodeAt(i + k)];
      if (d < 0) throw new Error('damaged report data (a character outside the base-85 alphabet)');
      v = v * 85 + d;
    }
    out[o] = v >>> 24; out[o + 1] = (v >>> 16) & 255; out[o + 2] = (v >>> 8) & 255; out[o + 3] = v & 255;
  }
  return out.subarray(0, size);
}
async function inflate(name) {
  const el = document.getElementById(`rb201-blob-${name}`);
  const bytes = b85decode(el.textContent.trim(), Number(el.dataset.bytes));
  if (typeof DecompressionStream === 'undefined') throw new Error('this browser lacks DecompressionStream (use a browser from 2023 or later)');
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}
function unpack(buf, metas, rows) { // rows: the row count of every column, or one per column
  const qs = [], out = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  for (const [j, m] of metas.entries()) {
    const n = Array.isArray(rows) ? rows[j] : rows;
    const vals = new Float64Array(n);
    if (m.e === 'n') { vals.fill(NaN); out.push(vals); qs.push(null); continue; }
    let p = m.b, miss = null;
    if (m.m) { const nb = (n + 7) >> 3; miss = buf.subarray(p, p + nb); p += nb; }
    if (m.e === 'i') {
      const q = new Float64Array(n), ref = m.d === null || m.d === undefined ? null : qs[m.d], w = m.w;
      const scale = Math.pow(10, m.k);
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let k = w - 1; k >= 0; k--) s = s * 256 + buf[p + k * n + i];
        q[i] = s + m.o + (ref ? ref[i] : 0);
        vals[i] = q[i] / scale;
      }
      qs.push(q);
    } else if (m.e === 'u') {
      const w = m.w;
      for (let i = 0; i < n; i++) {
        let s = 0;
        for (let k = w - 1; k >= 0; k--) s = s * 256 + buf[p + k * n + i];
        vals[i] = m.v[s];
      }
      qs.push(null);
    } else {
      for (let i = 0; i < n; i++) vals[i] = view.getFloat32(p + 4 * i, true);
      for (const [r, x] of m.x) vals[r] = x;
      qs.push(null);
    }
    if (miss) for (let i = 0; i < n; i++) if (miss[i >> 3] & (128 >> (i & 7))) vals[i] = NaN;
    out.push(vals);
  }
  return out;
}

// ---- the data -----------------------------------------------------------------------------------------------------
const DATA = JSON.parse(document.getElementById('rb201-data').textContent);
const SPACE = { n: 0 };
async function loadSpace() {
  const sp = DATA.space;
  const cols = unpack(await inflate('space'), sp.enc, sp.n);
  SPACE.n = sp.n;
  SPACE.ops = cols.slice(0, 6).map((c) => Uint8Array.from(c));
  SPACE.live = Uint8Array.from(cols[6]);
  SPACE.reps = Int32Array.from(cols[7]);
  SPACE.uniq = [];
  SPACE.repPos = new Int32Array(sp.n).fill(-1);
  for (let i = 0; i < sp.n; i++) if (SPACE.reps[i] === i) { SPACE.repPos[i] = SPACE.uniq.length; SPACE.uniq.push(i); }
  SPACE.members = new Map();
  for (let i = 0; i < sp.n; i++) {
    const r = SPACE.reps[i];
    if (!SPACE.members.has(r)) SPACE.members.set(r, []);
    SPACE.members.get(r).push(i);
  }
}
const opsOf = (i) => SPACE.ops.map((col) => DATA.space.ops[col[i]]);
const isDead = (i) => SPACE.live[i] === 0;
function cellString(i) {
  const o = opsOf(i);
  return `|${o[0]}~0|+|${o[1]}~0|${o[2]}~1|+|${o[3]}~0|${o[4]}~1|${o[5]}~2|`;
}
function cellCode(i) {
  const c = opsOf(i).map((o) => OP_CODE[o]);
  return `${c[0]} | ${c[1]} ${c[2]} | ${c[3]} ${c[4]} ${c[5]}`;
}

const DS = []; // per dataset: {meta, cols, byName}
async function loadDataset(k) {
  const d = DS[k];
  if (d.cols) return d;
  const meta = d.meta, n = SPACE.n, nu = SPACE.uniq.length;
  // class-level columns are packed over the representatives, the others over all cells
  const packed = unpack(await inflate(meta.blob), meta.columns.map((c) => c.enc), meta.columns.map((c) => (c.cl ? nu : n)));
  d.cols = meta.columns.map((c, j) => {
    let v = packed[j];
    if (c.cl) {
      v = new Float64Array(n);
      for (let i = 0; i < n; i++) v[i] = packed[j][SPACE.repPos[SPACE.reps[i]]];
    }
    return { ...c, v };
  });
  d.byName = new Map(d.cols.map((c) => [c.name, c]));
  d.valued = new Uint8Array(n);
  for (const c of d.cols) for (let i = 0; i < n; i++) if (c.v[i] === c.v[i]) d.valued[i] = 1;
  return d;
}

// ---- tabs, views and the address bar ------------------------------------------------------------------------------
const STATE = { view: null, ds: 0, cell: null };
const VIEWS = [];
function readHash() {
  const h = new URLSearchParams(location.hash.slice(1));
  if (h.get('view')) STATE.view = h.get('view');
  if (h.get('ds') !== null && DS[Number(h.get('ds'))]) STATE.ds = Number(h.get('ds'));
  STATE.cell = h.get('cell') !== null ? Number(h.get('cell')) : null;
}
function writeHash() {
  const h = new URLSearchParams();
  h.set('view', STATE.view);
  if (DS.length) h.set('ds', String(STATE.ds));
  if (STATE.cell !== null) h.set('cell', String(STATE.cell));
  history.replaceState(null, '', `#${h}`);
}
function buildTabs() {
  const nav = $('#tabs');
  nav.setAttribute('role', 'tablist');
  for (const v of VIEWS) {
    v.tab = H('button', { role: 'tab', id: `tab-${v.id}`, 'aria-controls': `view-${v.id}`, type: 'button',
      onclick: () => show(v.id, true), text: v.title });
    nav.append(v.tab);
  }
  nav.addEventListener('keydown', (e) => {
    const i = VIEWS.findIndex((v) => v.id === STATE.view);
    const j = e.key === 'ArrowRight' ? i + 1 : e.key === 'ArrowLeft' ? i - 1 : e.key === 'Home' ? 0 : e.key === 'End' ? VIEWS.length - 1 : null;
    if (j === null) return;
    e.preventDefault();
    show(VIEWS[(j + VIEWS.length) % VIEWS.length].id, true);
  });
}
function show(id, focus) {
  if (!VIEWS.some((v) => v.id === id)) id = VIEWS[0].id;
  STATE.view = id;
  for (const v of VIEWS) {
    const on = v.id === id;
    v.tab.setAttribute('aria-selected', on ? 'true' : 'false');
    v.tab.tabIndex = on ? 0 : -1;
    v.section.hidden = !on;
    if (on && v.onShow) v.onShow();
  }
  if (focus) VIEWS.find((v) => v.id === id).tab.focus();
  writeHash();
}
function addView(id, title, section, onShow) {
  section.id = `view-${id}`;
  section.classList.add('view');
  section.setAttribute('role', 'tabpanel');
  section.setAttribute('aria-labelledby', `tab-${id}`);
  $('#main').append(section);
  VIEWS.push({ id, title, section, onShow });
}
