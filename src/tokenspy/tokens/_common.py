"""Pieces shared by the provider counters: the running tally, compact JSON, PDF pages."""

from __future__ import annotations

import binascii
import json
import re
from typing import Any

from tokenspy.tokens import _encodings

# Documents whose pages are not known (a URL, a file id) are counted as this many pages.
DOCUMENT_DEFAULT_PAGES = 1
# OpenAI and Anthropic put a PDF page before the model as its text plus an image of the page;
# Anthropic documents 1,500-3,000 tokens a page, and this is the low end, for both.
DOCUMENT_TOKENS_PER_PAGE = 1500


class Tally:
    """Counts texts with one encoding and remembers whether every count was exact."""

    __slots__ = ("encoding", "exact")

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding
        self.exact = True

    def text(self, value: object) -> int:
        if not isinstance(value, str):
            if value is None:
                return 0
            value = compact_json(value)
        n, exact = _encodings.count_with(self.encoding, value)
        if not exact:
            self.exact = False
        return n

    def json(self, value: object) -> int:
        return self.text(value if isinstance(value, str) else compact_json(value))


def compact_json(value: object) -> str:
    # Keys keep the order they had on the wire (dicts keep insertion order): the same body gives
    # the same text on every machine and Python version, with no dependence on hashing.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)


def as_int(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def get(d: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present in ``d``: wire bodies are camelCase, SDK dicts snake_case."""
    for name in names:
        if name in d:
            return d[name]
    return None


_PDF_PAGE = re.compile(rb"/Type\s*/Page(?![a-zA-Z])")
_pdf_pages_memo: dict[object, int] = {}


def pdf_pages_from_base64(b64: str) -> int:
    """Pages of a base64 PDF (its ``/Type /Page`` objects), DOCUMENT_DEFAULT_PAGES if unreadable."""
    key = _encodings.content_key(b64)
    cached = _pdf_pages_memo.get(key)
    if cached is not None:
        return cached
    try:
        pages = len(_PDF_PAGE.findall(binascii.a2b_base64(b64.strip()))) or DOCUMENT_DEFAULT_PAGES
    except (binascii.Error, ValueError):
        pages = DOCUMENT_DEFAULT_PAGES
    if len(_pdf_pages_memo) >= 256:
        _pdf_pages_memo.clear()
    _pdf_pages_memo[key] = pages
    return pages
