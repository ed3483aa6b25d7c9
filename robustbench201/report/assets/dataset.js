/* rb201 report, dataset.js: A dataset's report: provenance, figures, the cells table (virtual scrolling), a cell's detail view, the comparison. */
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
      cols.map((c) => [H('code', { text: c.name }), fmt(c.v[i], c.show), c.show.unit || (c.show.kind === 'accuracy' ? 'fraction' : ''), c.show.label]), [0, 1, 0, 0]))));
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
