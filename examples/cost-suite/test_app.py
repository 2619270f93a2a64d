from app import classify, summarize, triage


def test_summarize(client):
    assert summarize(client, "tokenspy records what every LLM call costs, per test and per commit.")


def test_classify(client):
    assert classify(client, "the login button does nothing") == "bug"


def test_triage(client):
    labels = triage(client, ["crash on start", "add dark mode", "how do I export?"])
    assert set(labels.values()) <= {"bug"}
