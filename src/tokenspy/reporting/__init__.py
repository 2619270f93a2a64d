"""Cost reports: aggregate once (``ReportData``), render as terminal text or one HTML file.

(Named ``reporting`` so that it never shadows the documented ``tokenspy.report()`` function.)
"""

from __future__ import annotations

from tokenspy.reporting.data import ReportData, StackNode
from tokenspy.reporting.html import render_html
from tokenspy.reporting.text import format_history, format_usd, render_text

__all__ = ["ReportData", "StackNode", "format_history", "format_usd", "render_html", "render_text"]
