"""Time `tokenspy report` on a 1,000,000-row DB: SQL aggregation, text and HTML rendering.

    python benchmarks/bench_report.py [--rows N] [--db PATH]

The DB is built with one executemany in one transaction, in a temporary directory removed at
exit, or at --db PATH (kept, and reused by later runs).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tokenspy import store
from tokenspy.reporting.data import ReportData
from tokenspy.reporting.html import render_html
from tokenspy.reporting.text import render_text

STACKS = [
    ["app.main", "pipeline.run", "agents.plan"],
    ["app.main", "pipeline.run", "agents.plan", "tools.search"],
    ["app.main", "pipeline.run", "agents.write"],
    ["app.main", "pipeline.run", "agents.write", "agents.critique"],
    ["app.main", "ingest.embed"],
    ["worker.loop", "summarize.chunk"],
    ["worker.loop", "summarize.merge"],
    ["tests.test_agents::test_plan", "agents.plan"],
]
MODELS = [
    ("openai", "gpt-4o-mini", True),
    ("openai", "gpt-4o", True),
    ("anthropic", "claude-3-5-sonnet-20241022", True),
    ("google", "gemini-1.5-flash", True),
    ("acme", "acme-large-v2", False),
]


def _rows(n: int, seed: int = 7) -> Iterator[tuple]:
    """Rows in the column order of store.COLUMNS."""
    rng = random.Random(seed)
    stacks = [(s[-1], json.dumps(s)) for s in STACKS]
    start = time.time() - 30 * 86400
    commits = [f"{rng.getrandbits(160):040x}" for _ in range(20)]
    for i in range(n):
        fn, stack_json = stacks[i % len(stacks)]
        provider, model, priced = MODELS[(i // 3) % len(MODELS)]
        inp, out = rng.randrange(50, 8000), rng.randrange(10, 2000)
        cost = (inp * 2.5 + out * 10.0) / 1e6 if priced else 0.0
        yield (
            fn, stack_json, model, provider, inp, out, cost, rng.uniform(100, 3000), start + i * 2.5,
            f"session-{i // 5000}", commits[i * len(commits) // n],
            inp // 4, 0, out // 8, int(priced), None, "src/app.py", 42, None, "bench", f"bench-{i}",
        )


def build_db(path: Path, n: int) -> None:
    conn = store.open_writable(path)
    try:
        sql = (
            f"INSERT INTO llm_calls ({', '.join(store.COLUMNS)}) "
            f"VALUES ({', '.join('?' for _ in store.COLUMNS)})"
        )
        with store.transaction(conn):
            conn.executemany(sql, _rows(n))
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _timed(label: str, fn):
    t0 = time.perf_counter()
    result = fn()
    print(f"{label:<28} {time.perf_counter() - t0:8.3f} s")
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, help="reuse (or create) this DB instead of a temporary one")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = args.db or Path(tmp) / "bench.db"
        if not db.exists():
            _timed(f"build DB ({args.rows:,} rows)", lambda: build_db(db, args.rows))
        print(f"DB size                      {db.stat().st_size / 1e6:8.1f} MB")
        data = _timed("ReportData.from_db", lambda: ReportData.from_db(db))
        print(f"calls in DB                  {data.totals.calls:>8,}")
        _timed("render_text", lambda: render_text(data))
        page = _timed("render_html", lambda: render_html(data))
        print(f"HTML size                    {len(page.encode()):>8,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
