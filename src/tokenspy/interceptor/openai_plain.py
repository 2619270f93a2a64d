"""The plain OpenAI call on a short path: a synchronous request to a billed endpoint, not
streamed, made outside any profiled function, session, test, track_costs block or LangChain
call. That is most calls of an app.

``_stainless``' general wrapper makes such a call run four more Python functions (the
adapter's ``start`` and ``recorder.begin`` before it, ``usage`` and ``recorder.finish`` after)
and build a ``Pending``. Through the real SDK that cost several times what the same code costs
in a tight loop: between two of our steps the SDK's own work (~5M instructions a call) has
evicted them from the CPU caches, so each extra function and object is paid for in cache
misses. Here the same steps run inline: the caller walk, the clock reads, the usage read, and
the call noted for the next batch (``recorder.finish``'s deferral) or booked at once. Where
tokenspy._speedups is built (CPython 3.11) the request itself is its C ``PlainRequest``, which
does the common case and calls ``after`` below for the rest, as the Python request does; once a
batch is booked it books such a call at once rather than noting it (recorder._publish).

Whatever is not such a call, or looks unexpected, goes the general way, and the records are
the same either way (tests/integration/test_plain_path.py compares them field by field).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tokenspy import context, recorder
from tokenspy import record as _rows
from tokenspy.interceptor import openai as _openai
from tokenspy.interceptor._stainless import Adapter, Kinds, _handle, _sync_request

_NO_DETAILS = {"cached_tokens": 0, "cache_write_tokens": 0}


def _chat_usage(result: Any, usage_of: Callable[[Any], Any]) -> Any:
    """``OpenAIAdapter.usage`` of a parsed response: a chat completion read from the models'
    ``__dict__`` (one attribute read per model: pydantic's ``__getattr__`` makes each slow),
    anything else by ``usage_of``."""
    try:
        fields = result.__dict__
        u = fields["usage"].__dict__
        details = u["prompt_tokens_details"]
        details = details.__dict__ if details is not None else _NO_DETAILS
        out = u["completion_tokens_details"]
        return fields["model"], (
            u["prompt_tokens"] + 0,  # an int (else: TypeError, the adapter's way)
            u["completion_tokens"] or 0,
            details["cached_tokens"] or 0,
            details["cache_write_tokens"] or 0,
            (out.__dict__["reasoning_tokens"] or 0) if out is not None else 0,
            0,
        )
    except (AttributeError, KeyError, TypeError):  # not a chat completion, an older SDK
        return usage_of(result)


def sync_request(orig: Callable[..., Any], adapter: Adapter, kinds: Kinds) -> Callable[..., Any]:
    general = _sync_request(orig, adapter, kinds)
    scope_get = context.scope.get
    default_scope = context._DEFAULT
    outer_get = context.outer_calls.get
    kind_of = _openai._kind_cache.get
    perf = time.perf_counter
    c_walk = context.c_walk
    walk_miss = context.WALK_MISS
    library = context._library_files
    code_cache = context._code_cache
    user_frame = context.user_frame
    pending = _rows.pending
    linked = kinds.linked
    usage_of = adapter.usage
    provider = adapter.provider

    def after(result: Any, cast_to: Any, model: str | None, user: Any, t0: float, t1: float) -> None:
        """Everything after the SDK's call (the C request does the deferral of a chat completion
        itself and calls this for the rest). Raises the budget error to raise, if any."""
        error = None
        try:
            if type(result) is not cast_to and isinstance(result, linked):
                # a raw response: linked and recorded as the general way does
                error = _handle(recorder.started(provider, model, default_scope, user, t0), result, adapter, kinds)
            else:
                got = _chat_usage(result, usage_of) if type(result) is cast_to else usage_of(result)
                if got is not None and got[0] == recorder._defer_model and provider is recorder._defer_provider:
                    # recorder.finish's deferral (no budget, collector or outer layer here)
                    pending.append((got[1], None, user, t0, t1, got[0], provider, model))
                    if len(pending) >= recorder.SETTLE_AT:
                        recorder.settle()
                else:
                    p = recorder.started(provider, model, default_scope, user, t0)
                    p.done = True
                    p.t1 = t1
                    error = recorder._book_now(p, None, None) if got is None else recorder._book_now(p, got[1], got[0])
        except Exception as exc:
            recorder.internal_error(exc)
        if error is not None:
            recorder.raise_budget(error)

    if context.speedups is not None and hasattr(context.speedups, "PlainRequest"):
        # the same request in C (CPython 3.11): it calls general and after as the one below does
        fast = context.speedups.PlainRequest(
            orig, general, after, user_frame, context.scope, default_scope,
            context.outer_calls, _openai._kind_cache, library, code_cache, pending, vars(recorder), provider,
        )
        fast.__dict__.update(__module__=__name__, __name__="request", __qualname__="SyncAPIClient.request",
                             __doc__=getattr(orig, "__doc__", None))
        return fast  # type: ignore[no-any-return]

    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            d = options.__dict__  # one read of the pydantic model, then dict lookups
            body = d["json_data"]
            plain = (
                scope_get() is default_scope
                and d["method"] == "post"
                and kind_of(d["url"]) is not None  # a billed endpoint (None, or not seen yet: general)
                and type(body) is dict
                and not body.get("stream")
                and not outer_get()
            )
        except Exception:  # not the options object we know: the general way decides
            plain = False
        if not plain:
            return general(self, cast_to, options, *args, **kwargs)
        model = body.get("model")
        if not isinstance(model, str):
            model = None
        try:
            # the caller, as recorder.begin finds it (skip 1: the SDK's post() is the first frame)
            if c_walk is None or (user := c_walk(1, library, code_cache)) is walk_miss:
                user = user_frame(2)
        except Exception as exc:  # as the general way does when its start fails: not recorded
            recorder.internal_error(exc)
            return orig(self, cast_to, options, *args, **kwargs)
        t0 = perf()
        result = orig(self, cast_to, options, *args, **kwargs)
        t1 = perf()
        after(result, cast_to, model, user, t0, t1)
        return result

    return request
