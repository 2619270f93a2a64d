"""What the pytest plugin reads back from its DB: the terminal summary, one run's rows."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from tokenspy import rollup, store


def _money(x: float) -> str:
    return f"${x:,.4f}" if x >= 0.01 or x == 0 else f"${x:.6f}"


def summary_lines(db: Path, run_id: str, top: int = 10) -> list[str]:
    """Lines for the end of a test run; [] when the run made no LLM call."""
    if not db.exists():
        return []
    with closing(store.open_readonly(db)) as conn:
        calls, cost, tin, tout = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0),"
            " COALESCE(SUM(output_tokens), 0) FROM llm_calls WHERE run_id = ?", (run_id,)
        ).fetchone()
        if not calls:
            return []
        tests = conn.execute(
            "SELECT COALESCE(test_id, '(outside tests)'), COUNT(*), SUM(input_tokens + output_tokens),"
            " SUM(cost_usd) FROM llm_calls WHERE run_id = ? GROUP BY 1 ORDER BY 4 DESC, 1 LIMIT ?",
            (run_id, max(top, 0)),
        ).fetchall()
        unpriced = conn.execute(
            "SELECT model, COUNT(*), SUM(input_tokens + output_tokens) FROM llm_calls"
            " WHERE run_id = ? AND priced = 0 GROUP BY model ORDER BY model", (run_id,)
        ).fetchall()
    lines = [f"{calls} LLM call(s), {tin + tout:,} tokens ({tin:,} in / {tout:,} out), total {_money(cost)}"]
    if tests:
        lines.append(f"top {len(tests)} test(s) by cost:")
        for name, n, tokens, c in tests:
            shown = name if len(name) <= 80 else "…" + name[-79:]
            lines.append(f"  {_money(c):>12}  {n:>5} call(s)  {tokens:>10,} tok  {shown}")
    for model, n, tokens in unpriced:
        lines.append(f"unpriced model {model!r}: {n} call(s), {tokens:,} tokens at $0 "
                     "(add it under [tool.tokenspy.prices])")
    lines.append(f"DB: {db}")
    return lines


def extract_run(db: Path, run_id: str, out: Path) -> Path:
    """Copy one run's rows of ``db`` into a new DB at ``out`` (``db`` is only read)."""
    conn_out = store.open_writable(out)
    try:
        if db.exists():
            with closing(store.open_readonly(db)) as src:
                cols = ", ".join(c for c in store.COLUMNS if c in store.columns_of(src))
                rows = src.execute(f"SELECT {cols} FROM llm_calls WHERE run_id = ?", (run_id,)).fetchall()
            with store.transaction(conn_out):
                conn_out.executemany(
                    f"INSERT INTO llm_calls ({cols}) VALUES ({', '.join('?' for _ in cols.split(', '))})", rows
                )
                rollup.roll_up(conn_out)
    finally:
        conn_out.close()
    return out
