"""Which runs of a DB one side of the diff stands for. Pure: no I/O.

A DB keeps every run (``pytest --tokenspy`` appends), of whatever code was in the work tree.
Only runs of identical code are repeats that may be averaged: same commit AND same fingerprint
of the uncommitted changes (``tokenspy.runs``). So a side is:

- the run asked for (``--run``), alone;
- else the runs of ONE code state: that of the latest run (with ``clean``, as ``compare`` asks:
  the latest run without uncommitted changes, when the commit has one). Several runs of that
  state are repeats and are averaged; runs of other states are left out, and a note says so.

Runs with no row in ``runs`` (an older tokenspy's, or calls made outside pytest) are derived
from ``llm_calls``: their commit is known, their work tree is not, so they are a state of their
own per commit (as every run of a commit was before the table existed), never a repeat of a
recorded run. Which of them is the latest is known only when the newest row is theirs; otherwise
all of them are taken together, as before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from tokenspy.ci.query import Group
from tokenspy.gitstate import CLEAN
from tokenspy.runs import Run

UNKNOWN_STATE = None  # fingerprint of a derived run: its work tree is unknown


@dataclass(frozen=True)
class Selection:
    runs: frozenset[str | None]  # the run ids the side is made of
    zero_call_runs: tuple[str | None, ...]  # of those, the ones without rows (recorded, $0)
    state: str  # the code state, for the report
    notes: tuple[str, ...]
    empty: bool  # the DB holds no run at all (no rows, no recorded run)


def describe(commit: str | None, fingerprint: str | None) -> str:
    where = "no git commit" if commit is None else commit[:12]
    if fingerprint is UNKNOWN_STATE:
        return where
    if fingerprint == CLEAN:
        return f"{where} (clean)"
    return f"{where} + uncommitted changes {fingerprint[:8]}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def select(groups: Iterable[Group], recorded: Mapping[str, Run], last: tuple[str | None, float | None] | None,
           *, label: str, commit: str | None = None, run: str | None = None, clean: bool = False) -> Selection:
    """The runs of one side (see the module docstring). ``groups`` are the side's rows grouped
    (already restricted to ``commit``); ``recorded`` the DB's ``runs`` rows; ``last`` the run id
    and time of the DB's newest row. Raises ValueError for a ``run`` the DB does not hold."""
    calls: dict[str | None, int] = {}
    commits: dict[str | None, set[str | None]] = {}
    for g in groups:
        calls[g.run] = calls.get(g.run, 0) + g.calls
        commits.setdefault(g.run, set()).add(g.commit)
    runs: dict[str | None, Run] = {}
    for rid, r in recorded.items():
        if commit is None or r.commit == commit:
            runs[rid] = r
    for rid, seen in commits.items():
        if rid not in runs:
            one = next(iter(seen)) if len(seen) == 1 else None
            runs[rid] = Run(rid, one, None, UNKNOWN_STATE, None, calls[rid])
    if not runs:
        if run is not None:
            raise ValueError(f"run {run!r} is not in {label}")
        return Selection(frozenset(), (), "no run", (), empty=True)
    if run is not None:
        if run not in runs:
            raise ValueError(f"run {run!r} is not in {label}")
        r = runs[run]
        return Selection(frozenset([run]), () if calls.get(run) else (run,), describe(r.commit, r.fingerprint),
                         (), empty=False)

    notes: list[str] = []
    candidates = list(runs.values())
    if clean:
        dirty = [r for r in candidates if r.dirty]
        kept = [r for r in candidates if not r.dirty]
        if dirty and kept:
            candidates = kept
            notes.append(f"{label}: left out {_plural(len(dirty), 'run')} with uncommitted changes "
                         f"(only clean runs of a commit are compared)")
        elif dirty:
            notes.append(f"{label}: every run of this commit had uncommitted changes; the latest one's code is used")
    chosen_state = _latest(candidates, last).state
    chosen = [r for r in candidates if r.state == chosen_state]
    others = [r for r in candidates if r.state != chosen_state]
    state = describe(*chosen_state)
    if others:
        n_states = len({r.state for r in candidates})
        notes.append(
            f"{label} holds runs of {n_states} code states; used {_plural(len(chosen), 'run')} of {state} "
            f"(the latest), left out {_plural(len(others), 'run')} of other code")
    ids = frozenset(r.run_id for r in chosen)
    return Selection(ids, tuple(sorted((r for r in ids if not calls.get(r)), key=lambda x: x or "")), state,
                     tuple(notes), empty=False)


def _latest(candidates: list[Run], last: tuple[str | None, float | None] | None) -> Run:
    recorded = [r for r in candidates if r.recorded]
    newest = max(recorded, key=lambda r: (r.started_at or 0.0, r.run_id or "")) if recorded else None
    by_id = {r.run_id: r for r in candidates}
    if last is not None and last[0] in by_id and not by_id[last[0]].recorded:
        derived = by_id[last[0]]
        # a derived run's newest row against the newest recorded run's start
        if newest is None or (last[1] or 0.0) > (newest.started_at or 0.0):
            return derived
    if newest is not None:
        return newest
    # derived runs only, none of them known to be the latest: take them all (one state per commit)
    return max(candidates, key=lambda r: (r.commit or "", r.run_id or ""))
