/* rb201 report, charts.js: Figures: a title, an SVG with its text alternative, a legend outside the plotting area, a note of the cells used. */
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
  const unit = col.show.unit ? ` ${col.show.unit}` : col.show.kind === 'accuracy' ? ' (fraction)' : '';
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
