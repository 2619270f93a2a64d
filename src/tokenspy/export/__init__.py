"""Export of tokenspy's records to the observability stack a team already runs.

CallRecords become OpenTelemetry spans and metrics (``tokenspy.export.otlp``: endpoints and
attributes) sent over OTLP/HTTP (``tokenspy.export.link``): live (``tokenspy.export.sink``, a sink
of the recorder, see ``tokenspy.sinks``) or from a DB (``tokenspy.export.db``, ``tokenspy export
--otlp``). They need the ``tokenspy[otel]`` extra and are imported only when export is asked for,
so that ``import tokenspy`` never loads OpenTelemetry; ``tokenspy.export.live`` starts and stops
the live exporter for ``tokenspy.init(otlp=...)`` and the pytest plugin. This module only says
whether the packages are there.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "pip install 'tokenspy[otel]'"
_MODULES = ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")


class MissingExtra(ImportError):
    """The OpenTelemetry packages are not installed; the message says which extra installs them."""


def require_otel(what: str = "OpenTelemetry export") -> None:
    """Raise MissingExtra (one line, naming the extra) unless the OTel packages are importable."""
    for name in _MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a parent package missing
            found = False
        if not found:
            raise MissingExtra(f"{what} needs the OpenTelemetry packages ({name} is not installed): {INSTALL_HINT}",
                               name=name)


def missing(exc: ImportError) -> MissingExtra:
    """The error a module of tokenspy.export raises when an OpenTelemetry import fails."""
    return MissingExtra(f"OpenTelemetry export needs the OpenTelemetry packages ({exc}): {INSTALL_HINT}",
                        name=exc.name)
