"""The fused fast path of the OpenAI SDK's sync request (tokenspy.interceptor.openai_plain) makes
exactly the records the general wrapper (``_stainless._sync_request``) makes.

Each test runs the same calls twice, each time in a fresh ``contextvars.Context`` (as an app's
threads do: no pytest collector, session or profiled function) on a new global tracker: once
through the installed patch, once through a client class whose ``request`` is the general wrapper
around the SDK's own method. Every CallRecord field but the per-call ones (timestamp, duration,
run id) must be equal, costs exactly. A probe records which way each call went, so that a test
about the fast path fails if the calls silently take the general way (and the other way round).
"""

from __future__ import annotations

import contextvars
import dataclasses
import enum
import inspect
import sys
import uuid
import warnings
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import httpx2
import openai
import pytest
from openai import _base_client, _response, _streaming
from openai.types.chat import ChatCompletion

import tokenspy
from tokenspy import context, interceptor, record, recorder
from tokenspy.errors import PricingMatrixOutdatedWarning, TokenspyWarning
from tokenspy.interceptor import _stainless
from tokenspy.interceptor import openai as openai_adapter
from tokenspy.record import CallRecord
from tokenspy.tracker import Tracker, get_global_tracker, set_global_tracker
from wire import Wire, error_response, fixture_json

MSG = [{"role": "user", "content": "hi"}]
PER_CALL = {"timestamp", "duration_ms", "run_id"}
FIELDS = [f.name for f in dataclasses.fields(CallRecord) if f.name not in PER_CALL]
MODULE = Path(__file__).stem
PLAIN_FILE = "openai_plain.py"  # the fast path's module, as the probe names callers


def caller_file(frame: Any) -> str:
    """The file of ``frame``'s function, as the probe names callers. The fast path in C
    (tokenspy._speedups.PlainRequest) has no frame: what it calls sees the SDK's post() as its
    caller, which nothing else of tokenspy's is called by directly."""
    name = Path(frame.f_code.co_filename).name
    return PLAIN_FILE if name == "_base_client.py" else name
GENERAL_FILES = {"_stainless.py", "recorder.py"}


# ------------------------------------------------------------------------ the calls, by name
# Module-level functions: the attribution walk names them (function_name, source_file/line).


def chat_calls(client: openai.OpenAI, models: list[str]) -> list[Any]:
    out = []
    for model in models:
        out.append(client.chat.completions.create(model=model, messages=MSG))
    return out


def raw_calls(client: openai.OpenAI) -> list[Any]:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    parsed = raw.parse()
    again = raw.parse()  # a second parse() must not record the call again
    unread = client.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)  # never parsed
    with client.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MSG) as streamed:
        streamed_parsed = streamed.parse()
    return [raw, parsed, again, unread, streamed_parsed]


def other_endpoint_calls(client: openai.OpenAI) -> list[Any]:
    out = []
    for _ in range(2):
        out.append(client.responses.create(model="gpt-5", input="hi"))
    for _ in range(2):
        out.append(client.embeddings.create(model="text-embedding-3-small", input="hi"))
    for _ in range(2):
        out.append(client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi"))
    return out


def in_a_session(client: openai.OpenAI) -> None:
    chat_calls(client, ["gpt-4o"] * 2)
    with tokenspy.session("x"):
        chat_calls(client, ["gpt-4o-mini"] * 3)
    chat_calls(client, ["gpt-4o"] * 2)


@tokenspy.profile
def profiled(client: openai.OpenAI) -> None:
    chat_calls(client, ["gpt-4o-mini"] * 2)


def around_a_profiled_function(client: openai.OpenAI) -> None:
    chat_calls(client, ["gpt-4o"] * 2)
    profiled(client)
    chat_calls(client, ["gpt-4o"] * 2)


def stream_chunks(client: openai.OpenAI) -> list[Any]:
    stream = client.chat.completions.create(model="gpt-4o", messages=MSG, stream=True)
    return [chunk.model_dump() for chunk in stream]


def walk_victim(client: openai.OpenAI, model: str) -> list[Any]:
    """Calls made here, not through chat_calls: the caller walk meets this frame first."""
    out = []
    for _ in range(3):
        out.append(client.chat.completions.create(model=model, messages=MSG))
    return out


class StrModel(str, enum.Enum):
    GPT_4O = "gpt-4o"


def api_error(client: openai.OpenAI) -> openai.APIError:
    with pytest.raises(openai.APIError) as info:
        client.chat.completions.create(model="gpt-4o", messages=MSG)
    return info.value


# ------------------------------------------------------------------------ clients and probes


def sdk_request() -> Callable[..., Any]:
    """The SDK's own SyncAPIClient.request (the Patcher keeps it as ``__wrapped__``)."""
    request = _base_client.SyncAPIClient.__dict__["request"]
    return getattr(request, "__wrapped__", request)


def sdk_kinds() -> _stainless.Kinds:
    """The kinds ``_stainless.install`` gives the wrappers."""
    responses: tuple[type, ...] = (_response.BaseAPIResponse,)
    try:
        from openai import _legacy_response

        responses += (_legacy_response.LegacyAPIResponse,)
    except ImportError:
        pass
    return _stainless.Kinds((_streaming.Stream, _streaming.AsyncStream), responses)


def build(cls: type[openai.OpenAI], wire: Wire) -> openai.OpenAI:
    return cls(api_key="sk-test", base_url="https://api.openai.test/v1",
               http_client=httpx2.Client(transport=httpx2.MockTransport(wire)), max_retries=0)


class Clients(NamedTuple):
    wire: Wire
    fast: openai.OpenAI  # through the installed patch: the fast path for plain calls
    general: openai.OpenAI  # through the general wrapper only
    bare: openai.OpenAI  # through the SDK's own request: what the user gets without tokenspy


class Trail(deque):
    """record.pending, noting by whom each call was deferred (and how long the batch grew)."""

    def __init__(self, counts: Counter) -> None:
        super().__init__()
        self.counts = counts
        self.longest = 0

    def append(self, item: Any) -> None:
        self.counts["defer@" + caller_file(sys._getframe(1))] += 1
        super().append(item)
        self.longest = max(self.longest, len(self))


class Probe:
    """Counts of what each way calls: ``begin`` (the general way's start), ``started`` (the fast
    path's Pending), ``usage@file`` (OpenAIAdapter.usage, by caller), ``defer@file`` (a call put
    on record.pending, by caller) and ``settle@file``."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.pending = Trail(self.counts)
        # while set, readers (and the writer thread a Store of another test may have left
        # running) do not book record.pending: only the recorder does
        self.quiet = False

    def take(self) -> Counter:
        """The counts so far (``longest``: the longest record.pending grew); counting starts again."""
        counts = Counter(self.counts)
        counts["longest"] = self.pending.longest
        self.counts.clear()
        self.pending.longest = 0
        return counts


def by(counts: Counter, prefix: str, files: set[str] | str) -> int:
    files = {files} if isinstance(files, str) else files
    return sum(n for key, n in counts.items() if key.startswith(prefix + "@") and key.split("@")[1] in files)


@pytest.fixture
def probe(monkeypatch, active, fresh_tracker):
    probe = Probe()
    counts = probe.counts
    real_begin, real_started, real_settle = recorder.begin, recorder.started, recorder.settle
    real_usage = openai_adapter.OpenAIAdapter.usage
    real_settler = record.settler

    # begin walks the stack from a fixed depth above itself (start, request): this frame,
    # between begin and the adapter's start, is below where its walk starts
    def begin(*args: Any) -> Any:
        counts["begin"] += 1
        counts["begin:" + str(args[1])] += 1
        return real_begin(*args)

    def started(*args: Any) -> Any:
        counts["started"] += 1
        return real_started(*args)

    def settle() -> None:
        counts["settle@" + caller_file(sys._getframe(1))] += 1
        real_settle()

    def settler() -> None:
        if not probe.quiet:
            real_settler()

    def usage(self: Any, obj: Any) -> Any:
        counts["usage@" + caller_file(sys._getframe(1))] += 1
        return real_usage(self, obj)

    monkeypatch.setattr(record, "pending", probe.pending)
    monkeypatch.setattr(recorder, "_pending", probe.pending)
    monkeypatch.setattr(recorder, "begin", begin)
    monkeypatch.setattr(recorder, "started", started)
    monkeypatch.setattr(recorder, "settle", settle)
    monkeypatch.setattr(record, "settler", settler)
    monkeypatch.setattr(openai_adapter.OpenAIAdapter, "usage", usage)
    # the fast path takes the deque and the adapter's bound usage when the patch is made
    interceptor.deactivate()
    interceptor.activate()
    try:
        yield probe
    finally:
        real_settle()  # nothing left on the probe's deque
        interceptor.deactivate()
        monkeypatch.undo()
        interceptor.activate()


@pytest.fixture
def clients(probe) -> Clients:
    patched = _base_client.SyncAPIClient.__dict__["request"]
    assert patched.__module__ == "tokenspy.interceptor.openai_plain", "the fast path is not installed"
    # in C where built, else in Python (TOKENSPY_PURE_PYTHON=1: tests/unit/test_speedups.py)
    assert (type(patched).__name__ == "PlainRequest") == hasattr(context.speedups, "PlainRequest")
    original = sdk_request()

    class General(openai.OpenAI):
        request = _stainless._sync_request(original, openai_adapter.OpenAIAdapter(), sdk_kinds())

    class Bare(openai.OpenAI):
        request = original

    # the URLs are known billed endpoints (the fast path sends a URL not seen yet the general way)
    for url in ("/chat/completions", "/responses", "/embeddings", "/completions"):
        openai_adapter._kind(url)
    wire = Wire()
    return Clients(wire, build(openai.OpenAI, wire), build(General, wire), build(Bare, wire))


# ------------------------------------------------------------------------ running both ways


class Run(NamedTuple):
    result: Any
    records: list[CallRecord]
    counts: Counter


def run(probe: Probe, fn: Callable[..., Any], *args: Any) -> Run:
    """``fn(*args)`` in a fresh context on a new global tracker (which also forgets the deferral:
    its first call is booked at once), with what it recorded and the probe's counts."""
    before = get_global_tracker()
    tracker = Tracker()
    set_global_tracker(tracker)
    try:
        probe.take()
        probe.quiet = True
        try:
            result = contextvars.Context().run(fn, *args)
        finally:
            probe.quiet = False
        records = tracker.records()
        return Run(result, records, probe.take())
    finally:
        set_global_tracker(before)
        tracker.close()


def fields_of(records: list[CallRecord]) -> list[dict[str, Any]]:
    return [{name: getattr(r, name) for name in FIELDS} for r in records]


def both(probe: Probe, clients: Clients, fn: Callable[..., Any], *args: Any) -> tuple[Run, Run]:
    """Run ``fn`` through the patch and through the general wrapper: the same records."""
    fast = run(probe, fn, clients.fast, *args)
    general = run(probe, fn, clients.general, *args)
    assert fields_of(fast.records) == fields_of(general.records)
    assert by(general.counts, "defer", PLAIN_FILE) == general.counts["started"] == 0, "the general way is not general"
    return fast, general


def dump(obj: Any) -> Any:
    if isinstance(obj, list):
        return [dump(x) for x in obj]
    if hasattr(obj, "model_dump"):
        return type(obj).__name__, obj.model_dump(warnings=False)
    return obj


def in_calls(fn: Callable[..., Any], r: CallRecord) -> bool:
    """``r`` is attributed to ``fn`` of this module, at its first line."""
    return (r.function_name == f"{MODULE}.{fn.__qualname__}" and r.source_file is not None
            and r.source_file.endswith(f"integration/{MODULE}.py")
            and r.source_line == fn.__code__.co_firstlineno and r.call_stack == [r.function_name])


# ------------------------------------------------------------------------ the tests


def test_plain_chat_calls_make_the_general_records_in_call_order(clients, probe, fresh_tracker):
    # a run of deferred calls past one batch (SETTLE_AT), then model switches (booked at once)
    assert recorder.SETTLE_AT < 280
    models = ["gpt-4o-mini" if i in (280, 281, 299) else "gpt-4o" for i in range(300)]
    at_once = [0] + [i for i in range(1, 300) if models[i] != models[i - 1]]  # 0, 280, 282, 299
    fast, general = both(probe, clients, chat_calls, models)

    assert len(fast.records) == 300
    assert [r.model for r in fast.records] == models
    assert [r.timestamp for r in fast.records] == sorted(r.timestamp for r in fast.records)
    assert all(in_calls(chat_calls, r) for r in fast.records)
    assert all(r.priced and r.cost_usd > 0 and r.session_id is None and r.test_id is None and r.project is None
               for r in fast.records)
    assert {(r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens) for r in fast.records} \
        == {(1200, 300, 1024, 128)}
    # the fast path did it all: booked the first call (and each model switch) at once, deferred
    # the others, booked the batch when it was full, read the usage inline. In C, once that batch
    # is booked (recorder._publish), a call of the model it booked is booked at once while nothing
    # waits: 257-279 (281 is deferred, the batch was gpt-4o's; 283-298 too, the last was mini's)
    in_c = hasattr(context.speedups, "PlainRequest")
    booked_in_c = list(range(recorder.SETTLE_AT + 1, 280)) if in_c else []
    assert fast.counts["begin"] == 0
    assert fast.counts["started"] == len(at_once)
    assert fast.counts["defer@" + PLAIN_FILE] == 300 - len(at_once) - len(booked_in_c)
    assert by(fast.counts, "defer", GENERAL_FILES) == 0
    assert fast.counts["settle@" + PLAIN_FILE] == 1 and fast.counts["longest"] == recorder.SETTLE_AT
    assert by(fast.counts, "usage", {PLAIN_FILE, *GENERAL_FILES}) == 0
    # the general way: as many deferrals, by recorder.finish
    assert general.counts["begin"] == 300
    assert general.counts["defer@recorder.py"] == 300 - len(at_once)
    # what the user got is the SDK's own
    assert all(type(c) is ChatCompletion for c in fast.result)
    assert dump(fast.result) == dump(general.result)
    assert dump(fast.result[-25:]) == dump(chat_calls(clients.bare, models[-25:]))
    assert fresh_tracker.records() == []  # every call went to the tracker of its time


def test_an_unknown_model_is_recorded_unpriced_with_one_warning(clients, probe, monkeypatch):
    model = f"no-such-model-{uuid.uuid4().hex[:12]}"
    body = fixture_json("openai_chat.json")
    body["model"] = model
    clients.wire.overrides["/chat/completions"] = body
    runs, warned = {}, {}
    for way in ("fast", "general"):
        monkeypatch.setattr(recorder, "_unpriced_warned", set())  # the warning is once per model per process
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = clients.fast if way == "fast" else clients.general
            runs[way] = run(probe, chat_calls, client, [model] * 3)
        warned[way] = [w for w in caught if issubclass(w.category, PricingMatrixOutdatedWarning)]
    fast, general = runs["fast"], runs["general"]
    assert fields_of(fast.records) == fields_of(general.records)
    assert len(fast.records) == 3
    assert all(r.model == model and not r.priced and r.cost_usd == 0.0 and r.input_tokens == 1200
               and in_calls(chat_calls, r) for r in fast.records)
    # one warning, pointing at the line of user code that made the call, the same either way
    assert len(warned["fast"]) == len(warned["general"]) == 1
    w, g = warned["fast"][0], warned["general"][0]
    assert (str(w.message), w.filename, w.lineno) == (str(g.message), g.filename, g.lineno)
    assert model in str(w.message)
    assert Path(w.filename) == Path(__file__)
    lines, first = inspect.getsourcelines(chat_calls)
    assert "create(" in lines[w.lineno - first]
    # unknown price: each call is booked at once, by the fast path
    assert fast.counts["begin"] == 0 and fast.counts["started"] == 3
    assert by(fast.counts, "defer", {PLAIN_FILE, *GENERAL_FILES}) == 0


def test_a_raw_response_is_recorded_once_as_the_general_way_does(clients, probe, fresh_tracker):
    fast, general = both(probe, clients, raw_calls)
    assert len(fast.records) == 3  # raw + parse() twice, raw never parsed, streaming response + parse()
    assert all(r.model == "gpt-4o" and r.priced and in_calls(raw_calls, r) for r in fast.records)
    raw, parsed, again, unread, streamed = fast.result
    assert type(raw) is not ChatCompletion and isinstance(raw, sdk_kinds().responses)
    assert type(parsed) is type(again) is type(streamed) is ChatCompletion
    assert fast.counts["begin"] == 0
    assert fast.counts["started"] == 3  # each through the fast path's raw-response branch
    assert general.counts["begin"] == 3
    bare = raw_calls(clients.bare)
    assert dump([parsed, again, streamed]) == dump([bare[1], bare[2], bare[4]])
    # parse() later, elsewhere, records nothing more
    raw.parse()
    unread.parse()
    assert fresh_tracker.records() == []


def test_responses_embeddings_and_completions_make_the_general_records(clients, probe):
    fast, general = both(probe, clients, other_endpoint_calls)
    got = [(r.model, r.input_tokens, r.output_tokens, r.cached_input_tokens, r.reasoning_tokens, bool(r.priced))
           for r in fast.records]
    assert got == [
        ("gpt-5-2025-08-07", 1200, 300, 1024, 128, True),
        ("gpt-5-2025-08-07", 1200, 300, 1024, 128, True),
        ("text-embedding-3-small", 8, 0, 0, 0, True),
        ("text-embedding-3-small", 8, 0, 0, 0, True),
        ("gpt-3.5-turbo-instruct", 5, 1, 0, 0, True),
        ("gpt-3.5-turbo-instruct", 5, 1, 0, 0, True),
    ]
    assert all(in_calls(other_endpoint_calls, r) and r.cost_usd > 0 for r in fast.records)
    assert fast.counts["begin"] == 0
    # the first of each endpoint booked at once, the second deferred, all by the fast path
    assert fast.counts["started"] == 3 and fast.counts["defer@" + PLAIN_FILE] == 3
    # usage not in the chat shape (responses, embeddings): the adapter's, called by the fast path
    assert fast.counts["usage@" + PLAIN_FILE] == 4
    assert by(fast.counts, "usage", GENERAL_FILES) == 0
    assert dump(fast.result) == dump(general.result) == dump(other_endpoint_calls(clients.bare))


def test_calls_in_a_session_go_the_general_way_and_record_the_same(clients, probe):
    fast, _ = both(probe, clients, in_a_session)
    assert [(r.model, r.session_id) for r in fast.records] == [
        ("gpt-4o", None), ("gpt-4o", None),
        ("gpt-4o-mini", "x"), ("gpt-4o-mini", "x"), ("gpt-4o-mini", "x"),
        ("gpt-4o", None), ("gpt-4o", None),
    ]
    assert all(in_calls(chat_calls, r) for r in fast.records)
    assert fast.counts["begin:gpt-4o-mini"] == 3  # the session's calls: the general way
    assert fast.counts["begin:gpt-4o"] == 0  # before and after it: the fast path (the scope is the default again)
    # before the session: the fast path
    assert fast.counts["started"] >= 1 and fast.counts["defer@" + PLAIN_FILE] >= 1


def test_calls_in_a_profiled_function_go_the_general_way_and_record_the_same(clients, probe):
    fast, _ = both(probe, clients, around_a_profiled_function)
    names = [(r.model, r.function_name, tuple(r.call_stack)) for r in fast.records]
    outer = (f"{MODULE}.chat_calls",) * 2
    assert [n[1] for n in names] == [outer[0]] * 2 + ["profiled"] * 2 + [outer[0]] * 2
    assert [n[2] for n in names][2:4] == [("profiled",)] * 2
    assert all(in_calls(chat_calls, r) for r in fast.records[:2] + fast.records[4:])
    assert fast.counts["begin:gpt-4o-mini"] == 2  # the profiled function's calls: the general way
    assert fast.counts["begin:gpt-4o"] == 0  # before and after it: the fast path (the scope is the default again)
    # before it: the fast path (the first booked at once, the second deferred)
    assert fast.counts["started"] >= 1 and fast.counts["defer@" + PLAIN_FILE] >= 1


def test_a_stream_goes_the_general_way_unchanged(clients, probe):
    fast, general = both(probe, clients, stream_chunks)
    assert fast.result == general.result == stream_chunks(clients.bare)
    assert len(fast.result) > 1
    assert len(fast.records) == 1
    r = fast.records[0]
    assert (r.input_tokens, r.output_tokens, r.priced) == (1200, 300, True) and in_calls(stream_chunks, r)
    assert fast.counts["begin"] == 1 and fast.counts["started"] == 0


@pytest.mark.parametrize("failing", ["_book_now", "started", "settle", "walk"])
def test_an_internal_failure_never_breaks_the_call(clients, probe, monkeypatch, failing):
    monkeypatch.setattr(recorder, "_internal_warned", False)  # warned once per process: not here yet
    # a call of another model is booked at once (_book_now, started); of the same, deferred (settle)
    model = "gpt-4o" if failing in ("settle", "walk") else "gpt-4o-mini"
    expected = dump(walk_victim(clients.bare, model))
    broken = False

    def breaking(real: Callable[..., Any]) -> Callable[..., Any]:
        def fail(*args: Any, **kwargs: Any) -> Any:
            if broken:
                raise RuntimeError("injected")
            return real(*args, **kwargs)

        return fail

    if failing == "walk":  # the caller walk fails on the caller's frame (its code not cached yet)
        monkeypatch.delitem(context._code_cache, id(walk_victim.__code__), raising=False)
        monkeypatch.setattr(context, "_describe", breaking(context._describe))
    else:
        monkeypatch.setattr(recorder, failing, breaking(getattr(recorder, failing)))
        monkeypatch.setattr(recorder, "SETTLE_AT", 2)

    def calls(client: openai.OpenAI) -> list[Any]:
        nonlocal broken
        chat_calls(client, ["gpt-4o"])  # booked at once, and gpt-4o's next calls may be deferred
        broken = True
        try:
            return walk_victim(client, model)
        finally:
            broken = False

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = run(probe, calls, clients.fast)
    assert all(type(c) is ChatCompletion for c in got.result)
    assert dump(got.result) == expected
    warned = [w for w in caught if issubclass(w.category, TokenspyWarning)]
    assert len(warned) == 1 and "injected" in str(warned[0].message)
    assert got.counts["begin"] == 0  # the fast path failed, not the general way
    if failing == "settle":  # deferred by the fast path, whose batch booking failed: booked later, none lost
        assert got.counts["defer@" + PLAIN_FILE] == 3
        assert len(got.records) == 4
    else:  # the failing calls are not recorded
        assert len(got.records) == 1


@pytest.mark.parametrize(("status", "error"), [(400, openai.BadRequestError), (500, openai.InternalServerError)])
def test_an_api_error_reaches_the_caller_unchanged(clients, probe, status, error):
    clients.wire.routes["/chat/completions"] = lambda request, body: error_response(status, "nope")
    fast, general = both(probe, clients, api_error)
    bare = api_error(clients.bare)
    for exc in (fast.result, general.result, bare):
        assert type(exc) is error
    assert (fast.result.status_code, str(fast.result), fast.result.body) == (status, str(bare), bare.body)
    assert fast.records == general.records == []
    assert fast.counts["begin"] == 0 and fast.counts["started"] == 0
    assert by(fast.counts, "defer", {PLAIN_FILE, *GENERAL_FILES}) == 0


def test_a_str_subclass_model_is_recorded_as_the_general_way_does(clients, probe, monkeypatch):
    body = fixture_json("openai_chat.json")
    del body["model"]
    clients.wire.overrides["/chat/completions"] = body
    monkeypatch.setattr(recorder, "_unpriced_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PricingMatrixOutdatedWarning)
        fast, _ = both(probe, clients, chat_calls, [StrModel.GPT_4O] * 2)
    assert fast.counts["begin"] == 0


class Overriding(openai.OpenAI):
    """An app's client that overrides request and calls the patched one through super()."""

    def request(self, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().request(cast_to, options, *args, **kwargs)


def through_the_client_api(client: openai.OpenAI) -> list[Any]:
    """The client's own methods, called directly: the bound request, and post()."""
    from openai._models import FinalRequestOptions

    options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                            json_data={"model": "gpt-4o", "messages": MSG})
    bound = client.request  # a bound method, as with the SDK's own function
    first = bound(ChatCompletion, options)
    second = client.post("/chat/completions", cast_to=ChatCompletion, body={"model": "gpt-4o", "messages": MSG})
    return [first, second]


def test_the_patched_request_behaves_as_a_method(clients, probe):
    patched = _base_client.SyncAPIClient.__dict__["request"]
    assert patched.__wrapped__ is sdk_request()
    assert patched.__name__ == "request"
    fast, general = both(probe, clients, through_the_client_api)
    assert dump(fast.result) == dump(general.result) == dump(through_the_client_api(clients.bare))
    assert fields_of(fast.records) == fields_of(general.records) and len(fast.records) == 2
    assert fast.counts["begin"] == 0
    # a subclass that overrides request and calls super(): its own frame is the caller
    sub = build(Overriding, clients.wire)
    got = run(probe, chat_calls, sub, ["gpt-4o", "gpt-4o"])
    assert [r.function_name for r in got.records] == [f"{MODULE}.Overriding.request"] * 2
    assert got.counts["begin"] == 0
