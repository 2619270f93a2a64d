"""Image sizes read from generated headers, and the providers' published image-token formulas."""

from __future__ import annotations

import base64

import pytest
from image_headers import gif, jpeg, png, webp_vp8, webp_vp8l, webp_vp8x

from tokenspy.tokens import _images


@pytest.mark.parametrize(
    ("data", "size"),
    [
        (png(640, 480), (640, 480)),
        (jpeg(1920, 1080), (1920, 1080)),
        (jpeg(800, 600, sof=0xC2), (800, 600)),
        (jpeg(300, 200, exif_bytes=60000), (300, 200)),
        (gif(32, 16), (32, 16)),
        (webp_vp8x(4000, 3000), (4000, 3000)),
        (webp_vp8l(123, 456), (123, 456)),
        (webp_vp8(1024, 768), (1024, 768)),
        (b"%PDF-1.7", None),
        (b"", None),
    ],
)
def test_image_size_from_header(data: bytes, size: tuple[int, int] | None) -> None:
    assert _images.image_size(data) == size
    assert _images.size_from_base64(base64.b64encode(data).decode()) == size


def test_jpeg_frame_header_beyond_the_first_decoded_chunk() -> None:
    data = jpeg(333, 222, exif_bytes=200_000)
    b64 = base64.b64encode(data).decode()
    assert len(b64) > 262144
    assert _images.size_from_base64(b64) == (333, 222)


def test_data_url_parsing() -> None:
    assert _images.parse_data_url("data:image/png;base64,AAAA") == ("image/png", "AAAA")
    assert _images.parse_data_url("https://example.com/a.png") is None
    assert _images.parse_data_url("data:text/plain,hello") is None


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        # OpenAI vision guide, "Calculating costs": the worked examples for gpt-4o.
        ((1024, 1024), "high", 765),
        ((2048, 4096), "high", 1105),
        ((4096, 8192), "low", 85),
        # Worked by hand: 512x512 is one tile (85 + 170); 513x500 needs two (85 + 2*170).
        ((512, 512), "high", 255),
        ((513, 500), "auto", 425),
        # No size known: DEFAULT_IMAGE_SIZE (1024x1024) -> 765.
        (None, None, 765),
    ],
)
def test_openai_tile_formula(size: tuple[int, int] | None, detail: str | None, tokens: int) -> None:
    assert _images.openai_image_tokens("gpt-4o", size, detail) == tokens


def test_openai_tile_costs_differ_by_model() -> None:
    # gpt-4o-mini bills image tiles at 2833 base + 5667 a tile (vision guide table).
    assert _images.openai_image_tokens("gpt-4o-mini", (1024, 1024), "high") == 2833 + 4 * 5667
    assert _images.openai_image_tokens("gpt-4o-mini-2024-07-18", (64, 64), "low") == 2833
    assert _images.openai_image_tokens("o1", (1024, 1024), "high") == 75 + 4 * 150


def test_openai_patch_formula() -> None:
    # Vision guide, patch models: 1024x1024 is 1024 patches; 1800x2400 is scaled to 1452 patches.
    assert _images._openai_patches(1024, 1024) == 1024
    assert _images._openai_patches(1800, 2400) == 1452
    assert _images.openai_image_tokens("gpt-4.1-mini", (1024, 1024), "low") == 1659  # ceil(1024 * 1.62)
    assert _images.openai_image_tokens("o4-mini", (1800, 2400), None) == 2498  # ceil(1452 * 1.72)


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((200, 200), 54),  # Anthropic vision docs: 200x200 ~= 54 tokens
        ((1000, 1000), 1334),  # ~= 1334
        ((1092, 1092), 1590),  # the largest 1:1 size that is not resized, ~1590
        ((3000, 3000), 1599),  # scaled down to 1095x1095, under the ~1,600-token cap
        ((3136, 1000), 1046),  # long edge 3136 -> 1568x500 (under the pixel cap): 784000 / 750, rounded up
        (None, 1399),  # DEFAULT_IMAGE_SIZE 1024x1024: 1048576 / 750 rounded up
    ],
)
def test_anthropic_image_formula(size: tuple[int, int] | None, tokens: int) -> None:
    assert _images.anthropic_image_tokens(size) == tokens


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((384, 384), 258),
        ((100, 50), 258),
        ((768, 768), 258),
        ((1024, 1024), 4 * 258),
        ((2000, 700), 3 * 258),
        (None, 258),
    ],
)
def test_google_image_formula(size: tuple[int, int] | None, tokens: int) -> None:
    assert _images.google_image_tokens(size) == tokens
