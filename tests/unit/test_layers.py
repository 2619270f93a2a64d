"""The package's shape: a pure-Python package whose imports point one way (data types at the
bottom, then context/pricing/store, then recorder/tracker, then interceptors and the public API;
CI and reporting read data and never the recorder)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "tokenspy"

_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts" / "import_graph.py")
import_graph = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(import_graph)  # type: ignore[union-attr]

EDGES = import_graph.graph(SRC)


def reaches(start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for nxt in EDGES.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_the_import_graph_has_no_cycle():
    assert import_graph.cycles(EDGES) == []


def test_the_graph_sees_imports_inside_functions_and_skips_type_checking(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from pkg import b\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import c\n"
                              "from pkg.a import f\n")
    (pkg / "c.py").write_text("")
    edges = import_graph.graph(pkg)
    assert edges["pkg.a"] == {"pkg.b"} and edges["pkg.b"] == {"pkg.a"}
    assert import_graph.cycles(edges) == [["pkg.a", "pkg.b"]]


def test_data_types_import_nothing_of_tokenspy_but_errors():
    assert EDGES["tokenspy.record"] <= {"tokenspy.errors"}
    assert EDGES["tokenspy.errors"] == set()


def test_lower_layers_never_reach_the_recorder_or_the_interceptors():
    upper = {"tokenspy.recorder", "tokenspy.interceptor", "tokenspy.api", "tokenspy.profile", "tokenspy.session"}
    for low in ("tokenspy.record", "tokenspy.context", "tokenspy.pricing", "tokenspy.store", "tokenspy.tracker"):
        assert not (reaches(low) & upper), low


def test_ci_and_reporting_read_data_never_the_recorder():
    recording = {"tokenspy.recorder", "tokenspy.tracker", "tokenspy.context", "tokenspy.interceptor",
                 "tokenspy.session", "tokenspy.profile"}
    for mod in EDGES:
        if mod.startswith(("tokenspy.ci", "tokenspy.reporting")):
            assert not (reaches(mod) & recording), mod


def test_pure_python_no_extension_sources():
    assert not [p for p in SRC.rglob("*") if p.suffix in (".c", ".cpp", ".pyx", ".so")]
    assert not (ROOT / "setup.py").exists()
    assert len((SRC / "recorder.py").read_text().splitlines()) <= 250


def test_the_recorder_knows_exporters_only_through_sinks():
    # an exporter is a sink of CallRecords: above the recorder, never below it
    assert EDGES["tokenspy.sinks"] == set()
    assert "tokenspy.sinks" in EDGES["tokenspy.recorder"]
    assert not {m for m in reaches("tokenspy.recorder") if m.startswith("tokenspy.export")}
    for low in ("tokenspy.record", "tokenspy.context", "tokenspy.pricing", "tokenspy.store", "tokenspy.tracker"):
        assert not {m for m in reaches(low) if m.startswith("tokenspy.export")}, low
