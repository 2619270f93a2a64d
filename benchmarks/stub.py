"""The OpenAI SDK's request as tokenspy's patch wraps it, around a stub transport that returns a
ready ChatCompletion: what the recording core costs per call, the HTTP left out."""

from __future__ import annotations

from collections.abc import Callable

from openai import _response, _streaming
from openai._models import FinalRequestOptions
from openai.types.chat import ChatCompletion

from tokenspy.interceptor._stainless import Kinds, _sync_process, _sync_request
from tokenspy.interceptor.openai import OpenAIAdapter
from wire import fixture_json


def stub_calls() -> tuple[Callable[[], None], Callable[[], None]]:
    """(a bare call of the stub, the same call through tokenspy's request wrapper)."""
    completion = ChatCompletion.model_validate(fixture_json("openai_chat.json"))
    options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                            json_data={"model": "gpt-4o", "messages": []})

    def process_raw(self, **kwargs):  # the SDK's _process_response, for one HTTP response
        return completion

    process = _sync_process(process_raw)  # where tokenspy records the response

    def stub(self, cast_to, options, **kwargs):  # the SDK's request() with the patch inside it
        return process(self, cast_to=cast_to, options=options, response=None, stream=False, stream_cls=None)

    kinds = Kinds((_streaming.Stream, _streaming.AsyncStream), (_response.BaseAPIResponse,))
    wrapped = _sync_request(stub, OpenAIAdapter(), kinds)

    def bare() -> None:
        process_raw(None, cast_to=ChatCompletion, options=options, response=None, stream=False, stream_cls=None)

    def patched() -> None:
        wrapped(None, ChatCompletion, options)

    return bare, patched
