"""Characters a name (function, model, test, file) must never carry into a report as they are.

Bidirectional controls reorder what a reader sees ("Trojan Source"): a name holding one can make
a report show another name than the stored one. Every renderer shows them as a visible escape.
"""

from __future__ import annotations

BIDI = frozenset((0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)))


def visible(c: int) -> str:
    """The escape a renderer shows for the character ``c``: ``\\u202e``."""
    return f"\\u{c:04x}" if c > 0xFF else f"\\x{c:02x}"
