"""Build a large, realistic tokenspy DB quickly: ``python benchmarks/make_big_db.py N PATH [--seed S]``.

Shape: ~200 profiled functions in 40 modules, ~500 tests, 6 models (one of them tiered, one
unpriced), 20 runs spread over 5 commits. Each test calls one to three functions, each function
sticks to one or two models, so the (function, test, model) groups are as sparse as in a real
suite. Rows go in through one ``executemany`` of plain tuples (no CallRecord objects), which
writes a million rows in a few seconds, then are rolled up in the same transaction
(``tokenspy.rollup.roll_up``, as the store does), so the DB is what tokenspy itself writes.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

from tokenspy import rollup, store

MODELS = (
    ("gpt-4o", "openai"),
    ("gpt-4o-mini", "openai"),
    ("claude-sonnet-4-20250514", "anthropic"),
    ("claude-3-5-haiku-latest", "anthropic"),
    ("gemini-2.5-pro", "google"),  # tiered above 200k input tokens
    ("acme-internal-llm", "custom"),  # no price known
)
N_FUNCTIONS = 200
N_TESTS = 500
N_RUNS = 20
N_COMMITS = 5


def build(n: int, path: str | Path, seed: int = 0, cost_shift: float = 1.0) -> int:
    """Write ``n`` rows to ``path`` (created/appended); ``cost_shift`` scales the token counts
    of every tenth function, to give a second DB something to diff."""
    rng = random.Random(seed)
    functions = []
    for i in range(N_FUNCTIONS):
        models = rng.sample(range(len(MODELS)), rng.choice((1, 1, 2)))
        functions.append(
            (f"app.mod{i % 40}.step_{i}", f"src/app/mod{i % 40}.py", 10 + (i // 40) * 30, models)
        )
    tests = []
    for j in range(N_TESTS):
        fns = rng.sample(range(N_FUNCTIONS), rng.choice((1, 2, 3)))
        tests.append((f"tests/test_mod{j % 50}.py::test_case_{j}", fns))
    commits = [f"{rng.getrandbits(160):040x}" for _ in range(N_COMMITS)]
    runs = [(f"run{r:02d}-{rng.getrandbits(32):08x}", commits[r * N_COMMITS // N_RUNS]) for r in range(N_RUNS)]
    stacks = {i: json.dumps([f[0]]) for i, f in enumerate(functions)}

    t0 = 1_750_000_000.0
    rows = []
    per_run = max(1, n // N_RUNS)
    for k in range(n):
        run_id, commit = runs[min(k // per_run, N_RUNS - 1)]
        test_id, fns = tests[rng.randrange(N_TESTS)]
        fi = fns[rng.randrange(len(fns))]
        name, src, line, models = functions[fi]
        model, provider = MODELS[models[rng.randrange(len(models))]]
        scale = cost_shift if fi % 10 == 0 else 1.0
        big = model == "gemini-2.5-pro" and rng.random() < 0.05
        inp = int((250_000 if big else rng.randint(200, 4000)) * scale)
        cached = rng.randint(0, inp // 2) if rng.random() < 0.3 else 0
        out = int(rng.randint(20, 800) * scale)
        reasoning = rng.randint(0, out) if model == "gemini-2.5-pro" else 0
        rows.append((
            name, stacks[fi], model, provider, inp, out, 0.0, rng.uniform(100, 3000), t0 + k,
            None, commit, cached, 0, reasoning, int(provider != "custom"), test_id, src, line,
            run_id, None, f"big-{seed}-{k}",
        ))
    conn = store.open_writable(path)
    try:
        with store.transaction(conn):
            conn.executemany(
                f"INSERT INTO llm_calls ({', '.join(store.COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(store.COLUMNS))})",
                rows,
            )
            rollup.roll_up(conn)
    finally:
        conn.close()  # the last close checkpoints the WAL away: readers then open it immutable
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", type=int)
    ap.add_argument("path")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cost-shift", type=float, default=1.0)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    written = build(args.n, args.path, args.seed, args.cost_shift)
    print(f"wrote {written:,} rows to {args.path} in {time.perf_counter() - t:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
