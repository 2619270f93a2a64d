"""Real OTLP receivers for the export tests, on loopback only.

- ``Phoenix``: the Arize Phoenix server from PyPI (``arize-phoenix``, pinned in
  tests/receiver-requirements.txt, installed by .ci/run into its own venv), started as a
  subprocess with its own working dir and ports; spans are read back through its REST API
  (``GET /v1/projects/{project}/spans``). It takes OTLP/HTTP traces, not metrics.
- ``OtlpSink``: a small OTLP/HTTP server that decodes what it receives with the OpenTelemetry
  protobuf definitions (``opentelemetry-proto``): the metrics Phoenix does not take, and the
  benchmark's loopback collector.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 90.0  # Phoenix takes ~15 s on a loaded 2-core machine; bounded all the same


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def phoenix_executable() -> str | None:
    """$TOKENSPY_PHOENIX, else the venv .ci/run installs it in, else `phoenix` on PATH."""
    named = os.environ.get("TOKENSPY_PHOENIX")
    if named:
        return named
    local = ROOT / ".ci" / ".phoenix" / "bin" / "phoenix"
    if local.exists():
        return str(local)
    return shutil.which("phoenix")


class Phoenix:
    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "phoenix.log"

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "PHOENIX_"))}
        env.update(
            PHOENIX_WORKING_DIR=str(self.workdir), PHOENIX_HOST="127.0.0.1", PHOENIX_PORT=str(self.port),
            PHOENIX_GRPC_PORT=str(free_port()), PHOENIX_TELEMETRY_ENABLED="false",
            PHOENIX_DISABLE_AGENT_ASSISTANT="true", PHOENIX_ALLOW_EXTERNAL_RESOURCES="false",
        )
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([self.executable, "serve"], cwd=self.workdir, env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"phoenix exited with {self.proc.returncode}: {self.tail()}")
            try:
                with urllib.request.urlopen(f"{self.base}/healthz", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"phoenix did not answer within {START_TIMEOUT_S:.0f} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def spans(self, project: str, expect: int | None = None, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Every span of ``project``, oldest first; with ``expect``, waits (bounded) until that
        many are there: Phoenix inserts what it receives in the background."""
        deadline = time.monotonic() + timeout
        while True:
            found = self._all_spans(project)
            if expect is None or len(found) >= expect or time.monotonic() > deadline:
                return sorted(found, key=lambda s: (s["start_time"], s["context"]["span_id"]))
            time.sleep(0.2)

    def _all_spans(self, project: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        cursor = None
        while True:
            query = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            url = f"{self.base}/v1/projects/{urllib.parse.quote(project)}/spans?{urllib.parse.urlencode(query)}"
            try:
                with urllib.request.urlopen(url, timeout=10) as r:
                    page = json.load(r)
            except urllib.error.HTTPError as exc:
                if exc.code == 404:  # no span of the project arrived yet: Phoenix makes it on the first
                    return []
                raise
            out.extend(page["data"])
            cursor = page.get("next_cursor")
            if not cursor:
                return out


class OtlpSink:
    """OTLP/HTTP on 127.0.0.1: decodes ``/v1/metrics`` and ``/v1/traces`` requests and keeps
    them (``keep=False``: counts spans only, for the benchmark)."""

    def __init__(self, keep: bool = True) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
        from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

        self.keep = keep
        self.metrics: list[Any] = []
        self.traces: list[Any] = []
        self.span_count = 0
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/v1/metrics"):
                    msg, reply = metrics_service_pb2.ExportMetricsServiceRequest(), \
                        metrics_service_pb2.ExportMetricsServiceResponse()
                elif self.path.endswith("/v1/traces"):
                    msg, reply = trace_service_pb2.ExportTraceServiceRequest(), \
                        trace_service_pb2.ExportTraceServiceResponse()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                msg.ParseFromString(body)
                with sink.lock:
                    if self.path.endswith("/v1/metrics"):
                        sink.metrics.append(msg)
                    else:
                        sink.span_count += sum(len(ss.spans) for rs in msg.resource_spans for ss in rs.scope_spans)
                        if sink.keep:
                            sink.traces.append(msg)
                data = reply.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def metric_points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of metric ``name`` received (cumulative
        temporality: the last export holds the totals)."""
        out = []
        with self.lock:
            last = self.metrics[-1:] if self.metrics else []
        for req in last:
            for rm in req.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name != name:
                            continue
                        points = m.histogram.data_points if m.HasField("histogram") else m.sum.data_points
                        for p in points:
                            out.append(({a.key: _any_value(a.value) for a in p.attributes}, p))
        return out


def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


if __name__ == "__main__":  # start Phoenix by hand: python tests/otlp_receiver.py /tmp/phx
    exe = phoenix_executable()
    if exe is None:
        sys.exit("no phoenix: pip install -r tests/receiver-requirements.txt")
    p = Phoenix(exe, Path(sys.argv[1] if len(sys.argv) > 1 else "."))
    p.start()
    print(p.base)
