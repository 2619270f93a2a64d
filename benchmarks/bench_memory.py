"""Memory of a long-running process with persistence on (issue 16): RSS after 100,000 recorded
calls and after 2,000,000, through the request wrapper the OpenAI patch installs around a stub
transport (the SDK's HTTP cost left out, so that millions of calls take a minute). The target:
RSS after 2M ≤ RSS after 100k + 20 MB. Prints the figures; run:

    python benchmarks/bench_memory.py [--calls 2000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from openai import _response, _streaming  # noqa: E402
from openai._models import FinalRequestOptions  # noqa: E402
from openai.types.chat import ChatCompletion  # noqa: E402

import tokenspy  # noqa: E402
from tokenspy.interceptor._stainless import Kinds, _sync_process, _sync_request  # noqa: E402
from tokenspy.interceptor.openai import OpenAIAdapter  # noqa: E402
from tokenspy.tracker import get_global_tracker  # noqa: E402
from wire import fixture_json  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=2_000_000)
    ap.add_argument("--first", type=int, default=100_000)
    ap.add_argument("--trace", action="store_true", help="print the RSS every 250,000 calls too")
    args = ap.parse_args()
    completion = ChatCompletion.model_validate(fixture_json("openai_chat.json"))
    options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                            json_data={"model": "gpt-4o", "messages": []})

    def process_raw(self, **kwargs):  # the SDK's _process_response, for one HTTP response
        return completion

    process = _sync_process(process_raw)  # where tokenspy records the response

    def stub(self, cast_to, options, **kwargs):  # the SDK's request() with the patch inside it
        return process(self, cast_to=cast_to, options=options, response=None, stream=False, stream_cls=None)

    kinds = Kinds((_streaming.Stream, _streaming.AsyncStream), (_response.BaseAPIResponse,))
    request = _sync_request(stub, OpenAIAdapter(), kinds)
    with tempfile.TemporaryDirectory() as tmp:
        tokenspy.init(persist=True, persist_dir=tmp)
        tracker = get_global_tracker()
        start = time.perf_counter()
        marks = {}
        for i in range(1, args.calls + 1):
            request(None, ChatCompletion, options)
            if i == args.first or i == args.calls or (args.trace and i % 250_000 == 0):
                tracker.flush()
                gc.collect()
                marks[i] = rss_mb()
                print(f"RSS after {i:>9,} persisted calls: {marks[i]:7.1f} MB "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        assert tracker.total_calls() == args.calls
        db_mb = (Path(tmp) / "usage.db").stat().st_size / 2**20
        tokenspy.init(persist=False)
    growth = marks[args.calls] - marks[args.first]
    print(f"growth from {args.first:,} to {args.calls:,} calls: {growth:+.1f} MB (target ≤ +20 MB); "
          f"window {tracker.window:,} records in memory; DB {db_mb:.0f} MB on disk")


if __name__ == "__main__":
    main()
