"""Request mode through the real SDK clients: under a mock that returns one canned body with fixed
usage, the recorded cost follows the request (its model, its prompt, its tools) and the answer's
content, never the mock's usage or response model."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import tokenspy
from openai_cookbook import COOKBOOK_MESSAGES, COOKBOOK_TOOL_MESSAGES, COOKBOOK_TOOLS
from tokenspy import pricing, store
from tokenspy.record import CallRecord
from tokenspy.tracker import get_global_tracker
from wire import fixture_json

# what users' mocks look like: one canned completion, its model and usage fixed
CANNED = fixture_json("openai_chat.json")  # model gpt-4o-2024-08-06, usage 1200 in / 300 out
ANSWER = CANNED["choices"][0]["message"]["content"]
MSG = [{"role": "user", "content": "short"}]
TOOL = {"type": "function", "function": {"name": "lookup", "description": "Look a customer up by id",
                                         "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}}


@pytest.fixture
def request_mode(active):
    tokenspy.init(usage="request")
    yield
    tokenspy.init()


@pytest.fixture
def canned(wire):
    wire.overrides["/chat/completions"] = copy.deepcopy(CANNED)
    return wire


def one(client, **kwargs) -> CallRecord:
    tracker = get_global_tracker()
    before = tracker.total_calls()
    client.chat.completions.create(**{"model": "gpt-4o-mini", "messages": MSG, **kwargs})
    (rec,) = tracker.records()[before:]
    return rec


def test_response_mode_is_blind_under_a_canned_mock(active, canned, oai):
    cheap = one(oai[0], model="gpt-4o-mini")
    dear = one(oai[0], model="gpt-5", messages=[{"role": "user", "content": "word " * 3000}])
    assert (cheap.model, cheap.input_tokens, cheap.cost_usd) == (dear.model, dear.input_tokens, dear.cost_usd)
    assert cheap.model == "gpt-4o-2024-08-06" and cheap.usage_source == "response"


def test_the_request_model_is_priced_never_the_mock_response_model(request_mode, canned, oai):
    rec = one(oai[0], model="gpt-4o-mini")
    assert rec.model == "gpt-4o-mini" and rec.usage_source == "request"
    assert (rec.cached_input_tokens, rec.reasoning_tokens) == (0, 0)
    assert rec.cost_usd == pytest.approx(pricing.calculate("gpt-4o-mini", rec.input_tokens, rec.output_tokens))


def test_each_change_of_the_request_or_answer_changes_the_cost(request_mode, canned, oai):
    base = one(oai[0])
    dearer_model = one(oai[0], model="gpt-4o")
    longer_prompt = one(oai[0], messages=[{"role": "user", "content": "short " * 200}])
    with_tool = one(oai[0], tools=[TOOL])
    assert dearer_model.cost_usd > base.cost_usd
    assert longer_prompt.input_tokens > base.input_tokens and longer_prompt.cost_usd > base.cost_usd
    assert with_tool.input_tokens > base.input_tokens and with_tool.cost_usd > base.cost_usd

    canned.overrides["/chat/completions"]["choices"][0]["message"]["content"] = ANSWER + " and much more" * 20
    longer_answer = one(oai[0])
    assert longer_answer.output_tokens > base.output_tokens and longer_answer.cost_usd > base.cost_usd
    assert longer_answer.input_tokens == base.input_tokens  # the same request

    before = tokenspy.stats()["total_cost_usd"]
    one(oai[0])
    assert tokenspy.stats()["total_cost_usd"] > before  # an extra call costs too


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 129), ("gpt-4o", 124)])
def test_openai_published_example_counts_through_the_sdk(request_mode, canned, oai, model, expected):
    """OpenAI cookbook "How to count tokens with tiktoken": the example messages are 129 prompt
    tokens for gpt-4 and 124 for gpt-4o, as counted by the OpenAI API."""
    assert one(oai[0], model=model, messages=COOKBOOK_MESSAGES).input_tokens == expected


@pytest.mark.parametrize(("model", "expected"), [("gpt-4", 105), ("gpt-4o-mini", 101)])
def test_openai_published_tools_example_counts_through_the_sdk(request_mode, canned, oai, model, expected):
    rec = one(oai[0], model=model, messages=COOKBOOK_TOOL_MESSAGES, tools=COOKBOOK_TOOLS, temperature=0)
    assert rec.input_tokens == expected


def test_output_is_the_answer_counted_with_the_models_tokenizer(request_mode, canned, oai):
    from tokenspy.tokens._encodings import get_encoding  # the real BPE, from the local copy

    rec = one(oai[0], model="gpt-4o")
    assert rec.output_tokens == len(get_encoding("o200k_base").encode(ANSWER))


def test_ceiling_and_worst_case_cost(request_mode, canned, oai):
    rec = one(oai[0], model="gpt-4o", max_tokens=500)
    assert rec.max_output_tokens == 500
    assert rec.max_cost_usd == pytest.approx(pricing.calculate("gpt-4o", rec.input_tokens, 500))
    assert rec.max_cost_usd > rec.cost_usd
    assert one(oai[0]).max_output_tokens is None


def test_streams_raw_responses_parse_and_async_are_counted(request_mode, wire, oai):
    sync, aio = oai
    tracker = get_global_tracker()
    for _ in sync.chat.completions.create(model="gpt-4o", messages=MSG, stream=True):
        pass
    sync.chat.completions.with_raw_response.create(model="gpt-4o", messages=MSG)
    sync.chat.completions.parse(model="gpt-4o", messages=MSG)
    sync.responses.create(model="gpt-4.1", input="short")
    with sync.responses.stream(model="gpt-4.1", input="short") as stream:
        for _ in stream:
            pass
    sync.embeddings.create(model="text-embedding-3-small", input=["one", "two three"])

    import asyncio

    async def go():
        await aio.chat.completions.create(model="gpt-4o", messages=MSG)

    asyncio.run(go())
    recs = tracker.records()
    assert len(recs) == 7
    assert {r.usage_source for r in recs} == {"request"}
    assert [r.model for r in recs] == ["gpt-4o", "gpt-4o", "gpt-4o", "gpt-4.1", "gpt-4.1",
                                       "text-embedding-3-small", "gpt-4o"]
    assert all(r.output_tokens > 0 for r in recs if r.model != "text-embedding-3-small")
    assert recs[5].input_tokens == 3  # "one", "two three": 1 + 2 tokens, nothing else
    # the same request streamed or not counts the same input
    assert recs[0].input_tokens == recs[1].input_tokens == recs[2].input_tokens == recs[6].input_tokens


def test_anthropic_and_google_are_approximate(request_mode, wire):
    from wire import anthropic_clients, google_client

    anthropic_clients(wire)[0].messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                              messages=[{"role": "user", "content": "short"}])
    google_client(wire).models.generate_content(model="gemini-2.5-flash", contents="short")
    a, g = get_global_tracker().records()
    assert (a.model, a.usage_source, a.max_output_tokens) == ("claude-sonnet-4-5", "request_approx", 64)
    assert (g.model, g.usage_source) == ("gemini-2.5-flash", "request_approx")
    assert a.input_tokens > 0 and g.input_tokens > 0 and a.output_tokens > 0 and g.output_tokens > 0


AZURE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [sys.argv[1]]
    import httpx2, openai, tokenspy
    from wire import Wire
    tokenspy.init(usage="request")
    client = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint="https://x.openai.azure.test",
                                http_client=httpx2.Client(transport=httpx2.MockTransport(Wire())), max_retries=0)
    for deployment in ("prod-chat", "mystery"):
        client.chat.completions.create(model=deployment, messages=[{"role": "user", "content": "hi"}])
    print(json.dumps([(c["model"], c["priced"], c["cost_usd"] > 0) for c in tokenspy.stats()["calls"]]))
""")


def test_azure_deployments_are_mapped_or_reported_unpriced(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.tokenspy.deployments]\n"prod-chat" = "gpt-4o-mini"\n')
    tests = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-W", "error", "-c", AZURE_SCRIPT, str(tests)], cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == [["gpt-4o-mini", True, True], ["mystery", False, False]]


def test_an_unknown_usage_source_is_refused_naming_the_allowed_ones():
    with pytest.raises(ValueError, match="'response', 'request'"):
        tokenspy.init(usage="requests")


def test_usage_source_is_stored_and_old_dbs_migrate_to_response(tmp_path, request_mode, canned, oai):
    old = tmp_path / "old.db"
    conn = sqlite3.connect(old)
    conn.execute("CREATE TABLE llm_calls (id INTEGER PRIMARY KEY AUTOINCREMENT, function_name TEXT, "
                 "call_stack TEXT, model TEXT, provider TEXT, input_tokens INTEGER, output_tokens INTEGER, "
                 "cost_usd REAL, duration_ms REAL, timestamp REAL, session_id TEXT, git_commit TEXT)")
    conn.execute("INSERT INTO llm_calls (function_name, model, provider, input_tokens, output_tokens, cost_usd) "
                 "VALUES ('f', 'gpt-4o', 'openai', 1, 1, 0.1)")
    conn.commit()
    conn.close()
    tracker = get_global_tracker()
    tracker.set_persist_path(old)
    one(oai[0])
    tracker.flush()
    assert [r.usage_source for r in store.load_records(old)] == ["response", "request"]


PLUGIN_TEST = """
    import httpx2, openai
    from wire import Wire, fixture_json

    def test_ask():
        wire = Wire()
        wire.overrides["/chat/completions"] = fixture_json("openai_chat.json")
        client = openai.OpenAI(api_key="k", base_url="https://api.openai.test/v1",
                               http_client=httpx2.Client(transport=httpx2.MockTransport(wire)), max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
"""


def _plugin_run(pytester, *args: str) -> list[tuple[str, str]]:
    pytester.syspathinsert(str(Path(__file__).resolve().parents[1]))
    pytester.makepyfile(test_ask=PLUGIN_TEST)
    result = pytester.runpytest("--tokenspy=u.db", *args)
    result.assert_outcomes(passed=1)
    with sqlite3.connect(pytester.path / "u.db") as conn:
        return conn.execute("SELECT model, usage_source FROM llm_calls").fetchall()


def test_pytest_flag_selects_request_mode(pytester):
    assert _plugin_run(pytester, "--tokenspy-usage=request") == [("gpt-4o-mini", "request")]


def test_pyproject_selects_request_mode(pytester):
    pytester.makepyprojecttoml('[tool.tokenspy]\nusage = "request"\n')
    assert _plugin_run(pytester) == [("gpt-4o-mini", "request")]


def test_pytest_default_is_response_mode(pytester):
    assert _plugin_run(pytester) == [("gpt-4o-2024-08-06", "response")]


def test_pytest_rejects_an_unknown_usage_source(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--tokenspy=u.db", "--tokenspy-usage=both")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--tokenspy-usage: unknown usage source 'both'*'response', 'request'*"])


def test_reports_show_the_worst_case_beside_the_counted_cost(tmp_path, request_mode, canned, oai, capsys):
    from tokenspy.cli import main

    tokenspy.init(persist=True, persist_dir=tmp_path, usage="request")
    a = one(oai[0], model="gpt-4o", max_tokens=1000)
    b = one(oai[0], model="gpt-4o")  # no ceiling: counts as what it cost
    worst = a.max_cost_usd + b.cost_usd
    text = tokenspy.report()
    line = next(x for x in text.splitlines() if "worst case" in x)
    assert f"${worst:.4f}" in line or f"${worst:.6f}" in line, line
    assert "1 answer with an output ceiling" in line
    get_global_tracker().flush()
    capsys.readouterr()
    assert main(["report", "--db", str(tmp_path / "usage.db")]) == 0
    assert line.strip() in capsys.readouterr().out
    tokenspy.init(usage="request")
