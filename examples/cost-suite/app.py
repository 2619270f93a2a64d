"""A tiny LLM app: what a team's code under test looks like.

The OpenAI client is injected, so tests can hand it a client whose HTTP goes to a local transport
(see conftest.py): the real SDK, the real request and response, no network and no key.
"""

from __future__ import annotations

import tokenspy

SUMMARY_PROMPT = "Summarize the text in one sentence."
LABELS = ("bug", "feature", "question")


@tokenspy.profile
def summarize(client, text: str) -> str:
    r = client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "system", "content": SUMMARY_PROMPT}, {"role": "user", "content": text}],
    )
    return r.choices[0].message.content


@tokenspy.profile
def classify(client, text: str) -> str:
    r = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Label as one of {', '.join(LABELS)}: {text}"}],
        max_tokens=5,
    )
    return r.choices[0].message.content


@tokenspy.profile
def triage(client, issues: list[str]) -> dict[str, str]:
    return {issue: classify(client, issue) for issue in issues}
