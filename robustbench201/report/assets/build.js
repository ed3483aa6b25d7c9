/* rb201 report, build.js: A build's report: progress, throughput and ETA, time per phase, coverage of the classes, failures and retry commands. */
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
