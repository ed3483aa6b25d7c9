/* rb201 report: the page's own script (no library). It reads the JSON data and the packed columns embedded in the
 * page (robustbench201/report/encode.py describes the packing), and draws every table and figure as HTML and inline
 * SVG. Nothing is fetched. */
(() => {
  'use strict';

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
    return show.decimals === null ? gfmt(v, show.digits) : v.toFixed(show.decimals);
  }
  function withUnit(show) { // a column's label with its unit, once
    if (show.label.includes('(')) return show.label;
    if (show.unit) return `${show.label} (${show.unit})`;
    return show.kind === 'accuracy' || show.kind === 'fraction' ? `${show.label} (fraction)` : show.label;
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

  // ---- figures ------------------------------------------------------------------------------------------------------
  /* A figure: its title, the SVG with a text alternative (<title> and <desc>), a legend outside the plotting area,
   * and a note that says how many cells it uses. */
  function figure({ title, desc, legend, note, cls }, ...bodies) {
    const fid = newId('fig');
    for (const b of bodies) {
      if (!(b instanceof Element)) continue;
      for (const svg of b.tagName === 'svg' ? [b] : b.querySelectorAll('svg')) { // every drawing gets its text
        const tid = newId('t'), did = newId('d');
        svg.setAttribute('role', 'img');
        svg.setAttribute('aria-labelledby', `${tid} ${did}`);
        svg.prepend(S('title', { id: tid, text: svg.dataset.title ? `${title}: ${svg.dataset.title}` : title }),
          S('desc', { id: did, text: svg.dataset.alt || desc || title }));
      }
    }
    return H('figure', { class: `fig ${cls || ''}`, id: fid },
      H('figcaption', {}, H('h4', { text: title })),
      ...bodies,
      legend ? H('div', { class: 'legend' }, legend) : null,
      note ? H('p', { class: 'note', text: note }) : null);
  }
  const swatch = (colour, text, opacity) => H('span', {}, H('span', { class: 'sw', style: `background:${colour};opacity:${opacity || 1}` }), text);
  const lineKey = (colour, text, dash) => H('span', {}, H('span', { class: 'ln', style: `border-top-color:${colour};${dash ? 'border-top-style:dashed' : ''}` }), text);

  function niceTicks(lo, hi, n) {
    if (!(hi > lo)) return [lo];
    const step0 = (hi - lo) / Math.max(n, 1), mag = Math.pow(10, Math.floor(Math.log10(step0)));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= step0) || 10 * mag;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }
  const tickText = (t, step) => (Math.abs(t) >= 1e4 || (Math.abs(t) < 1e-3 && t !== 0) ? gfmt(t, 3) : String(Number(t.toFixed(Math.max(0, -Math.floor(Math.log10(step || 1)) + 1)))));

  /* Axes of a plot area: x from x0 to x1 (pixels) and y from y0 (bottom) to y1 (top). */
  function axes(svg, { x0, x1, y0, y1, xticks, yticks, xlabel, ylabel, grid }) {
    const g = S('g', { class: 'axes', 'font-size': 11, fill: '#333' });
    for (const [py, label] of yticks) {
      if (grid) g.append(S('line', { x1: x0, x2: x1, y1: py, y2: py, stroke: '#e3e3e3' }));
      g.append(S('line', { x1: x0 - 4, x2: x0, y1: py, y2: py, stroke: '#555' }),
        S('text', { x: x0 - 6, y: py + 4, 'text-anchor': 'end', text: label }));
    }
    for (const [px, label, rotate] of xticks) {
      g.append(S('line', { x1: px, x2: px, y1: y0, y2: y0 + 4, stroke: '#555' }));
      g.append(rotate
        ? S('text', { x: px, y: y0 + 14, 'text-anchor': 'end', transform: `rotate(-40 ${px} ${y0 + 14})`, text: label })
        : S('text', { x: px, y: y0 + 16, 'text-anchor': 'middle', text: label }));
    }
    g.append(S('line', { x1: x0, x2: x1, y1: y0, y2: y0, stroke: '#555' }), S('line', { x1: x0, x2: x0, y1: y0, y2: y1, stroke: '#555' }));
    if (xlabel) g.append(S('text', { x: (x0 + x1) / 2, y: y0 + 34, 'text-anchor': 'middle', 'font-size': 11.5, text: xlabel }));
    if (ylabel) g.append(S('text', { x: 12, y: (y0 + y1) / 2, 'text-anchor': 'middle', 'font-size': 11.5, transform: `rotate(-90 12 ${(y0 + y1) / 2})`, text: ylabel }));
    svg.append(g);
  }
  const svgBox = (w, h) => S('svg', { viewBox: `0 0 ${w} ${h}`, width: w, height: h });
  const path = (pts) => pts.map(([x, y], i) => `${i ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`).join('');
  function bandPath(xs, lo, hi) {
    const top = [], bot = [];
    xs.forEach((x, i) => { if (lo[i] !== null && hi[i] !== null) { top.push([x, hi[i]]); bot.unshift([x, lo[i]]); } });
    return top.length ? `${path(top.concat(bot))}Z` : '';
  }

  /* Robust accuracy against epsilon of one attack: quantile bands over the classes, the median, optionally a cell. */
  function epsPanel(p, cell) {
    const m = p.eps.length, W = Math.max(290, 56 + 30 * m), Hh = 228, l = 46, r = 10, t = 24, b = 44;
    const svg = svgBox(W, Hh);
    const xw = (W - l - r) / m;
    const X = (k) => l + (k + 0.5) * xw, Y = (v) => Hh - b - v * (Hh - b - t);
    axes(svg, { x0: l, x1: W - r, y0: Hh - b, y1: t, grid: true,
      xticks: p.eps_labels.map((e, k) => [X(k), e]), yticks: [0, 0.25, 0.5, 0.75, 1].map((v) => [Y(v), v.toFixed(2)]),
      xlabel: 'ε (units of 1/255; grid points evenly spaced)', ylabel: 'accuracy (fraction)' });
    const xs = p.eps.map((_, k) => X(k));
    const sc = (arr) => arr.map((v) => (v === null ? null : Y(v)));
    svg.append(S('path', { d: bandPath(xs, sc(p.p10), sc(p.p90)), fill: C.sky, 'fill-opacity': 0.35 }),
      S('path', { d: bandPath(xs, sc(p.p25), sc(p.p75)), fill: C.blue, 'fill-opacity': 0.35 }),
      S('path', { d: path(xs.map((x, k) => [x, Y(p.p50[k] ?? NaN)]).filter((q) => Number.isFinite(q[1]))), fill: 'none', stroke: C.black, 'stroke-width': 1.8 }));
    if (cell) {
      const pts = xs.map((x, k) => [x, Y(cell[k])]).filter((q) => Number.isFinite(q[1]));
      svg.append(S('path', { d: path(pts), fill: 'none', stroke: C.vermillion, 'stroke-width': 2 }));
      for (const [x, y] of pts) svg.append(S('circle', { cx: x, cy: y, r: 3, fill: C.vermillion }));
    }
    svg.append(S('text', { x: l, y: 13, 'font-size': 12, 'font-weight': 600, text: `${p.title}${p.semantics === 'cumulative' ? ' (cumulative)' : ''}` }));
    return svg;
  }
  const nRange = (ns) => { const lo = Math.min(...ns), hi = Math.max(...ns); return lo === hi ? int(lo) : `${int(lo)}–${int(hi)}`; };
  function epsFigure(panels, cellOf, title) {
    const svgs = panels.map((p) => {
      const svg = epsPanel(p, cellOf ? cellOf(p) : null);
      svg.dataset.title = `${p.title}${p.semantics === 'cumulative' ? ' (cumulative)' : ''}`;
      svg.dataset.alt = `${svg.dataset.title}: median accuracy ${p.p50.map((v, k) => `${fmt3(v ?? NaN)} at ε ${p.eps_labels[k]}`).join(', ')}${cellOf ? `; this cell ${cellOf(p).map((v, k) => `${fmt3(v)} at ε ${p.eps_labels[k]}`).join(', ')}` : ''}.`;
      return svg;
    });
    const wrap = H('div', { class: 'panels' }, svgs);
    const f = figure({
      title,
      desc: `Robust accuracy against the attack radius epsilon for ${panels.map((p) => p.title).join(', ')}: per epsilon the median over isomorphism classes, with bands for the middle 50% and 80% of classes${cellOf ? ', and the curve of this cell' : ''}.`,
      legend: [swatch(C.sky, '10–90% of classes', 0.35), swatch(C.blue, '25–75% of classes', 0.5), lineKey(C.black, 'median class'),
        cellOf ? lineKey(C.vermillion, 'this cell') : null],
      note: `Uses ${nRange(panels.flatMap((p) => p.n))} classes per ε (one network per isomorphism class). Per-epsilon semantics: each ε attacked on its own (the published protocol); cumulative: a point broken at a smaller ε stays broken.`,
    }, wrap);
    return f;
  }

  function colourBar(stops, lo, hi, label, ticks) {
    const W = 70, Hh = 200, x = 8, w = 16, t = 10, b = 10;
    const svg = svgBox(W, Hh);
    const gid = newId('grad');
    const grad = S('linearGradient', { id: gid, x1: 0, y1: 1, x2: 0, y2: 0 });
    stops.forEach((c, i) => grad.append(S('stop', { offset: `${(100 * i) / (stops.length - 1)}%`, 'stop-color': c })));
    svg.append(S('defs', {}, grad), S('rect', { x, y: t, width: w, height: Hh - t - b, fill: `url(#${gid})`, stroke: '#777' }));
    for (const v of ticks) {
      const y = Hh - b - ((v - lo) / (hi - lo || 1)) * (Hh - t - b);
      svg.append(S('line', { x1: x + w, x2: x + w + 4, y1: y, y2: y, stroke: '#555' }),
        S('text', { x: x + w + 6, y: y + 4, 'font-size': 10.5, text: Number(v.toFixed(2)) }));
    }
    svg.dataset.title = 'colour scale';
    svg.dataset.alt = label;
    return svg;
  }

  function corruptionFigure(g, ds) {
    const cw = 52, ch = 22, l = 130, t = 40;
    const W = l + cw * g.severities.length + 10, Hh = t + ch * g.keys.length + 8;
    const svg = svgBox(W, Hh);
    const all = g.mean.flat().filter((v) => v !== null);
    const lo = Math.min(...all), hi = Math.max(...all);
    g.keys.forEach((k, i) => {
      svg.append(S('text', { x: l - 6, y: t + i * ch + ch / 2 + 4, 'text-anchor': 'end', 'font-size': 11, text: k }));
      g.severities.forEach((s, j) => {
        const v = g.mean[i][j];
        const fill = v === null ? '#fff' : ramp(VIRIDIS, (v - lo) / (hi - lo || 1));
        svg.append(S('rect', { x: l + j * cw, y: t + i * ch, width: cw - 1, height: ch - 1, fill, stroke: v === null ? '#bbb' : 'none' },
          S('title', { text: `${k}, severity ${s}: mean accuracy ${fmt3(v)} over ${int(g.n[i][j])} classes` })));
        if (v !== null) svg.append(S('text', { x: l + j * cw + cw / 2, y: t + i * ch + ch / 2 + 4, 'text-anchor': 'middle', 'font-size': 10.5, fill: inkOn(fill), text: v.toFixed(3) }));
      });
    });
    g.severities.forEach((s, j) => svg.append(S('text', { x: l + j * cw + cw / 2, y: t - 6, 'text-anchor': 'middle', 'font-size': 11, text: String(s) })));
    svg.append(S('text', { x: l + (cw * g.severities.length) / 2, y: t - 24, 'text-anchor': 'middle', 'font-size': 11.5, text: 'severity (1 mild … 5 strong)' }));
    const ns = g.n.flat().filter((v) => v > 0);
    const bar = colourBar(VIRIDIS, lo, hi, 'colour scale: mean accuracy', niceTicks(lo, hi, 4));
    return figure({
      title: `${label(ds)}: accuracy under common corruptions`,
      desc: `Heatmap of the mean accuracy over isomorphism classes for each of ${g.keys.length} corruptions at severities ${g.severities.join(', ')}; values are written in each cell. Mean clean accuracy: ${fmt3(g.clean_mean)}.`,
      legend: [H('span', {}, 'colour and number: mean accuracy over classes (fraction), from ', fmt3(lo), ' to ', fmt3(hi), ' (viridis scale at the right); mean clean accuracy ', fmt3(g.clean_mean))],
      note: `Uses ${nRange(ns)} classes per corruption and severity (test split). Rows: corruption; columns: severity.`,
    }, H('div', { class: 'panels' }, svg, bar));
  }

  function kendallFigure(kd, ds) {
    const k = kd.columns.length, cs = k > 18 ? 24 : 30, l = 150, t = 150;
    const W = l + cs * k + 10, Hh = t + cs * k + 10;
    const svg = svgBox(W, Hh);
    kd.columns.forEach((c, i) => {
      svg.append(S('text', { x: l - 6, y: t + i * cs + cs / 2 + 4, 'text-anchor': 'end', 'font-size': 10.5, text: c }, S('title', { text: kd.labels[i] })));
      const x = l + i * cs + cs / 2;
      svg.append(S('text', { x, y: t - 6, 'text-anchor': 'start', 'font-size': 10.5, transform: `rotate(-60 ${x} ${t - 6})`, text: c }, S('title', { text: kd.labels[i] })));
      kd.columns.forEach((c2, j) => {
        const v = kd.tau[i][j];
        const fill = v === null ? '#fff' : ramp(RDBU, (v + 1) / 2);
        svg.append(S('rect', { x: l + j * cs, y: t + i * cs, width: cs - 1, height: cs - 1, fill, stroke: v === null ? '#bbb' : 'none' },
          S('title', { text: `${c} vs ${c2}: Kendall tau ${v === null ? 'undefined' : v.toFixed(3)} over ${int(kd.n[i][j])} classes` })));
        if (v !== null) svg.append(S('text', { x: l + j * cs + cs / 2, y: t + i * cs + cs / 2 + 3.5, 'text-anchor': 'middle', 'font-size': cs > 26 ? 9.5 : 8, fill: inkOn(fill), text: v.toFixed(2).replace('0.', '.').replace('-.', '−.') }));
      });
    });
    const ns = kd.n.flat().filter((v) => v > 0);
    return figure({
      title: `${label(ds)}: Kendall tau between measures`,
      desc: `Matrix of Kendall's tau-b rank correlation between ${k} measures (${kd.columns.join(', ')}), over the isomorphism classes that hold both values. Values are written in each cell.`,
      legend: [H('span', {}, 'colour and number: Kendall tau from −1 (opposite rankings, red) through 0 (white) to +1 (same ranking, blue); an empty square: undefined (a measure with one value for every class)')],
      note: `Uses ${nRange(ns)} classes per pair. "corruptions (mean)": each class's mean accuracy over all corruption columns.`,
    }, H('div', { class: 'panels' }, svg, colourBar(RDBU, -1, 1, 'colour scale: Kendall tau', [-1, -0.5, 0, 0.5, 1])));
  }

  function costFigure(cb, d) {
    const holder = H('div', {});
    const xsel = H('select', { 'aria-label': 'cost on the x axis' }, cb.x.map((x) => H('option', { value: x, text: x })));
    const ysel = H('select', { 'aria-label': 'robustness on the y axis' }, cb.y.map((y) => H('option', { value: y, text: y })));
    ysel.value = cb.default_y;
    const controls = H('div', { class: 'controls' }, H('label', {}, 'x: cost', xsel), H('label', {}, 'y: accuracy', ysel));
    const draw = () => holder.replaceChildren(scatter(d, xsel.value, ysel.value, cb.pairs[`${xsel.value}|${ysel.value}`]));
    xsel.addEventListener('change', draw);
    ysel.addEventListener('change', draw);
    draw();
    return H('div', {}, controls, holder);
  }
  function scatter(d, xc, yc, pair) {
    const X = d.byName.get(xc), Y = d.byName.get(yc);
    const W = 560, Hh = 360, l = 56, r = 12, t = 12, b = 46;
    const svg = svgBox(W, Hh);
    const idx = SPACE.uniq.filter((i) => Number.isFinite(X.v[i]) && Number.isFinite(Y.v[i]));
    const xs = idx.map((i) => X.v[i]), ys = idx.map((i) => Y.v[i]);
    const xlo = Math.min(...xs), xhi = Math.max(...xs), ylo = Math.min(0, ...ys), yhi = Math.max(...ys, 0.0001);
    const px = (v) => l + ((v - xlo) / (xhi - xlo || 1)) * (W - l - r), py = (v) => Hh - b - ((v - ylo) / (yhi - ylo || 1)) * (Hh - b - t);
    const xt = niceTicks(xlo, xhi, 6), yt = niceTicks(ylo, yhi, 5);
    axes(svg, { x0: l, x1: W - r, y0: Hh - b, y1: t, grid: true,
      xticks: xt.map((v) => [px(v), tickText(v, xt[1] - xt[0])]), yticks: yt.map((v) => [py(v), tickText(v, yt[1] - yt[0])]),
      xlabel: withUnit(X.show), ylabel: withUnit(Y.show) });
    const dots = S('g', { fill: C.blue, 'fill-opacity': 0.35 });
    for (let k = 0; k < idx.length; k++) dots.append(S('circle', { cx: px(xs[k]).toFixed(1), cy: py(ys[k]).toFixed(1), r: 1.8 }));
    svg.append(dots);
    const front = (pair && pair.front) || [];
    if (front.length) {
      const pts = [];
      front.forEach((i, k) => { if (k) pts.push([px(X.v[i]), py(Y.v[front[k - 1]])]); pts.push([px(X.v[i]), py(Y.v[i])]); });
      svg.append(S('path', { d: path(pts), fill: 'none', stroke: C.vermillion, 'stroke-width': 2 }));
      for (const i of front) svg.append(S('circle', { cx: px(X.v[i]), cy: py(Y.v[i]), r: 3.2, fill: C.vermillion, stroke: '#000', 'stroke-width': 0.6 }, S('title', { text: `#${i}: ${xc} ${fmt(X.v[i], X.show)}, ${yc} ${fmt(Y.v[i], Y.show)}` })));
    }
    const tau = pair && pair.tau !== null ? pair.tau.toFixed(3) : 'undefined';
    return figure({
      title: `${label(d.meta.name)}: ${yc} against ${xc}`,
      desc: `Scatter plot of ${Y.show.label} against ${X.show.label}, one point per isomorphism class, with the Pareto front (highest accuracy at lowest cost) drawn as a step line through ${front.length} classes. Kendall tau ${tau}.`,
      legend: [swatch(C.blue, `one class (${int(idx.length)})`, 0.5), lineKey(C.vermillion, `Pareto front (${front.length} classes, highest accuracy for the cost)`)],
      note: `Uses ${int(idx.length)} classes with both values; Kendall tau ${tau}.`,
    }, svg);
  }

  function histFigure(h, col) {
    const W = 250, Hh = 118, l = 36, r = 8, t = 6, b = 30;
    const svg = svgBox(W, Hh);
    if (!h.n) return figure({ title: col.name, note: 'no values' });
    const m = h.counts.length, top = Math.max(...h.counts);
    const X = (v) => l + ((v - h.lo) / (h.hi - h.lo || 1)) * (W - l - r), Y = (c) => Hh - b - (c / (top || 1)) * (Hh - b - t);
    const bw = (W - l - r) / m;
    const g = S('g', { fill: C.blue });
    h.counts.forEach((c, k) => { if (c) g.append(S('rect', { x: (l + k * bw).toFixed(1), y: Y(c).toFixed(1), width: Math.max(bw - 0.6, 0.6).toFixed(1), height: (Hh - b - Y(c)).toFixed(1) })); });
    svg.append(g);
    axes(svg, { x0: l, x1: W - r, y0: Hh - b, y1: t, xticks: [[X(h.min), fmt(h.min, col.show)], [X(h.max), fmt(h.max, col.show)]],
      yticks: [[Y(0), '0'], [Y(top), int(top)]] });
    svg.append(S('line', { x1: X(h.median), x2: X(h.median), y1: t, y2: Hh - b, stroke: C.vermillion, 'stroke-width': 1.6, 'stroke-dasharray': '4 2' }));
    const unit = col.show.unit ? ` ${col.show.unit}` : col.show.kind === 'accuracy' || col.show.kind === 'fraction' ? ' (fraction)' : '';
    return figure({
      title: col.name,
      desc: `Histogram of ${col.show.label}: ${h.counts.length} bins from ${fmt(h.min, col.show)} to ${fmt(h.max, col.show)}${unit}; median ${fmt(h.median, col.show)}, 10% ${fmt(h.p10, col.show)}, 90% ${fmt(h.p90, col.show)}.`,
      note: `${unit.trim() || 'raw score'}; median ${fmt(h.median, col.show)}; ${int(h.n)} ${h.over}`,
    }, svg);
  }

  /* An NB201 cell as the drawing of robustbench201.draw: nodes 0..3 on a line, one bent arrow per op. */
  function cellDiagram(i) {
    const geo = DATA.space.draw, sx = 150, ox = 44, oy = 95; // room for the bends: up 0.45, down 0.6 of a span
    const W = ox * 2 + sx * 3, Hh = 285;
    const svg = svgBox(W, Hh);
    const mid = newId('arrow');
    const defs = S('defs', {});
    for (const [op, colour] of Object.entries(OP_COLOURS)) defs.append(S('marker', { id: `${mid}-${op}`, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, S('path', { d: 'M0,0L10,5L0,10z', fill: colour })));
    svg.append(defs);
    const P = (n) => [ox + geo.positions[n][0] * sx, oy - geo.positions[n][1] * sx];
    const ops = opsOf(i), live = SPACE.live[i];
    DATA.space.edges.forEach(([a, b], e) => {
      const op = ops[e];
      if (op === 'none') return;
      const [x1, y1] = P(a), [x2, y2] = P(b);
      const rad = geo.curvature[`${a}-${b}`] || 0;
      // matplotlib's arc3 (y up): control point = midpoint + rad * (dy, -dx); here y points down
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2, dx = x2 - x1, dy = y2 - y1;
      const cx = mx - rad * dy, cy = my + rad * dx;
      const shrink = (px, py, qx, qy, s) => { const L = Math.hypot(qx - px, qy - py); return [px + ((qx - px) * s) / L, py + ((qy - py) * s) / L]; };
      const [sx1, sy1] = shrink(x1, y1, cx, cy, 22), [sx2, sy2] = shrink(x2, y2, cx, cy, 22);
      const alive = (live >> e) & 1;
      svg.append(S('path', { d: `M${sx1},${sy1}Q${cx},${cy} ${sx2},${sy2}`, fill: 'none', stroke: OP_COLOURS[op], 'stroke-width': 2.4,
        'stroke-dasharray': alive ? OP_DASH[op] : '3 4', 'stroke-opacity': alive ? 1 : 0.45, 'marker-end': `url(#${mid}-${op})` }));
      const lx = 0.25 * x1 + 0.5 * cx + 0.25 * x2, ly = 0.25 * y1 + 0.5 * cy + 0.25 * y2 - (b - a === 1 ? 9 : -4);
      const labelText = geo.labels[op] + (alive ? '' : ' (no effect)');
      svg.append(S('rect', { x: lx - labelText.length * 3.6 - 3, y: ly - 12, width: labelText.length * 7.2 + 6, height: 16, fill: '#fff', 'fill-opacity': 0.9 }),
        S('text', { x: lx, y: ly, 'text-anchor': 'middle', 'font-size': 12.5, fill: OP_COLOURS[op], 'font-weight': 600, text: labelText }));
    });
    for (let n = 0; n < 4; n++) {
      const [x, y] = P(n);
      svg.append(S('circle', { cx: x, cy: y, r: 19, fill: '#f2f2f2', stroke: '#000', 'stroke-width': 1.5 }),
        S('text', { x, y: y + 4.5, 'text-anchor': 'middle', 'font-size': 13, text: n === 0 ? 'in' : n === 3 ? 'out' : String(n) }));
    }
    const title = `NB201 cell #${i}${isDead(i) ? ' (dead: no path from input to output)' : ''}`;
    return figure({
      title,
      desc: `Diagram of cell ${cellString(i)}: nodes in, 1, 2, out; edges: ${DATA.space.edges.map(([a, b], e) => `${a}→${b} ${ops[e]}`).join(', ')}.`,
      legend: Object.keys(OP_COLOURS).map((op) => lineKey(OP_COLOURS[op], geo.labels[op], OP_DASH[op])).concat([H('span', { class: 'muted', text: 'faint dashed: an edge with no effect on the output' })]),
    }, svg);
  }

  // ---- dataset report: provenance ----------------------------------------------------------------------------------
  const LABELS = { cifar10: 'CIFAR-10', cifar100: 'CIFAR-100', 'ImageNet16-120': 'ImageNet16-120', mnist5k: 'MNIST-5k' };
  const label = (name) => LABELS[name] || name;
  function kv(rows) {
    return H('table', { class: 'data' }, H('tbody', {}, rows.filter((r) => r).map(([k, v]) => H('tr', {}, H('th', { scope: 'row', text: k }), H('td', {}, v)))));
  }
  function table(headers, rows, numeric) {
    return H('div', { class: 'scrollx' }, H('table', { class: 'data' },
      H('thead', {}, H('tr', {}, headers.map((h, k) => H('th', { scope: 'col', class: numeric && numeric[k] ? 'num' : null, text: h })))),
      H('tbody', {}, rows.map((r) => H('tr', {}, r.map((c, k) => H('td', { class: numeric && numeric[k] ? 'num' : null }, c)))))));
  }
  function specSummary(spec) {
    const eps = (e) => (e || []).map((x) => Number(x.toFixed(3))).join(', ');
    const parts = (spec.attacks || []).map((a) => `${a.name} at ε ${eps(a.epsilons)}`);
    if ((spec.corruptions || []).length) parts.push(`corruptions ${spec.corruptions.join(', ')} at severities ${(spec.severities || []).join(', ')}`);
    if ((spec.certified || []).length) parts.push(`certified ${spec.certified.join(', ')} at ε ${eps(spec.certified_epsilons)}`);
    if ((spec.surrogates || []).length) parts.push(`surrogates ${spec.surrogates.join(', ')}`);
    if (spec.semantics) parts.push(`${spec.semantics} semantics`);
    return parts.join('; ') || 'nothing listed';
  }
  function provenanceView() {
    const pv = DATA.provenance, v = pv.verified;
    const sec = H('section', {});
    app(sec, H('h2', { text: 'Provenance' }),
      H('p', { class: 'ok', role: 'note' }, `sha256 verified on reading this source: all ${v.files} files listed in its manifest (${mb(v.bytes)}) were hashed again and match (${v.seconds.toFixed(2)} s).`),
      kv([
        ['source', pv.label], ['path', H('code', { text: pv.path })], ['manifest name', pv.name], ['created', pv.created],
        ['written by rb201', pv.code_version], ['schema version', pv.schema_version],
        ['datasets', DATA.datasets.map((d) => `${label(d.name)} (${int(d.classes)} classes, ${int(d.cells)} cells with values, ${d.columns.length} columns)`).join('; ')],
        ['this report', `${DATA.generator}, ${DATA.generated}`],
      ]));
    app(sec, H('h3', { text: 'Evaluation specs' }));
    if (pv.specs.length) {
      app(sec, table(['spec hash', 'name', 'what it evaluates', 'full spec'], pv.specs.map((s) => [
        H('code', { text: s.hash }), s.spec.name || '', specSummary(s.spec),
        H('details', {}, H('summary', { text: 'JSON' }), H('pre', { text: JSON.stringify(s.spec, null, 1) }))])));
    } else app(sec, H('p', { class: 'muted', text: 'No evaluation spec in the manifest: the values were imported (see the sources and weights below).' }));
    if (pv.jobs.length) {
      app(sec, H('h3', { text: 'Evaluation jobs (weights identity)' }),
        table(['dataset', 'weights', 'seed', 'network', 'corruptions', 'test images', 'spec', 'failures', 'shards from'],
          pv.jobs.map((j) => { const i = j.identity; return [i.dataset, H('code', { text: `${i.weights}${i.weights_source ? ` (${i.weights_source})` : ''}` }), i.seed, i.channels ? `C=${i.channels}, N=${i.n_cells}` : '', i.corruptions || '', i.n_test || 'all', H('code', { text: i.spec_hash || '' }), j.failures, H('code', { text: j.out })]; })));
    }
    app(sec, H('h3', { text: 'Sources and weights of the columns' }));
    for (const [ds, rows] of Object.entries(pv.weights)) {
      app(sec, H('h4', { text: label(ds) }), table(['source', 'weights', 'seeds', 'columns', 'families'],
        rows.map((w) => [w.source, H('code', { text: w.weights }), w.seeds === '-1' ? 'not a single seed (a mean, or none)' : w.seeds, w.columns, w.families.join(', ')]), [0, 0, 0, 1, 0]));
    }
    app(sec, H('h3', { text: 'Files' }), table(['file', 'kind', 'dataset', 'bytes', 'rows', 'sha256 (verified)'],
      pv.files.map((f) => [H('code', { text: f.path }), f.kind, f.dataset || '', int(f.bytes), f.rows >= 0 ? int(f.rows) : '', H('code', { class: 'mono', text: f.sha256 })]), [0, 0, 0, 1, 1, 0]));
    if (DATA.compare && DATA.compare.skipped) app(sec, H('h3', { text: 'Comparison with the published table' }), H('p', { class: 'muted', text: `Not shown: ${DATA.compare.skipped}.` }));
    const notes = Object.entries(pv.notes);
    if (notes.length) app(sec, H('h3', { text: 'Notes on the columns' }), H('ul', {}, notes.map(([k, v]) => H('li', {}, H('code', { text: k }), `: ${v}`))));
    const units = Object.entries(pv.units);
    app(sec, H('h3', { text: 'Units and how numbers are shown' }),
      H('p', { class: 'lead', text: 'Epsilons are in units of 1/255; accuracies, confidences and calibration errors are fractions 0..1 shown with 3 decimals; parameters and FLOPs in millions (3 and 2 decimals); hardware latencies in ms and energies in mJ (3 decimals); zero-cost proxies, surrogates and certified margins with 4 significant digits, as the rb201 command line prints them.' }),
      units.length ? H('p', { class: 'muted', text: `Manifest units: ${units.map(([k, v]) => `${k}: ${v}`).join('; ')}` }) : null);
    if (pv.citations.length) app(sec, H('h3', { text: 'Please cite' }), H('ul', {}, pv.citations.map((c) => H('li', { text: c }))));
    return sec;
  }

  // ---- dataset report: figures --------------------------------------------------------------------------------------
  function dsBar(onPick) {
    if (DS.length < 2) return null;
    return H('div', { class: 'dsbar', role: 'group', 'aria-label': 'dataset' }, H('span', { class: 'muted', text: 'Dataset:' }),
      DS.map((d, k) => H('button', { type: 'button', class: 'btn', 'aria-pressed': k === STATE.ds ? 'true' : 'false', text: label(d.meta.name), onclick: () => onPick(k) })));
  }
  async function figuresView(sec) {
    const d = await loadDataset(STATE.ds);
    const f = d.meta.figures, name = d.meta.name;
    const body = [H('h2', { text: `Figures: ${label(name)}` }), dsBar(pickDataset),
      H('div', { class: 'cards' },
        card(int(d.meta.classes), 'isomorphism classes with values'), card(int(d.meta.cells), 'cells with values (of 15,625)'),
        card(d.meta.columns.length, 'columns'))];
    body.push(H('h3', { text: 'Robust accuracy against epsilon' }));
    body.push(f.eps.length ? epsFigure(f.eps, null, `${label(name)}: robust accuracy against epsilon, spread over classes`)
      : H('p', { class: 'muted', text: 'This dataset holds no attack evaluated at two or more epsilons.' }));
    body.push(H('h3', { text: 'Common corruptions' }));
    body.push(f.corruptions ? corruptionFigure(f.corruptions, name) : H('p', { class: 'muted', text: 'This dataset holds no corruption results (Jung et al. evaluate corruptions on CIFAR-10 and CIFAR-100 only).' }));
    body.push(H('h3', { text: 'Kendall tau between measures' }));
    body.push(f.kendall ? kendallFigure(f.kendall, name) : H('p', { class: 'muted', text: 'Fewer than two measures to correlate.' }));
    body.push(H('h3', { text: 'Parameters and FLOPs against robustness' }));
    body.push(f.cost ? costFigure(f.cost, d) : H('p', { class: 'muted', text: 'This dataset holds no params or FLOPs column (the embedded table has them; a built dataset holds what its spec evaluated).' }));
    body.push(H('h3', { text: 'Distributions of every measure' }),
      H('p', { class: 'note', text: 'Histograms: bars count classes (class-level columns) or cells (per-cell columns such as hardware latency) per bin; the dashed line is the median. Axis ends are the smallest and largest value.' }));
    const byFamily = new Map();
    f.distributions.forEach((h, k) => { const c = d.cols[k]; if (!byFamily.has(c.family)) byFamily.set(c.family, []); byFamily.get(c.family).push(histFigure(h, c)); });
    for (const [fam, figs] of byFamily) body.push(H('h4', { text: `${fam} (${figs.length})` }), H('div', { class: 'smalls' }, figs));
    fill(sec, ...body.filter(Boolean));
  }
  const card = (v, k) => H('div', { class: 'card' }, H('div', { class: 'v', text: v }), H('div', { class: 'k', text: k }));

  function pickDataset(k) {
    STATE.ds = k;
    STATE.table = null;
    renderDatasetViews();
    show(STATE.view);
  }

  // ---- dataset report: the cells table ------------------------------------------------------------------------------
  const ROW_PX = 28;
  const WHERE = /^\s*([A-Za-z0-9_@:./-]+?)\s*(<=|>=|==|!=|<|>)\s*([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s*$/;
  const OPS = { '<=': (a, b) => a <= b, '>=': (a, b) => a >= b, '==': (a, b) => a === b, '!=': (a, b) => a !== b, '<': (a, b) => a < b, '>': (a, b) => a > b };
  function parseWhere(text, d) { // the filter language of rb201 table --where
    const clauses = [];
    for (const part of text.trim().split(/\s+and\s+/i)) {
      const m = part.match(WHERE);
      if (!m) throw new Error(`cannot read filter clause '${part}'; write COLUMN OP NUMBER joined by 'and', with OP one of <=, >=, ==, !=, <, >, e.g. 'params<0.5 and fgsm@1>0.4'`);
      const num = Number(m[3]);
      if (!Number.isFinite(num)) throw new Error(`'${m[3]}' in '${part}' is not a number`);
      if (!d.byName.has(m[1]) && m[1] !== 'arch_index' && m[1] !== 'representative') throw new Error(`unknown column '${m[1]}' on ${d.meta.name}; available: arch_index, representative, ${d.cols.map((c) => c.name).join(', ')}`);
      clauses.push([m[1], OPS[m[2]], num]);
    }
    return clauses;
  }
  const colValue = (d, name, i) => (name === 'arch_index' ? i : name === 'representative' ? SPACE.reps[i] : d.byName.get(name).v[i]);
  function defaultColumns(d) {
    const names = d.cols.map((c) => c.name);
    const want = ['clean'];
    const keys = new Map();
    for (const c of d.cols) if (c.family === 'adversarial' && c.measure === 'accuracy' && c.eps !== null && c.split === 'test') {
      const k = `${c.key}|${c.sem}`, cur = keys.get(k);
      if (!cur || Math.abs(Math.log(c.eps)) < Math.abs(Math.log(cur.eps))) keys.set(k, c);
    }
    want.push(...[...keys.values()].map((c) => c.name));
    want.push('nb201_test_accuracy', 'params', 'flops');
    const chosen = want.filter((n) => names.includes(n));
    return chosen.length ? chosen.slice(0, 10) : names.slice(0, 8);
  }
  function cellsView(sec) {
    const d = DS[STATE.ds];
    if (!STATE.table || STATE.table.ds !== STATE.ds) {
      STATE.table = { ds: STATE.ds, cols: defaultColumns(d), sort: d.byName.has('clean') ? 'clean' : null, desc: true, where: '', search: '', unique: true, valued: true };
      if (STATE.table.sort) STATE.table.desc = d.byName.get('clean').show.descending;
    }
    const T = STATE.table;
    const whereIn = H('input', { type: 'text', class: 'wide', value: T.where, placeholder: "e.g. params<0.5 and clean>0.9", 'aria-describedby': 'where-help' });
    const searchIn = H('input', { type: 'search', class: 'wide', value: T.search, placeholder: 'an index, or part of the NB201 string, e.g. nor_conv_3x3~0' });
    const uniqueIn = H('input', { type: 'checkbox', checked: T.unique });
    const valuedIn = H('input', { type: 'checkbox', checked: T.valued });
    const err = H('p', { class: 'error', role: 'alert', id: 'where-error' });
    const count = H('p', { class: 'muted', role: 'status', id: 'row-count' });
    const vt = H('div', { class: 'vt', tabindex: '-1' });
    const tbl = H('table', { id: 'cells-table' });
    const thead = H('thead', {}), tbody = H('tbody', {});
    tbl.append(thead, tbody);
    vt.append(tbl);
    const printTable = H('div', { class: 'print-only' });
    let rows = new Int32Array(0);

    const picker = H('details', { class: 'cols' }, H('summary', { text: 'Choose columns' }), columnPicker(d, T, () => { renderHead(); renderRows(); renderPrint(); }));
    fill(sec, 
      H('h2', { text: `Cells: ${label(d.meta.name)}` }), dsBar(pickDataset),
      H('p', { class: 'lead' }, 'Every cell of the dataset. Click a column header (or focus it and press Enter) to sort: the first click puts the best first (accuracies high, costs low), the next reverses; cells with no value and dead cells (no path from input to output, shown in grey) always come last. Open a cell with its index button. Op codes: c3 = conv 3x3, c1 = conv 1x1, ap = avg pool 3x3, sk = skip, - = none, grouped by the node the edges enter (node 1 | node 2 | node 3).'),
      H('div', { class: 'controls' },
        H('label', {}, 'filter (as rb201 table --where)', whereIn),
        H('label', {}, 'find a cell', searchIn),
        H('label', { class: 'inline' }, uniqueIn, 'one row per isomorphism class'),
        H('label', { class: 'inline' }, valuedIn, 'only cells with values')),
      H('p', { class: 'note', id: 'where-help', text: 'Columns are wide names (epsilon in 1/255), arch_index or representative; clauses COLUMN OP NUMBER joined by "and".' }),
      err, picker, count, vt, printTable);

    const pieces = (name) => name.split(/(?<=[/@:_])/); // break a wide name after / @ : _
    function header(name, txt, title) {
      const th = H('th', { scope: 'col', class: txt ? 'txt' : null });
      if (T.sort === name) th.setAttribute('aria-sort', T.desc ? 'descending' : 'ascending');
      const parts = pieces(name).flatMap((p, k) => (k ? [H('wbr', {}), p] : [p]));
      const unit = d.byName.has(name) ? d.byName.get(name).show.unit : '';
      th.append(H('button', { type: 'button', title, onclick: () => sortBy(name) }, parts, unit ? H('span', { class: 'muted', text: ` (${unit})` }) : null));
      return th;
    }
    const colWidth = (name) => Math.max(86, Math.min(190, 8 * Math.max(...pieces(name).map((p) => p.length)) + 34));
    function widths() {
      return [84, 190, ...T.cols.map(colWidth), colWidth('representative')];
    }
    function renderHead() {
      const cg = H('colgroup', {}, widths().map((w) => H('col', { style: `width:${w}px` })));
      tbl.querySelector('colgroup')?.remove();
      tbl.prepend(cg);
      tbl.style.width = `${widths().reduce((a, b) => a + b, 0)}px`;
      thead.replaceChildren(H('tr', {},
        header('arch_index', true, 'NB201 index'), H('th', { scope: 'col', class: 'txt' }, H('button', { type: 'button', disabled: true, text: 'cell (ops)' })),
        T.cols.map((n) => { const c = d.byName.get(n); return header(n, false, `${c.show.label}${c.show.unit ? ` (${c.show.unit})` : ''}`); }),
        header('representative', false, 'isomorphism-class representative')));
    }
    function sortBy(name) {
      if (T.sort === name) T.desc = !T.desc;
      else { T.sort = name; T.desc = name === 'arch_index' || name === 'representative' ? false : d.byName.get(name).show.descending; }
      applyRows();
      renderHead();
      thead.querySelector('th[aria-sort] button')?.focus();
    }
    function applyRows() {
      err.textContent = '';
      let clauses = [];
      try { clauses = T.where.trim() ? parseWhere(T.where, d) : []; } catch (e) { err.textContent = e.message; }
      const base = T.unique ? SPACE.uniq : null;
      const n = base ? base.length : SPACE.n;
      const out = [];
      const q = T.search.trim();
      const byIndex = /^\d+$/.test(q) ? Number(q) : null;
      for (let k = 0; k < n; k++) {
        const i = base ? base[k] : k;
        let ok = !T.valued || d.valued[i] === 1;
        if (ok) for (const [c, op, num] of clauses) if (!op(colValue(d, c, i), num)) { ok = false; break; }
        if (ok && q) ok = byIndex !== null ? i === byIndex || (T.unique && SPACE.reps[byIndex] === i) : cellString(i).includes(q);
        if (ok) out.push(i);
      }
      if (T.sort) {
        const key = (i) => colValue(d, T.sort, i);
        const grp = (i) => (!Number.isFinite(key(i)) ? 2 : isDead(i) ? 1 : 0);
        const sgn = T.desc ? -1 : 1;
        out.sort((a, b) => grp(a) - grp(b) || (grp(a) < 2 ? sgn * (key(a) - key(b)) : 0) || a - b);
      }
      rows = Int32Array.from(out);
      const total = T.unique ? SPACE.uniq.length : SPACE.n;
      count.textContent = `${int(rows.length)} of ${int(total)} ${T.unique ? 'classes' : 'cells'} shown${T.sort ? `, sorted by ${T.sort} ${T.desc ? 'descending' : 'ascending'}` : ''}${clauses.length ? `, filtered by ${T.where.trim()}` : ''}. Rows are drawn as they scroll into view.`;
      vt.scrollTop = 0;
      renderRows();
      renderPrint();
    }
    function rowEl(i) {
      const tr = H('tr', { class: isDead(i) ? 'dead' : null, 'data-i': i },
        H('td', { class: 'txt' }, H('button', { type: 'button', class: 'link', text: `#${i}`, 'aria-label': `open cell ${i}`, onclick: () => openCell(i) })),
        H('td', { class: 'txt opcode', title: cellString(i), text: cellCode(i) }),
        T.cols.map((n) => { const c = d.byName.get(n); return H('td', { text: fmt(c.v[i], c.show) }); }),
        H('td', { text: SPACE.reps[i] === i ? `${i}` : `→ ${SPACE.reps[i]}` }));
      return tr;
    }
    const spacer = (h) => H('tr', { class: 'spacer', 'aria-hidden': 'true' }, H('td', { colspan: T.cols.length + 3, style: `height:${h}px` }));
    let frame = 0;
    function renderRows() {
      frame = 0;
      const head = thead.offsetHeight || 50;
      const top = Math.max(0, vt.scrollTop - head), h = vt.clientHeight || 600;
      const start = Math.max(0, Math.floor(top / ROW_PX) - 8), end = Math.min(rows.length, Math.ceil((top + h) / ROW_PX) + 8);
      const kids = [];
      if (start > 0) kids.push(spacer(start * ROW_PX));
      for (let k = start; k < end; k++) kids.push(rowEl(rows[k]));
      if (end < rows.length) kids.push(spacer((rows.length - end) * ROW_PX));
      tbody.replaceChildren(...kids);
    }
    function renderPrint() {
      const top = Array.from(rows.slice(0, 50));
      printTable.replaceChildren(H('h3', { text: `The first ${top.length} rows (of ${int(rows.length)})` }),
        table(['index', 'cell', ...T.cols, 'class'], top.map((i) => [String(i), cellCode(i), ...T.cols.map((n) => fmt(d.byName.get(n).v[i], d.byName.get(n).show)), String(SPACE.reps[i])])));
    }
    vt.addEventListener('scroll', () => { if (!frame) frame = requestAnimationFrame(renderRows); });
    let timer = null;
    whereIn.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(() => { T.where = whereIn.value; applyRows(); }, 250); });
    whereIn.addEventListener('keydown', (e) => { if (e.key === 'Enter') { clearTimeout(timer); T.where = whereIn.value; applyRows(); } });
    searchIn.addEventListener('input', () => { T.search = searchIn.value; applyRows(); });
    uniqueIn.addEventListener('change', () => { T.unique = uniqueIn.checked; applyRows(); });
    valuedIn.addEventListener('change', () => { T.valued = valuedIn.checked; applyRows(); });
    renderHead();
    applyRows();
    STATE.refreshRows = renderRows;
  }
  function columnPicker(d, T, changed) {
    const grid = H('div', { class: 'colgrid' });
    const fams = new Map();
    for (const c of d.cols) { if (!fams.has(c.family)) fams.set(c.family, []); fams.get(c.family).push(c); }
    for (const [fam, cols] of fams) {
      grid.append(H('fieldset', {}, H('legend', { text: fam }), cols.map((c) => H('label', { title: c.show.label },
        H('input', { type: 'checkbox', value: c.name, checked: T.cols.includes(c.name), onchange: (e) => {
          if (e.target.checked) T.cols.push(c.name); else T.cols = T.cols.filter((n) => n !== c.name);
          changed();
        } }), ` ${c.name}`))));
    }
    return grid;
  }

  // ---- a cell's detail view ------------------------------------------------------------------------------------------
  function openCell(i) {
    const d = DS[STATE.ds];
    if (!d || !d.cols || !(i >= 0 && i < SPACE.n)) return;
    STATE.cell = i;
    writeHash();
    let dlg = $('#cell');
    if (!dlg) {
      dlg = H('dialog', { id: 'cell', 'aria-labelledby': 'cell-title' });
      dlg.addEventListener('close', () => { STATE.cell = null; writeHash(); });
      document.body.append(dlg);
    }
    const rep = SPACE.reps[i], members = SPACE.members.get(rep);
    const f = d.meta.figures;
    const cellOf = (p) => p.columns.map((n) => d.byName.get(n).v[i]);
    const values = d.cols.filter((c) => Number.isFinite(c.v[i]));
    const groups = new Map();
    for (const c of values) { if (!groups.has(c.family)) groups.set(c.family, []); groups.get(c.family).push(c); }
    const body = H('div', { class: 'dbody' },
      H('div', { class: 'grid2' }, cellDiagram(i), H('div', {},
        kv([
          ['NB201 index', String(i)], ['NB201 string', H('code', { text: cellString(i) })], ['dataset', label(d.meta.name)],
          ['isomorphism class', rep === i ? `representative of its class (${members.length} member${members.length > 1 ? 's' : ''})` : `member of the class of #${rep}: class-level values are those of #${rep}`],
          ['dead', isDead(i) ? 'yes: no path from input to output (chance accuracy)' : 'no'],
        ]),
        H('h4', { text: `Class members (${members.length})` }),
        H('div', { class: 'members' }, members.map((m) => (m === i ? H('strong', { text: `#${m}` }) : H('button', { type: 'button', class: 'link', text: `#${m}`, onclick: () => openCell(m) })))))),
      f.eps.length ? epsFigure(f.eps, cellOf, `Cell #${i} against the ${label(d.meta.name)} classes: robust accuracy against epsilon`) : null,
      f.corruptions && f.corruptions.profile ? corruptionProfile(f.corruptions, d, i) : null,
      H('h3', { text: `All ${values.length} values of cell #${i}` }),
      ...[...groups].map(([fam, cols]) => H('div', {}, H('h4', { text: fam }), table(['column', 'value', 'unit', 'what'],
        cols.map((c) => [H('code', { text: c.name }), fmt(c.v[i], c.show), c.show.unit || (c.show.kind === 'accuracy' || c.show.kind === 'fraction' ? 'fraction' : ''), c.show.label]), [0, 1, 0, 0]))));
    dlg.replaceChildren(H('div', { class: 'dhead' }, H('h2', { id: 'cell-title', text: `Cell #${i} on ${label(d.meta.name)}` }),
      H('button', { type: 'button', class: 'btn', text: 'Close', onclick: () => dlg.close() })), body);
    if (!dlg.open) dlg.showModal();
    dlg.scrollTop = 0;
  }
  function corruptionProfile(g, d, i) {
    const pr = g.profile, W = 340, Hh = 230, l = 46, r = 10, t = 12, b = 44;
    const svg = svgBox(W, Hh);
    const m = g.severities.length, X = (k) => l + (k + 0.5) * ((W - l - r) / m), Y = (v) => Hh - b - v * (Hh - b - t);
    axes(svg, { x0: l, x1: W - r, y0: Hh - b, y1: t, grid: true, xticks: g.severities.map((s, k) => [X(k), String(s)]),
      yticks: [0, 0.25, 0.5, 0.75, 1].map((v) => [Y(v), v.toFixed(2)]), xlabel: 'corruption severity', ylabel: 'mean accuracy (fraction)' });
    const xs = g.severities.map((_, k) => X(k)), sc = (a) => a.map((v) => (v === null ? null : Y(v)));
    svg.append(S('path', { d: bandPath(xs, sc(pr.p10), sc(pr.p90)), fill: C.sky, 'fill-opacity': 0.35 }),
      S('path', { d: bandPath(xs, sc(pr.p25), sc(pr.p75)), fill: C.blue, 'fill-opacity': 0.35 }),
      S('path', { d: path(xs.map((x, k) => [x, Y(pr.p50[k] ?? NaN)]).filter((q) => Number.isFinite(q[1]))), fill: 'none', stroke: C.black, 'stroke-width': 1.8 }));
    const mine = g.severities.map((_, j) => { const vals = g.columns.map((row) => row[j]).filter(Boolean).map((n) => d.byName.get(n).v[i]); return vals.every(Number.isFinite) && vals.length ? vals.reduce((a, v) => a + v, 0) / vals.length : NaN; });
    const pts = xs.map((x, k) => [x, Y(mine[k])]).filter((q) => Number.isFinite(q[1]));
    svg.append(S('path', { d: path(pts), fill: 'none', stroke: C.vermillion, 'stroke-width': 2 }));
    for (const [x, y] of pts) svg.append(S('circle', { cx: x, cy: y, r: 3, fill: C.vermillion }));
    return figure({
      title: `Cell #${i}: mean accuracy over the ${g.keys.length} corruptions, by severity`,
      desc: `The cell's accuracy averaged over ${g.keys.length} corruptions at each severity, against the median and the 25–75% and 10–90% bands of the same average over the classes.`,
      legend: [swatch(C.sky, '10–90% of classes', 0.35), swatch(C.blue, '25–75% of classes', 0.5), lineKey(C.black, 'median class'), lineKey(C.vermillion, 'this cell')],
      note: `Uses ${nRange(pr.n)} classes per severity (those with every corruption value).`,
    }, svg);
  }

  // ---- dataset report: comparison with the published table ----------------------------------------------------------
  function compareView() {
    const cmp = DATA.compare, sec = H('section', {});
    app(sec, H('h2', { text: 'Compared with the published table (rb201 compare --to jung2023)' }));
    if (cmp.skipped) { app(sec, H('p', { class: 'muted', text: cmp.skipped })); return sec; }
    app(sec, H('p', { class: 'lead', text: `a = ${cmp.a}; b = ${cmp.b}. Per common column: Kendall tau between a and b over the isomorphism-class representatives both hold, the mean |a − b|, the mean a − b (positive: a is higher), the largest |a − b| and the cells that differ most.` }));
    const byDs = new Map();
    for (const c of cmp.columns) { if (!byDs.has(c.dataset)) byDs.set(c.dataset, []); byDs.get(c.dataset).push(c); }
    for (const [ds, cols] of byDs) {
      app(sec, H('h3', { text: `${label(ds)}: ${cols.length} common columns` }), tauDots(cols, ds),
        table(['column', 'cells', 'Kendall tau', 'mean |a−b|', 'mean a−b', 'max |a−b|', 'cells that differ most (a vs b)'],
          cols.map((c) => [H('code', { text: c.column }), int(c.n), fmt3(c.kendall_tau ?? NaN), fmt3(c.mean_abs_diff ?? NaN), fmt3(c.mean_diff ?? NaN), fmt3(c.max_abs_diff ?? NaN),
            c.worst.map((w) => `#${w.arch_index} (${fmt3(w.a)} vs ${fmt3(w.b)})`).join(', ')]), [0, 1, 1, 1, 1, 1, 0]));
    }
    for (const [side, what] of [['only_a', 'a'], ['only_b', 'b']]) for (const [ds, names] of Object.entries(cmp[side] || {})) if (names.length)
      app(sec, H('p', { class: 'note', text: `Only in ${what} on ${label(ds)} (${names.length}): ${names.slice(0, 12).join(', ')}${names.length > 12 ? ', …' : ''}` }));
    if (!cmp.columns.length) app(sec, H('p', { class: 'muted', text: 'No common column with values in both: nothing to compare.' }));
    return sec;
  }
  function tauDots(cols, ds) {
    const rowH = 16, l = 170, W = 560, t = 10, b = 40, Hh = t + b + rowH * cols.length;
    const svg = svgBox(W, Hh);
    const X = (v) => l + ((v + 1) / 2) * (W - l - 20);
    axes(svg, { x0: l, x1: W - 20, y0: Hh - b, y1: t, grid: false, xticks: [-1, -0.5, 0, 0.5, 1].map((v) => [X(v), String(v)]), yticks: [], xlabel: 'Kendall tau between a and b' });
    cols.forEach((c, k) => {
      const y = t + k * rowH + rowH / 2;
      svg.append(S('text', { x: l - 6, y: y + 4, 'text-anchor': 'end', 'font-size': 10.5, text: c.column }));
      if (c.kendall_tau !== null) svg.append(S('circle', { cx: X(c.kendall_tau), cy: y, r: 4, fill: C.blue }, S('title', { text: `${c.column}: tau ${c.kendall_tau.toFixed(3)} over ${c.n} cells` })));
    });
    return figure({ title: `${label(ds)}: agreement with the published ranking, per column`,
      desc: `Dot plot of the Kendall tau between this dataset and the published table for each of ${cols.length} common columns.`,
      legend: [swatch(C.blue, 'Kendall tau of one column')], note: `Uses ${nRange(cols.map((c) => c.n))} cells per column.` }, svg);
  }

  // ---- build report -------------------------------------------------------------------------------------------------
  function etaText(eta, rate, window, failed) {
    if (eta.state === 'finished') return failed ? `nothing left to run; ${int(failed)} failed (see Failures)` : 'finished: every cell done';
    if (eta.state === 'idle') return 'no task is writing now: no ETA (see the retry commands below)';
    if (eta.state === 'unknown') return 'no ETA yet (no cell committed in the last hour to measure a rate)';
    return `about ${duration(eta.seconds)} at ${rate.toFixed(1)} cells/hour (the rate of the last ${duration(window)})`;
  }
  function progressView() {
    const T = DATA.totals, sec = H('section', {});
    const c = T.cells, pct = c.planned ? (100 * c.done) / c.planned : 0;
    app(sec, H('h2', { text: 'Progress' }),
      DATA.refresh_s ? H('p', { class: 'note', text: `This page reloads itself every ${DATA.refresh_s} s while rb201 report --watch rewrites it.` }) : null,
      H('p', { class: 'lead' }, `Shard folder `, H('code', { text: DATA.out }), `, read at ${DATA.generated}.`),
      H('div', { class: 'cards' }, card(`${pct.toFixed(1)}%`, 'of planned cells done'), card(int(c.done), 'cells done'),
        card(int(c.failed), 'cells failed'), card(int(c.remaining), `cells remaining (${int(c.writing)} in shards being written)`),
        card(int(T.tasks), `tasks (shards): ${Object.entries(T.states).filter(([, v]) => v).map(([k, v]) => `${v} ${k}`).join(', ') || 'none'}`),
        card(T.rate_per_hour === null ? '–' : `${T.rate_per_hour.toFixed(1)}/h`, 'cells committed per hour (last hour)')),
      H('p', { class: T.eta.state === 'idle' && c.remaining ? 'warn' : 'ok', role: 'status', id: 'eta' }, `ETA: ${etaText(T.eta, T.rate_per_hour, T.rate_window_s, c.failed)}`));
    app(sec, H('h3', { text: 'Per dataset and spec' }), table(
      ['evaluation job', 'tasks', 'planned', 'done', 'failed', 'remaining', 'cells/hour', 'ETA', 's per cell'],
      DATA.groups.map((g, k) => [H('span', {}, H('span', { class: 'sw', style: `display:inline-block;width:0.8em;height:0.8em;margin-right:0.4em;background:${SERIES[k % SERIES.length]}` }), g.label),
        Object.entries(g.tasks).filter(([, v]) => v).map(([s, v]) => `${v} ${s}`).join(', '),
        int(g.cells.planned), int(g.cells.done), int(g.cells.failed), `${int(g.cells.remaining)}${g.cells.writing ? ` (${int(g.cells.writing)} being written)` : ''}`,
        g.rate_per_hour === null ? '–' : g.rate_per_hour.toFixed(1), etaText(g.eta, g.rate_per_hour, g.rate_window_s, g.cells.failed),
        g.seconds_per_cell === null ? '–' : g.seconds_per_cell.toFixed(1)]), [0, 0, 1, 1, 1, 1, 1, 0, 1]));
    app(sec, H('h3', { text: 'Throughput over time' }), throughputFigure());
    const withPhases = DATA.groups.filter((g) => Object.keys(g.phases).length);
    if (withPhases.length) app(sec, H('h3', { text: 'Where the time of a cell goes' }), H('div', { class: 'figs' }, withPhases.map(phasesFigure)));
    if (DATA.launches.length) app(sec, H('h3', { text: 'Launches' }), table(['job id', 'executor', 'submitted', 'tasks'], DATA.launches.map((l) => [l.job_id, l.executor, l.submitted, l.tasks])));
    return sec;
  }
  function throughputFigure() {
    const tp = DATA.throughput, nb = tp.buckets;
    if (!nb) return H('p', { class: 'muted', text: 'No cell committed yet.' });
    const W = 780, Hh = 260, l = 50, r = 70, t = 12, b = 52;
    const svg = svgBox(W, Hh);
    const stack = new Array(nb).fill(0);
    const totals = DATA.groups.map((g) => g.throughput);
    for (const arr of totals) arr.forEach((v, k) => { stack[k] += v; });
    const top = Math.max(1, ...stack), bw = (W - l - r) / nb;
    const Y = (v) => Hh - b - (v / top) * (Hh - b - t);
    const yt = niceTicks(0, top, 4).filter((v) => Number.isInteger(v));
    const span = tp.bucket_s * nb, xtN = Math.min(nb, 6);
    const [from, to] = span > 172800 ? [5, 16] : span > 600 ? [11, 16] : [11, 19]; // date and time, time, or seconds
    const xticks = [];
    for (let k = 0; k <= xtN; k++) { const s = tp.start + (k / xtN) * span; xticks.push([l + ((s - tp.start) / span) * (W - l - r), new Date(s * 1000).toISOString().slice(from, to).replace('T', ' ')]); }
    axes(svg, { x0: l, x1: W - r, y0: Hh - b, y1: t, grid: true, xticks, yticks: yt.map((v) => [Y(v), String(v)]), xlabel: `time (UTC); one bar = ${duration(tp.bucket_s)}`, ylabel: 'cells committed per bar' });
    const base = new Array(nb).fill(0);
    DATA.groups.forEach((g, gi) => g.throughput.forEach((v, k) => {
      if (!v) return;
      svg.append(S('rect', { x: l + k * bw + 0.5, y: Y(base[k] + v), width: Math.max(bw - 1, 0.8), height: Y(base[k]) - Y(base[k] + v), fill: SERIES[gi % SERIES.length] }, S('title', { text: `${g.label}: ${v} cells` })));
      base[k] += v;
    }));
    const cum = [];
    let s = 0;
    stack.forEach((v, k) => { s += v; cum.push([l + (k + 1) * bw, s]); });
    const Yc = (v) => Hh - b - (v / Math.max(s, 1)) * (Hh - b - t);
    svg.append(S('path', { d: path([[l, Yc(0)], ...cum.map(([x, v]) => [x, Yc(v)])]), fill: 'none', stroke: C.black, 'stroke-width': 1.5, 'stroke-dasharray': '5 3' }));
    const right = S('g', { 'font-size': 11, fill: '#333' }, S('line', { x1: W - r, x2: W - r, y1: t, y2: Hh - b, stroke: '#555' }));
    for (const v of niceTicks(0, Math.max(s, 1), 4).filter(Number.isInteger)) right.append(S('line', { x1: W - r, x2: W - r + 4, y1: Yc(v), y2: Yc(v), stroke: '#555' }), S('text', { x: W - r + 6, y: Yc(v) + 4, text: int(v) }));
    right.append(S('text', { x: W - 8, y: (t + Hh - b) / 2, 'text-anchor': 'middle', transform: `rotate(90 ${W - 8} ${(t + Hh - b) / 2})`, 'font-size': 11.5, text: 'cells done in all' }));
    svg.append(right);
    return figure({ title: 'Cells committed over time', desc: `Bar chart of cells committed per ${duration(tp.bucket_s)} from ${clock(tp.start)} to ${clock(tp.end)}, stacked by evaluation job, with the cumulative count as a dashed line (right end: ${s} cells).`,
      legend: [...DATA.groups.map((g, k) => swatch(SERIES[k % SERIES.length], g.label)), lineKey(C.black, 'cells done in all (right axis)', true)],
      note: `Uses the ${int(s)} committed cells (each cell's commit time is its result file's modification time).` }, svg);
  }
  function phasesFigure(g) {
    const ph = Object.entries(g.phases), rowH = 18, l = 110, W = 420, t = 8, b = 40, Hh = t + b + rowH * ph.length;
    const svg = svgBox(W, Hh);
    const top = Math.max(...ph.map(([, v]) => v), 1e-9), X = (v) => l + (v / top) * (W - l - 60);
    const xt = niceTicks(0, top, 4);
    axes(svg, { x0: l, x1: W - 60, y0: Hh - b, y1: t, xticks: xt.map((v) => [X(v), tickText(v, xt[1] - xt[0])]), yticks: [], xlabel: 'seconds per cell (mean)' });
    ph.forEach(([k, v], j) => {
      const y = t + j * rowH;
      svg.append(S('text', { x: l - 6, y: y + rowH / 2 + 4, 'text-anchor': 'end', 'font-size': 10.5, text: k }),
        S('rect', { x: l, y: y + 2, width: Math.max(X(v) - l, 0.5), height: rowH - 4, fill: C.blue }),
        S('text', { x: X(v) + 4, y: y + rowH / 2 + 4, 'font-size': 10, text: v.toFixed(2) }));
    });
    return figure({ title: `Time per cell by phase: ${g.label}`, desc: `Bar chart of the mean seconds per cell spent in each phase (${ph.map(([k, v]) => `${k} ${v.toFixed(2)} s`).join(', ')}).`,
      legend: [swatch(C.blue, 'mean seconds per cell')], note: `Uses the ${int(g.seconds_measured)} cells with timings; a whole cell takes ${g.seconds_per_cell === null ? '–' : g.seconds_per_cell.toFixed(1)} s on average.` }, svg);
  }
  const COV = { '.': ['#e6e6e6', 'not planned'], r: [C.yellow, 'remaining (no task writes its shard)'], w: [C.sky, 'remaining, its shard is being written'], f: [C.vermillion, 'failed'], d: [C.blue, 'done'] };
  function coverageView() {
    const sec = H('section', {});
    app(sec, H('h2', { text: 'Coverage of the 6,466 isomorphism classes' }),
      H('p', { class: 'lead', text: 'One square per isomorphism class, in order of its representative index (left to right, then down). A class counts as done when any of its members is done.' }));
    DATA.groups.forEach((g) => {
      const counts = {};
      for (const ch of g.coverage) counts[ch] = (counts[ch] || 0) + 1;
      const cols = 98, px = 7, rows = Math.ceil(g.coverage.length / cols);
      const cv = H('canvas', { width: cols * px, height: rows * px });
      const ctx = cv.getContext('2d');
      for (let k = 0; k < g.coverage.length; k++) { ctx.fillStyle = COV[g.coverage[k]][0]; ctx.fillRect((k % cols) * px, Math.floor(k / cols) * px, px - 1, px - 1); }
      const summary = Object.entries(COV).map(([ch, [, what]]) => `${int(counts[ch] || 0)} ${what}`).join(', ');
      cv.setAttribute('role', 'img');
      cv.setAttribute('aria-label', `Coverage map of ${g.label}: ${summary}.`);
      const tip = H('p', { class: 'note', 'aria-live': 'polite', text: 'Point at a square to see its class.' });
      cv.addEventListener('mousemove', (e) => {
        const rect = cv.getBoundingClientRect(), sx = cv.width / rect.width;
        const k = Math.floor(((e.clientY - rect.top) * sx) / px) * cols + Math.floor(((e.clientX - rect.left) * sx) / px);
        if (k >= 0 && k < g.coverage.length) tip.textContent = `class of #${SPACE.uniq[k]}: ${COV[g.coverage[k]][1]}`;
      });
      app(sec, figure({ title: `Coverage: ${g.label}`, desc: `Coverage map: ${summary}.`, cls: 'cov',
        legend: Object.entries(COV).map(([ch, [colour, what]]) => swatch(colour, `${what} (${int(counts[ch] || 0)})`)),
        note: `Uses all ${int(g.coverage.length)} classes; ${int(g.cells.planned)} cells are planned by this job.` }, cv));
      app(sec.lastChild, tip);
    });
    if (!DATA.groups.length) app(sec, H('p', { class: 'muted', text: 'No shard has started yet.' }));
    return sec;
  }
  function failuresView() {
    const sec = H('section', {});
    const F = DATA.failures;
    app(sec, H('h2', { text: `Failures (${F.length})` }));
    const retry = DATA.groups.filter((g) => g.retry);
    if (retry.length) {
      app(sec, H('h3', { text: 'Commands that retry them' }),
        H('p', { class: 'lead', text: 'Merge the committed cells into a dataset, then evaluate what it lacks with --missing-from, limited with --arch-range to the failed cells and to the remaining cells of shards that no task writes now (cells still being written are left to their task). Add --data-root / --train-dir if you gave them.' }));
      for (const g of retry) {
        app(sec, H('h4', { text: `${g.label}: ${g.retry.failed} failed, ${g.retry.stranded} left in idle shards` }),
          g.retry.commands.length ? H('pre', { class: 'cmd', text: g.retry.commands.join('\n') }) : H('p', { class: 'muted', text: `cells: ${g.retry.archs.join(', ')}` }));
      }
    } else app(sec, H('p', { class: 'ok', text: 'Nothing to retry: no cell failed and no shard is left unfinished without a task.' }));
    if (F.length) {
      const jobLabel = new Map(DATA.groups.map((g) => [g.job, g.label]));
      app(sec, H('h3', { text: 'Failed cells and their messages' }), table(['job', 'shard', 'cell', 'error', 'message', 'attempts', 'device'],
        F.map((f) => [jobLabel.get(f.job) || '', H('code', { text: f.shard }), `#${f.arch}`, f.error_type, H('pre', { text: f.message }), f.attempts ?? '', f.device])));
    }
    return sec;
  }
  function shardsView() {
    const sec = H('section', {});
    const jobLabel = new Map(DATA.groups.map((g) => [g.job, g.label]));
    app(sec, H('h2', { text: `Tasks (${DATA.shards.length} shards)` }), table(['shard', 'job', 'state', 'planned', 'done', 'failed', 'left', 'writer / task', 'first commit', 'last commit'],
      DATA.shards.map((s) => [H('code', { text: s.shard }), jobLabel.get(s.job) || '', s.state, int(s.planned), int(s.done), int(s.failed), int(s.remaining),
        [s.writer, s.task ? `task ${s.task}` : ''].filter(Boolean).join('; '), s.first_commit ? clock(s.first_commit) : '', s.last_commit ? clock(s.last_commit) : '']), [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]));
    return sec;
  }

  // ---- start --------------------------------------------------------------------------------------------------------
  function renderDatasetViews() {
    const figs = VIEWS.find((v) => v.id === 'figures'), cells = VIEWS.find((v) => v.id === 'cells');
    return Promise.all([figuresView(figs.section), loadDataset(STATE.ds).then(() => cellsView(cells.section))]);
  }
  async function start() {
    const status = $('#status');
    await loadSpace();
    if (DATA.kind === 'build') {
      addView('progress', 'Progress', progressView());
      addView('coverage', 'Coverage', coverageView());
      addView('failures', `Failures (${DATA.failures.length})`, failuresView());
      addView('shards', 'Tasks', shardsView());
    } else {
      DATA.datasets.forEach((meta) => DS.push({ meta }));
      addView('provenance', 'Provenance', provenanceView());
      addView('figures', 'Figures', H('section', {}));
      addView('cells', 'Cells', H('section', {}), () => STATE.refreshRows && requestAnimationFrame(STATE.refreshRows));
      if (DATA.compare && !DATA.compare.skipped) addView('compare', 'Compare with jung2023', compareView());
    }
    readHash();
    buildTabs();
    if (DATA.kind !== 'build') await renderDatasetViews();
    status.remove();
    $('#footer').textContent = `${DATA.generator}; generated ${DATA.generated}; source ${DATA.source}. Self-contained: this file loads nothing.`;
    show(STATE.view || VIEWS[0].id);
    if (STATE.cell !== null && DATA.kind !== 'build') openCell(STATE.cell);
    document.body.dataset.readyMs = String(Math.round(performance.now())); // time to first view, for the README
    document.body.dataset.ready = 'true';
  }
  start().catch((e) => {
    const status = $('#status');
    if (status) status.textContent = `The report could not be shown: ${e.message}`;
    console.error(e);
    document.body.dataset.ready = 'error';
  });
})();
