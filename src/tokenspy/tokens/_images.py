"""Image sizes read from the bytes a request carries, and each provider's published image-token formula.

Only the header is parsed (PNG, JPEG, GIF, WebP), so no imaging library is needed.
"""

from __future__ import annotations

import binascii
import math
import struct

# When the image is a URL or a file id its size cannot be known from the request: every formula
# below is then applied to this size, a typical photo/screenshot once providers have downscaled it.
DEFAULT_IMAGE_SIZE = (1024, 1024)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG, JPEG, GIF or WebP header, None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        w, h = struct.unpack(">II", data[16:24])
        return (w, h) if w and h else None
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        w, h = struct.unpack("<HH", data[6:10])
        return (w, h) if w and h else None
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return _webp_size(data)
    if data[:2] == b"\xff\xd8":
        return _jpeg_size(data)
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        w, h = struct.unpack("<HH", data[26:30])
        w, h = w & 0x3FFF, h & 0x3FFF
        return (w, h) if w and h else None
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    return None


# SOF markers carry the frame size; C4 (DHT), C8 (JPG) and CC (DAC) share the range but do not.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            i += 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if marker in _SOF:
            if i + 9 > n:
                return None
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return (w, h) if w and h else None
        i += 2 + length
    return None


def decode_base64_prefix(b64: str) -> bytes | None:
    """Enough decoded bytes to read an image header; the whole payload only for JPEGs whose frame
    header sits behind large metadata."""
    b64 = b64.strip()
    for n_chars in (4096, 262144, None):
        chunk = b64 if n_chars is None or n_chars >= len(b64) else b64[:n_chars]
        try:
            data = binascii.a2b_base64(chunk)
        except (binascii.Error, ValueError):
            if n_chars is None or n_chars >= len(b64):
                return None
            continue
        if n_chars is None or n_chars >= len(b64) or image_size(data) is not None:
            return data
    return None


def size_from_base64(b64: str) -> tuple[int, int] | None:
    data = decode_base64_prefix(b64)
    return None if data is None else image_size(data)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """('image/png', base64 payload) from 'data:image/png;base64,…', None for other URLs."""
    if not url.startswith("data:"):
        return None
    head, sep, payload = url.partition(",")
    if not sep or ";base64" not in head:
        return None
    return head[5:].split(";", 1)[0], payload


# --- OpenAI (vision guide, "Calculating costs") -------------------------------------------------
# Tile models: scale to fit 2048x2048, then (if larger) so the shortest side is 768, then
# base + tile * number of 512px tiles; detail "low" is the base alone.
# Patch models: 32px patches (at most 1536, downscaling to fit), times a per-model multiplier;
# "detail" does not apply to them.
_OPENAI_PATCH_MULTIPLIER = (  # (model prefix, numerator, denominator); longest prefixes first
    ("gpt-5-mini", 162, 100),
    ("gpt-5-nano", 246, 100),
    ("gpt-4.1-mini", 162, 100),
    ("gpt-4.1-nano", 246, 100),
    ("o4-mini", 172, 100),
)
_OPENAI_TILE_COSTS = (  # (model prefix, base, per tile)
    ("gpt-4o-mini", 2833, 5667),
    ("computer-use-preview", 65, 129),
    ("gpt-5", 70, 140),
    ("o1", 75, 150),
    ("o3", 75, 150),
)
_OPENAI_DEFAULT_TILE = (85, 170)  # gpt-4o, gpt-4.1, gpt-4.5, gpt-4-turbo and anything unknown


def _openai_tiles(w: int, h: int) -> int:
    if w > 2048 or h > 2048:
        scale = 2048 / max(w, h)
        w, h = math.floor(w * scale), math.floor(h * scale)
    if min(w, h) > 768:
        scale = 768 / min(w, h)
        w, h = math.floor(w * scale), math.floor(h * scale)
    return math.ceil(w / 512) * math.ceil(h / 512)


def _openai_patches(w: int, h: int) -> int:
    patches = math.ceil(w / 32) * math.ceil(h / 32)
    if patches <= 1536:
        return patches
    shrink = math.sqrt(1536 * 32 * 32 / (w * h))
    shrink *= min(math.floor(w * shrink / 32) / (w * shrink / 32), math.floor(h * shrink / 32) / (h * shrink / 32))
    return min(1536, math.ceil(math.floor(w * shrink) / 32) * math.ceil(math.floor(h * shrink) / 32))


def openai_image_tokens(model: str | None, size: tuple[int, int] | None, detail: str | None) -> int:
    w, h = size or DEFAULT_IMAGE_SIZE
    name = (model or "").lower()
    for prefix, num, den in _OPENAI_PATCH_MULTIPLIER:
        if name.startswith(prefix):
            return -(-_openai_patches(w, h) * num // den)
    base, tile = _OPENAI_DEFAULT_TILE
    for prefix, b, t in _OPENAI_TILE_COSTS:
        if name.startswith(prefix):
            base, tile = b, t
            break
    if detail == "low":
        return base
    return base + tile * _openai_tiles(w, h)


# --- Anthropic (vision docs) --------------------------------------------------------------------
# Images whose long edge exceeds 1568 px or that would exceed ~1,600 tokens (1.2 megapixels) are
# downscaled first; then tokens = width * height / 750, rounded up (1092x1092 -> 1590).
_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_MAX_PIXELS = 1600 * 750


def anthropic_image_tokens(size: tuple[int, int] | None) -> int:
    w, h = size or DEFAULT_IMAGE_SIZE
    scale = min(1.0, _ANTHROPIC_MAX_EDGE / max(w, h), math.sqrt(_ANTHROPIC_MAX_PIXELS / (w * h)))
    if scale < 1.0:
        w, h = math.floor(w * scale), math.floor(h * scale)
    return -(-(w * h) // 750)


# --- Google (Gemini docs, "Image understanding" / "Understand and count tokens") ---------------
# An image with both sides <= 384 px is 258 tokens; larger ones are cut into 768x768 tiles of 258.
GOOGLE_TOKENS_PER_TILE = 258


def google_image_tokens(size: tuple[int, int] | None) -> int:
    if size is None:
        return GOOGLE_TOKENS_PER_TILE
    w, h = size
    if w <= 384 and h <= 384:
        return GOOGLE_TOKENS_PER_TILE
    return GOOGLE_TOKENS_PER_TILE * math.ceil(w / 768) * math.ceil(h / 768)
