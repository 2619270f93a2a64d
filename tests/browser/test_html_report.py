"""The HTML report of a diff in headless Chromium: it renders, logs no console error, and its
numbers are the diff's JSON numbers (real SQLite DBs, diffed as the action does)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tokenspy.ci.api import annotate_cost_diff
from tokenspy.ci.markdown import Extras, headline
from tokenspy.record import CallRecord
from tokenspy.reporting.data import ReportData
from tokenspy.reporting.diff_html import render_diff_html
from tokenspy.reporting.html import render_html
from tokenspy.store import write_records


def _db(path: Path, scale: float, extra: bool) -> Path:
    now = time.time()

    def rec(fn: str, test: str, model: str, inp: int, out: int) -> CallRecord:
        return CallRecord(function_name=fn, model=model, provider="openai", input_tokens=inp, output_tokens=out,
                          cost_usd=inp * 2.5e-6, duration_ms=3.0, timestamp=now, test_id=test, run_id="r",
                          call_stack=["tests.test_app.test_" + fn.split(".")[-1], "app.pipeline", fn])

    records = [rec("app.summarize", "tests/test_app.py::test_summarize", "gpt-4o", int(2000 * scale), 100),
               rec("app.classify", "tests/test_app.py::test_classify", "gpt-4o-mini", 300, 5),
               rec("app.legacy" if not extra else "app.rerank", "tests/test_app.py::test_x", "gpt-4o", 500, 50)]
    write_records(path, records)
    return path


def _console_errors(browser) -> list[dict]:
    return [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]


ROWS_JS = """
return Array.from(document.querySelectorAll('table.diff tbody tr')).map(tr => {
  const cell = (sel) => {
    const c = tr.querySelector(sel);
    return c ? [c.getAttribute(sel.slice(3, -1)), c.textContent] : null;
  };
  return {kind: tr.dataset.kind, key: tr.dataset.key, base: cell('td[data-base-usd]'),
          head: cell('td[data-head-usd]'), delta: cell('td[data-delta-usd]')};
});
"""


def test_diff_report_renders_without_console_error_and_matches_the_json(browser, tmp_path):
    from tokenspy.ci import fmt

    base = _db(tmp_path / "base.db", 1.0, extra=False)
    cur = _db(tmp_path / "cur.db", 3.0, extra=True)
    d = annotate_cost_diff(cur, base, format=None, github=False, pyproject=False)
    data = json.loads(json.dumps(d.as_dict()))
    page = tmp_path / "report.html"
    page.write_text(render_diff_html(d, headline=headline(d, Extras("This PR")), base_data=ReportData.from_db(base),
                                     head_data=ReportData.from_db(cur)), encoding="utf-8")
    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(page.as_uri())
    assert browser.title == "tokenspy cost diff"
    assert _console_errors(browser) == []
    rows = browser.execute_script(ROWS_JS)
    expected = {(k[:-1], r["key"]): r for k in ("functions", "tests", "models") for r in data[k]}
    assert {(r["kind"], r["key"]) for r in rows} == set(expected)
    for r in rows:
        want = expected[(r["kind"], r["key"])]
        for side, cell in (("baseline", r["base"]), ("current", r["head"])):
            if want[side] is None:
                assert cell is None or cell[0] == ""
                continue
            assert float(cell[0]) == want[side]["cost_usd"]
            assert cell[1] == fmt.usd(want[side]["cost_usd"])
        assert float(r["delta"][0]) == want["delta_usd"] and r["delta"][1] == fmt.signed_usd(want["delta_usd"])
    total = browser.execute_script("return [document.querySelector('[data-total-head]').dataset.totalHead,"
                                   " document.querySelector('[data-total-base]').dataset.totalBase]")
    assert None not in total, browser.execute_script("return document.querySelector('header').outerHTML")
    assert [float(x) for x in total] == [data["total"]["current"]["cost_usd"], data["total"]["baseline"]["cost_usd"]]
    # both flame graphs, and zooming one leaves the other alone
    assert browser.execute_script("return document.querySelectorAll('.flame').length") == 2
    browser.execute_script("document.querySelector('#flame-head .c .l').click()")
    assert browser.execute_script("return document.querySelectorAll('#flame-head .f.z').length") >= 1
    assert browser.execute_script("return document.querySelectorAll('#flame-base .f.z').length") == 0
    assert _console_errors(browser) == []


def test_plain_report_has_a_by_test_section(browser, tmp_path):
    db = _db(tmp_path / "u.db", 1.0, extra=False)
    page = tmp_path / "plain.html"
    page.write_text(render_html(ReportData.from_db(db)), encoding="utf-8")
    browser.get_log("browser")
    browser.get(page.as_uri())
    headings = browser.execute_script("return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)")
    assert "By test" in headings
    tests = browser.execute_script(
        "const h = Array.from(document.querySelectorAll('h2')).find(h => h.textContent === 'By test');"
        "return Array.from(h.parentNode.querySelectorAll('tbody tr td:first-child')).map(td => td.textContent)")
    assert tests[0] == "tests/test_app.py::test_summarize" and len(tests) == 3
    assert _console_errors(browser) == []
