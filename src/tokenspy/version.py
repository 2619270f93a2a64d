"""The version of tokenspy (read by pyproject.toml, the CLI and the reports)."""

__version__ = "0.1.0"
