"""Several processes, one budget: 4 processes × 500 calls through real OpenAI clients (each over
its own ``httpx2.MockTransport`` that counts the requests it receives) against one SQLiteStore.

A call is sent only if the committed spend is under the budget; its cost is added and the total
read back in one ``BEGIN IMMEDIATE`` transaction. So the requests sent overall exceed what one
process alone would send by at most the calls in flight in the other processes (≤ 3 here), and
every request sent is recorded (spend and ``llm_calls``).

This file is also the child program: ``python test_toll_race.py DB START READY N BUDGET DELAY``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
SRC = TESTS.parent / "src"
PROCESSES = 4
CALLS = 500
MSG = [{"role": "user", "content": "hi"}]


def child(db: str, start: str, ready: str, n: int, budget: float, delay: float) -> None:
    sys.path.insert(0, str(TESTS))
    from tokenspy import BudgetExceededError, CostReporter, SQLiteStore, set_reporter, set_store, track_costs
    from wire import Wire, openai_clients

    wire = Wire()

    def slow(request, body):  # a provider that takes a moment: calls overlap across processes
        time.sleep(delay)
        return wire.default(request, body)

    wire.routes["/chat/completions"] = slow
    client, _ = openai_clients(wire)
    store = SQLiteStore(db)
    set_store(store)
    set_reporter(CostReporter(enabled=False))

    @track_costs(project="race", max_budget=budget)
    def chat():
        return client.chat.completions.create(model="gpt-4o", messages=MSG)

    Path(ready).touch()
    while not os.path.exists(start):
        time.sleep(0.001)
    ok = refused = exceeded = 0
    for _ in range(n):
        before = wire.count
        try:
            chat()
            ok += 1
        except BudgetExceededError:
            if wire.count == before:
                refused += 1  # pre-call: nothing sent
            else:
                exceeded += 1  # post-call: sent, paid, recorded, then raised
    store.close()
    print(json.dumps({"sent": wire.count, "ok": ok, "refused": refused, "exceeded": exceeded}))


def test_four_processes_overshoot_by_at_most_the_calls_in_flight(tmp_path):
    from tokenspy import pricing

    cost = pricing.calculate("gpt-4o", 1200, 300, cached_input_tokens=1024, reasoning_tokens=128,
                             provider="openai")
    allowed = 101  # one process alone: 100 calls spent < 100.5 × cost, the 101st exceeds
    budget = cost * 100.5
    db = tmp_path / "race.db"
    start = tmp_path / "start"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), str(TESTS)])}
    procs = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, __file__, str(db), str(start), str(ready), str(CALLS), repr(budget), "0.002"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )))
    deadline = time.monotonic() + 60
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "children did not start"
        assert all(p.poll() is None for _, p in procs), [p.communicate() for _, p in procs]
        time.sleep(0.01)
    start.touch()
    results = []
    for _, p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    sent = sum(r["sent"] for r in results)
    overshoot = sent - allowed
    print(f"\nrace: {PROCESSES} processes × {CALLS} calls, budget {budget:.6f} "
          f"(single-process allowance {allowed} calls): sent {sent} "
          f"(per process {[r['sent'] for r in results]}), overshoot {overshoot}")
    assert 0 <= overshoot <= PROCESSES - 1
    # every process attempted all its calls; the others were refused before sending
    assert all(r["ok"] + r["refused"] + r["exceeded"] == CALLS for r in results)
    assert all(r["sent"] == r["ok"] + r["exceeded"] for r in results)
    assert sum(r["refused"] for r in results) == PROCESSES * CALLS - sent
    conn = sqlite3.connect(db)
    try:
        spent, calls = conn.execute(
            "SELECT spent_usd, calls FROM budget_spend WHERE project='race' AND period='all'"
        ).fetchone()
        rows = conn.execute("SELECT COUNT(*), SUM(cost_usd) FROM llm_calls WHERE project='race'").fetchone()
    finally:
        conn.close()
    assert calls == sent and rows[0] == sent  # nothing that was paid for went unrecorded
    assert spent == pytest.approx(sent * cost) and rows[1] == pytest.approx(sent * cost)


if __name__ == "__main__":
    db, start, ready, n, budget, delay = sys.argv[1:7]
    child(db, start, ready, int(n), float(budget), float(delay))
