"""Cost reports: aggregate once (``ReportData``), render as terminal text or one HTML file."""

from __future__ import annotations

from tokenspy.report.data import ReportData, StackNode
from tokenspy.report.html import render_html
from tokenspy.report.text import format_history, format_usd, render_text

__all__ = ["ReportData", "StackNode", "format_history", "format_usd", "render_html", "render_text"]
