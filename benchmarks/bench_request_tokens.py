"""Speed of tokenspy.tokens: fresh text (tokens/s) and a repeated request (calls/s).

Run: python benchmarks/bench_request_tokens.py [calls]

* fresh text: distinct texts every time, so the memo never hits: this is the tokenizer's own speed
  plus tokenspy's hashing and bookkeeping. Target: >= 1,000,000 tokens/s.
* repeated request: a ~2k-token system prompt and a 5-tool list sent again and again with a short
  user message that changes every call, as a test suite does; the prompt and the tool list are
  tokenized once and then found by content hash.
"""

from __future__ import annotations

import random
import sys
import time

CALLS = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000

_VOCAB = (
    "the cost of a model call depends on tokens sent and received price per million input output "
    "cache request response stream tool schema function arguments JSON value error retry budget "
    "München naïve 東京 données ✓ 42 3.14159 0x1f def return self.value if x else None {} [] () => ;"
)
WORDS = _VOCAB.split(" ")


def fresh_texts(n: int, words_each: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(words_each)) + f" #{seed}-{i}" for i in range(n)]


def best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    start = time.perf_counter()
    import tokenspy  # noqa: F401

    package_ms = (time.perf_counter() - start) * 1e3
    start = time.perf_counter()
    from tokenspy import tokens
    from tokenspy.tokens import _encodings

    tokens_ms = (time.perf_counter() - start) * 1e3
    tiktoken_loaded = "tiktoken" in sys.modules
    print(
        f"import tokenspy: {package_ms:.1f} ms; import tokenspy.tokens: {tokens_ms:.1f} ms; "
        f"tiktoken loaded: {tiktoken_loaded}"
    )

    for name in ("o200k_base", "cl100k_base"):
        start = time.perf_counter()
        _encodings.get_encoding(name)
        load_ms = (time.perf_counter() - start) * 1e3
        print(f"first load of {name}: {load_ms:.0f} ms from {_encodings.encoding_source(name)}")

    for model in ("gpt-4o", "gpt-4"):
        # Three rounds of distinct texts made beforehand: the memo never hits and text making is not timed.
        rounds = [fresh_texts(200, 1500, seed) for seed in range(3)]
        enc = _encodings.get_encoding(tokens.encoding_for_model(model))
        rate = 0.0
        for texts in rounds:
            start = time.perf_counter()
            for text in texts:
                tokens.count_text("openai", model, text)
            seconds = time.perf_counter() - start
            rate = max(rate, sum(len(enc.encode_ordinary(t)) for t in texts) / seconds)
        print(f"fresh text, {model} ({tokens.encoding_for_model(model)}): {rate:,.0f} tokens/s")

    system = " ".join(fresh_texts(1, 1400, 7))
    tools = [
        {
            "type": "function",
            "function": {
                "name": f"tool_{i}",
                "description": f"Tool number {i}: looks things up in the catalogue and returns JSON.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "What to look for."},
                        "limit": {"type": "integer", "description": "At most this many rows."},
                        "sort": {"type": "string", "enum": ["asc", "desc"], "description": "Order."},
                    },
                    "required": ["query"],
                },
            },
        }
        for i in range(5)
    ]

    def chat(i: int) -> dict:
        return {
            "model": "gpt-4o",
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": f"question {i}"}],
            "tools": tools,
            "max_tokens": 500,
        }

    first = tokens.count_request("openai", "chat", chat(0))
    bodies = [chat(i) for i in range(CALLS)]

    def run_repeated() -> None:
        for body in bodies:
            tokens.count_request("openai", "chat", body)

    seconds = best_of(run_repeated)
    print(
        f"repeated request, openai chat ({first.input_tokens} input tokens, system prompt + 5 tools): "
        f"{CALLS / seconds:,.0f} calls/s ({seconds / CALLS * 1e6:.1f} µs/call)"
    )

    anthropic_bodies = [
        {
            "model": "claude-sonnet-4-5",
            "max_tokens": 500,
            "system": system,
            "messages": [{"role": "user", "content": f"question {i}"}],
            "tools": [
                {
                    "name": t["function"]["name"],
                    "description": t["function"]["description"],
                    "input_schema": t["function"]["parameters"],
                }
                for t in tools
            ],
        }
        for i in range(CALLS)
    ]

    def run_anthropic() -> None:
        for body in anthropic_bodies:
            tokens.count_request("anthropic", "messages", body)

    seconds = best_of(run_anthropic)
    n = tokens.count_request("anthropic", "messages", anthropic_bodies[0]).input_tokens
    print(
        f"repeated request, anthropic messages ({n} input tokens, approx): "
        f"{CALLS / seconds:,.0f} calls/s ({seconds / CALLS * 1e6:.1f} µs/call)"
    )


if __name__ == "__main__":
    main()
