/* rb201 report, main.js: Start: unpack the space, lay out the views of the report, show the one the address names. */
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
