"""Time ``tokenspy history`` on a 1M-row DB (target <= 0.1 s).

    python benchmarks/bench_history.py [--rows N] [--dir DIR] [--repeat K]

Reuses (or builds with make_big_db.py) the current DB of bench_diff.py. Prints, best and median
of K runs: the command in-process (``tokenspy.cli.main``: what the command itself costs, imports
warm), and end to end in a subprocess (``python -m tokenspy history``: plus interpreter start).
Nothing is asserted. Falls back to timing ``tokenspy diff --format json`` of the DB against
itself when ``history`` is not available in this checkout.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import bench_diff
from tokenspy.cli import build_parser, main


def has_history() -> bool:
    try:
        build_parser().parse_args(["history"])
    except SystemExit:
        return False
    try:
        from tokenspy.reporting.text import format_history
    except ImportError:
        try:
            from tokenspy.report.text import format_history  # noqa: F401
        except ImportError:
            return False
    return True


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main_() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--dir", default=os.path.join(tempfile.gettempdir(), "tokenspy-bench"))
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    d = Path(args.dir)
    d.mkdir(parents=True, exist_ok=True)
    db = d / f"current-{args.rows}.db"
    bench_diff.ensure(db, args.rows, seed=1, shift=1.2)

    argv = ["history", "--db", str(db)] if has_history() else ["diff", str(db), str(db), "--format", "json"]
    label = "tokenspy " + " ".join(argv[:1])
    if argv[0] != "history":
        print("tokenspy history is not available here: timing tokenspy diff of the DB against itself")

    def in_process() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            main(argv)

    def subproc() -> None:
        subprocess.run([sys.executable, "-m", "tokenspy", *argv], stdout=subprocess.DEVNULL, check=True)

    in_process()  # warm imports and the page cache
    inp = timed(in_process, args.repeat)
    sub = timed(subproc, args.repeat)
    print(f"rows: {args.rows:,}   load avg: {os.getloadavg()[0]:.1f}")
    print(f"{label} in-process : best {min(inp) * 1e3:.1f} ms  median {statistics.median(inp) * 1e3:.1f} ms")
    print(f"{label} subprocess : best {min(sub) * 1e3:.1f} ms  median {statistics.median(sub) * 1e3:.1f} ms")
    if argv[0] == "history":
        print(f"target <= 100 ms: in-process {'met' if min(inp) <= 0.1 else 'MISSED'}, "
              f"subprocess {'met' if min(sub) <= 0.1 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main_())
