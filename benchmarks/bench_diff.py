"""Time ``tokenspy diff CUR BASE --format json`` on two 1M-row DBs against a bare GROUP BY.

    python benchmarks/bench_diff.py [--rows N] [--dir DIR] [--repeat K]

Builds (or reuses, in DIR, default a fixed tmp dir) the current and baseline DBs with
make_big_db.py (rows rolled up at write time, as tokenspy writes them), then, in one run, K times
each: the CLI end to end in a subprocess (``python -m tokenspy``: interpreter start, imports,
SQL, pricing, roll-up, JSON), and a bare ``SELECT function_name, model, SUM(...) ... GROUP BY
function_name, model`` over the same two files in this process. Prints the best and median of
each and their ratio (targets: CLI <= 2 s, ratio <= 2), plus the CPU seconds of the CLI
(user+sys of the child), which is what to compare on a busy machine. Then the CLI again on
copies of the two DBs without the write-time roll-up (``llm_rollup`` dropped: how a DB of the
original tool or of an older tokenspy is read, one raw GROUP BY per side), and the roll-up's
size. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import make_big_db
from tokenspy import rollup, store

BARE = (
    "SELECT function_name, model, COUNT(*), SUM(input_tokens), SUM(cached_input_tokens), "
    "SUM(cache_write_tokens), SUM(output_tokens), SUM(reasoning_tokens) "
    "FROM llm_calls GROUP BY function_name, model"
)


def _drop_sidecars(path: Path) -> None:
    """A -wal/-shm left beside a DB (a reader or writer that died) would push every later read
    onto the slower locking path: the last connection to close checkpoints them away."""
    if any(Path(f"{path}{sfx}").exists() for sfx in ("-wal", "-shm")):
        conn = sqlite3.connect(path)
        conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        conn.close()


def _state(path: Path) -> tuple[int | None, int | None]:
    """(MAX(id), rollup_to or None) of a DB, opened without writing."""
    with closing(store.open_readonly(path)) as conn:
        return conn.execute("SELECT MAX(id) FROM llm_calls").fetchone()[0], rollup.mark(conn)


def rollup_rows(path: Path) -> int:
    with closing(store.open_readonly(path)) as conn:
        return conn.execute(f"SELECT COUNT(*) FROM {rollup.TABLE}").fetchone()[0]


def ensure(path: Path, rows: int, seed: int, shift: float) -> None:
    if path.exists():
        _drop_sidecars(path)
        # store.open_readonly: a plain mode=ro open of a WAL DB leaves -wal/-shm files behind,
        # which would push every later read (ours and the bare one) onto the slower locking path
        if _state(path) == (rows, rows):  # all rows, all rolled up
            return
        path.unlink()
    t = time.perf_counter()
    make_big_db.build(rows, path, seed=seed, cost_shift=shift)
    print(f"built {path} ({rows:,} rows) in {time.perf_counter() - t:.1f} s")


def ensure_raw(src: Path) -> Path:
    """A copy of ``src`` without the roll-up (kept beside it while newer than it)."""
    raw = src.with_name(f"{src.stem}-norollup.db")
    if raw.exists():
        _drop_sidecars(raw)
        if raw.stat().st_mtime >= src.stat().st_mtime and _state(raw) == (_state(src)[0], None):
            return raw
        raw.unlink()
    t = time.perf_counter()
    shutil.copyfile(src, raw)
    conn = sqlite3.connect(raw, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rollup.drop(conn)
        conn.execute("PRAGMA user_version = 3")  # as tokenspy before the roll-up wrote it
        conn.execute("COMMIT")
    finally:
        conn.close()
    print(f"copied {src.name} without its roll-up to {raw} in {time.perf_counter() - t:.1f} s")
    return raw


def bare(paths: list[Path]) -> float:
    t = time.perf_counter()
    for p in paths:
        conn = store.open_readonly(p)
        conn.execute(BARE).fetchall()
        conn.close()
    return time.perf_counter() - t


def cli(cur: Path, base: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tokenspy", "diff", str(cur), str(base), "--format", "json"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "GITHUB_ACTIONS": ""})
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"tokenspy diff failed ({proc.returncode}): {proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "tokenspy-bench"))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    cur, base = d / f"current-{args.rows}.db", d / f"baseline-{args.rows}.db"
    ensure(base, args.rows, seed=1, shift=1.0)
    ensure(cur, args.rows, seed=1, shift=1.2)
    raw_cur, raw_base = ensure_raw(cur), ensure_raw(base)

    cli(cur, base)  # warm the page cache and the import caches
    bare([cur, base])
    cli_walls, cli_cpus, bare_walls = [], [], []
    for _ in range(args.repeat):
        w, c = cli(cur, base)
        cli_walls.append(w)
        cli_cpus.append(c)
        bare_walls.append(bare([cur, base]))
    best_cli, best_bare = min(cli_walls), min(bare_walls)
    print(f"rows per DB: {args.rows:,}   cpus: {os.cpu_count()}   load avg: {os.getloadavg()[0]:.1f}")
    print(f"tokenspy diff --format json (CLI, subprocess): best {best_cli:.3f} s  "
          f"median {statistics.median(cli_walls):.3f} s  cpu {min(cli_cpus):.3f} s")
    print(f"bare GROUP BY function_name, model (2 files):  best {best_bare:.3f} s  "
          f"median {statistics.median(bare_walls):.3f} s")
    print(f"ratio (best/best): {best_cli / best_bare:.2f}x   "
          f"ratio (median/median): {statistics.median(cli_walls) / statistics.median(bare_walls):.2f}x")
    print(f"targets: CLI <= 2 s: {'met' if best_cli <= 2 else 'MISSED'}; "
          f"<= 2x bare: {'met' if best_cli <= 2 * best_bare else 'MISSED'}")

    cli(raw_cur, raw_base)  # warm the page cache for the copies
    raw_walls, raw_cpus = [], []
    for _ in range(args.repeat):
        w, c = cli(raw_cur, raw_base)
        raw_walls.append(w)
        raw_cpus.append(c)
    print(f"WITHOUT roll-up (copies with llm_rollup dropped, as the original tool's or an older tokenspy's "
          f"DBs): tokenspy diff --format json (CLI, subprocess): best {min(raw_walls):.3f} s  "
          f"median {statistics.median(raw_walls):.3f} s  cpu {min(raw_cpus):.3f} s  "
          f"({min(raw_walls) / best_bare:.2f}x bare)")
    print(f"roll-up size: {rollup_rows(cur):,} rows in {cur.name}, {rollup_rows(base):,} rows in {base.name} "
          f"(for {args.rows:,} calls each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
