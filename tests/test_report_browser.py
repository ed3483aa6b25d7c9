"""The report of a dataset in a real browser (headless Chromium through Selenium, tests/browser.py): it loads from
disk with no console error, sorting and filtering change the rows as the command line would, a cell's detail view
opens, figures have a size and a text alternative, the controls work from the keyboard, the print stylesheet shows
every view, and screenshots of the main views are saved for a person to look at."""

from __future__ import annotations

import numpy as np
import pytest
from browser import screenshot_dir
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from test_report import SHIFT, SHIFTED, small_dataset

from robustbench201 import default_dataset
from robustbench201.report import write_report
from robustbench201.space import Arch, representative_indices, unique_indices
from robustbench201.tables.select import select

ROWS_JS = "[...document.querySelectorAll('#cells-table tbody tr:not(.spacer)')].map(tr => Number(tr.dataset.i))"
ROWS = f"return {ROWS_JS}"  # the NB201 indices of the rows drawn, top first
COUNT_JS = "document.getElementById('row-count').textContent"
COUNT = f"return {COUNT_JS}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("pages")
    rebuilt = small_dataset(out / "rebuilt")
    return {"jung2023": write_report("jung2023", out / "jung2023.html").path,
            "rebuilt": write_report(rebuilt, out / "rebuilt.html").path}  # fmt: skip


@pytest.fixture
def shots(request):  # type: ignore[no-untyped-def]
    folder = screenshot_dir(request.node.name)
    request.node.user_properties.append(("screenshots", str(folder)))
    return folder


def _best_first(idx, column: str, descending: bool) -> list[int]:  # type: ignore[no-untyped-def]
    """The order of the page: one row per class, live cells with a value first (best first), then dead cells, then
    cells without a value, ties by index."""
    reps = np.asarray(unique_indices())
    v = idx.take(reps, idx.col[column])
    dead = np.array([Arch.from_index(int(i)).is_dead for i in reps])
    group = np.where(np.isnan(v), 2, np.where(dead, 1, 0))
    key = np.where(np.isnan(v), 0.0, -v if descending else v)
    return [int(reps[k]) for k in np.lexsort((reps, key, group))]


def _show(browser, view: str) -> None:  # type: ignore[no-untyped-def]
    browser.driver.find_element(By.ID, f"tab-{view}").click()
    browser.wait("return !document.getElementById(arguments[0]).hidden", f"view-{view}")


def _open_cells(browser, page) -> None:  # type: ignore[no-untyped-def]
    browser.open(page, "view=cells&ds=0")
    browser.wait(f"return {ROWS_JS}.length > 10")


def test_the_published_report_loads_without_console_errors_and_shows_its_views(browser, pages, shots):
    browser.open(pages["jung2023"])
    tabs = browser.js("return [...document.querySelectorAll('#tabs [role=tab]')].map(t => t.textContent)")
    assert tabs == ["Provenance", "Figures", "Cells"]
    text = browser.js("return document.getElementById('view-provenance').textContent")
    assert "sha256 verified on reading this source: all 8 files" in text and "rb201-embedded" in text
    browser.screenshot(shots, "provenance")
    for view in ("figures", "cells"):
        _show(browser, view)
        browser.screenshot(shots, view)
    assert browser.js("return performance.getEntriesByType('resource').length") == 0  # nothing was fetched
    assert browser.errors() == []


def test_figures_have_a_size_a_title_a_text_alternative_and_say_how_many_cells_they_use(browser, pages):
    browser.open(pages["jung2023"], "view=figures&ds=0")
    figs = browser.js("""return [...document.querySelectorAll('#view-figures figure.fig')].map(f => {
        const g = f.querySelector('svg, canvas'), r = g.getBoundingClientRect();
        const ids = (g.getAttribute('aria-labelledby') || '').split(' ').filter(Boolean);
        return {title: f.querySelector('h4').textContent, w: r.width, h: r.height, role: g.getAttribute('role'),
                alt: ids.map(i => document.getElementById(i).textContent).join(' '),
                note: (f.querySelector('.note') || {textContent: ''}).textContent,
                legend: !!f.querySelector('.legend') && !g.contains(f.querySelector('.legend'))};
    })""")
    idx = default_dataset().index("cifar10")
    assert len(figs) == 4 + len(idx.names)  # epsilon curves, corruptions, Kendall tau, params, one histogram each
    for f in figs:
        assert f["w"] > 50 and f["h"] > 50, f
        assert f["title"] and f["role"] == "img" and len(f["alt"]) > len(f["title"]), f
        assert any(w in f["note"] for w in ("classes", "cells")), f
    for f in figs[:4]:  # the figures with several marks have a legend, outside the plotting area
        assert f["legend"], f
    assert browser.errors() == []


def test_sorting_puts_the_best_first_dead_cells_last_and_reverses_on_a_second_click(browser, pages, shots):
    _open_cells(browser, pages["jung2023"])
    idx = default_dataset().index("cifar10")
    assert browser.js(ROWS)[:20] == _best_first(idx, "clean", True)[:20]  # the table opens sorted by clean accuracy
    browser.driver.find_element(By.CSS_SELECTOR, "#cells-table th button[title^='FGSM, eps 1/255']").click()
    browser.wait("return document.querySelector('#cells-table th[aria-sort]').textContent.startsWith('fgsm@1')")
    rows = browser.js(ROWS)
    best = _best_first(idx, "fgsm@1", True)
    assert rows[:20] == best[:20] and rows[0] == 655  # PROTOCOL.md: the best FGSM(1/255) cell of the data
    cell = browser.js("return document.querySelector('#cells-table tbody tr:not(.spacer)').children[5].textContent")
    assert cell == f"{idx.value(655, idx.col['fgsm@1']):.3f}" == "0.692"  # three decimals, as the CLI prints
    browser.screenshot(shots, "sorted-by-fgsm1", full=False)
    browser.driver.find_element(By.CSS_SELECTOR, "#cells-table th[aria-sort] button").click()
    browser.wait(
        "return document.querySelector('#cells-table th[aria-sort]').getAttribute('aria-sort') === 'ascending'"
    )
    worst = _best_first(idx, "fgsm@1", False)
    assert browser.js(ROWS)[:20] == worst[:20]
    dead = {i for i in unique_indices() if Arch.from_index(i).is_dead}
    assert not set(worst[:20]) & dead and set(worst[-len(dead) :]) == dead  # dead cells last either way
    assert browser.errors() == []


def test_filtering_keeps_the_rows_rb201_table_where_keeps(browser, pages, shots):
    _open_cells(browser, pages["jung2023"])
    where = "params<0.5 and clean>0.9"
    box = browser.driver.find_element(By.CSS_SELECTOR, "#view-cells input.wide")
    box.send_keys(where, Keys.ENTER)
    browser.wait(f"return {COUNT_JS}.includes('filtered by')")
    n = len(select(default_dataset().index("cifar10"), ["clean"], where=where, unique=True).indices)
    assert 0 < n < 6466
    assert browser.js(COUNT).startswith(f"{n:,} of 6,466 classes shown")
    rows = browser.js(ROWS)
    idx = default_dataset().index("cifar10")
    assert all(idx.value(i, idx.col["params"]) < 0.5 and idx.value(i, idx.col["clean"]) > 0.9 for i in rows)
    browser.screenshot(shots, "filtered", full=False)
    box.clear()
    box.send_keys("nonsense<1", Keys.ENTER)
    browser.wait("return document.getElementById('where-error').textContent.length > 0")
    assert "unknown column 'nonsense'" in browser.js("return document.getElementById('where-error').textContent")
    assert browser.errors() == []


def test_a_cells_detail_view_shows_its_diagram_curves_and_class_members(browser, pages, shots):
    _open_cells(browser, pages["jung2023"])
    search = browser.driver.find_element(By.CSS_SELECTOR, "#view-cells input[type=search]")
    search.send_keys("1462")
    browser.wait(f"return {ROWS_JS}.length === 1")
    browser.driver.find_element(By.CSS_SELECTOR, "#cells-table tbody button.link").click()
    browser.wait("return document.getElementById('cell') && document.getElementById('cell').open")
    got = browser.js("""const d = document.getElementById('cell');
        return {title: d.querySelector('h2').textContent, nodes: d.querySelectorAll('figure svg circle').length,
                members: [...d.querySelectorAll('.members > *')].map(e => Number(e.textContent.slice(1))),
                figs: [...d.querySelectorAll('figure h4')].map(h => h.textContent),
                values: d.querySelectorAll('table.data tbody tr').length}""")
    reps = representative_indices()
    assert got["title"] == "Cell #1462 on CIFAR-10"
    assert got["members"] == [i for i in range(15625) if reps[i] == reps[1462]]
    assert got["nodes"] >= 4 and any("robust accuracy against epsilon" in t for t in got["figs"])
    assert any("corruptions, by severity" in t for t in got["figs"])
    browser.screenshot(shots, "cell-1462", full=False)
    browser.driver.find_element(By.CSS_SELECTOR, "#cell").send_keys(Keys.ESCAPE)  # the dialog closes from the keyboard
    browser.wait("return !document.getElementById('cell').open")
    assert browser.errors() == []


def test_tabs_and_sorting_work_from_the_keyboard(browser, pages):
    browser.open(pages["jung2023"])
    browser.driver.find_element(By.ID, "tab-provenance").send_keys(Keys.ARROW_RIGHT)
    browser.wait(
        "return document.activeElement.id === 'tab-figures' && !document.getElementById('view-figures').hidden"
    )
    browser.driver.switch_to.active_element.send_keys(Keys.ARROW_RIGHT)
    browser.wait("return !document.getElementById('view-cells').hidden")
    header = browser.driver.find_element(By.CSS_SELECTOR, "#cells-table th button[title^='PGD, eps 1/255']")
    header.send_keys(Keys.ENTER)
    browser.wait("return (document.querySelector('#cells-table th[aria-sort]') || {}).textContent === 'pgd@1'")
    assert browser.js(ROWS)[0] == _best_first(default_dataset().index("cifar10"), "pgd@1", True)[0]
    assert browser.errors() == []


def test_the_print_stylesheet_shows_every_view_without_controls(browser, pages, shots):
    browser.open(pages["jung2023"])
    browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        got = browser.js("""return {nav: getComputedStyle(document.getElementById('tabs')).display,
            views: [...document.querySelectorAll('section.view')].map(s => getComputedStyle(s).display),
            printed: document.querySelectorAll('.print-only table tbody tr').length,
            table: getComputedStyle(document.querySelector('.vt')).display}""")
        browser.screenshot(shots, "print", full=True)
    finally:
        browser.driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert got["nav"] == "none" and got["table"] == "none" and "none" not in got["views"] and got["printed"] == 50


def test_a_rebuilt_dataset_is_compared_with_the_published_table(browser, pages, shots):
    browser.open(pages["rebuilt"], "view=compare")
    text = browser.js("return document.getElementById('view-compare').textContent")
    row = browser.js("""return [...document.querySelectorAll('#view-compare table.data tbody tr')]
        .map(tr => [...tr.children].map(td => td.textContent)).find(r => r[0] === 'fgsm@1')""")
    n = int(row[1].replace(",", ""))
    assert row[3] == f"{SHIFT * len(SHIFTED) / n:.3f}" and row[5] == f"{SHIFT:.3f}"  # mean and largest |a - b|
    worst = {int(w.split(" ")[0][1:]) for w in row[6].split("), ")}
    assert len(worst) == 3 and worst <= set(SHIFTED)
    assert "CIFAR-10" in text
    browser.screenshot(shots, "compare")
    _show(browser, "provenance")
    assert "rebuilt" in browser.js("return document.getElementById('view-provenance').textContent")
    assert browser.errors() == []
