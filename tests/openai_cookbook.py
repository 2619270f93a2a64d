"""OpenAI's published token-count examples, shared by the tokenizer and request-mode tests."""

from __future__ import annotations

# OpenAI cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb (openai/openai-cookbook),
# section 6: these messages are 129 prompt tokens for gpt-3.5-turbo, gpt-4-0613 and gpt-4, and 124
# for gpt-4o and gpt-4o-mini, "counted by the OpenAI API".
COOKBOOK_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",  # noqa: E501 (the published text, verbatim)
    },
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",  # noqa: E501
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    },
]

# Same notebook, section 7: with this tool the request is 105 prompt tokens for gpt-3.5-turbo and
# gpt-4, and 101 for gpt-4o and gpt-4o-mini, "counted by the OpenAI API".
COOKBOOK_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]
COOKBOOK_TOOL_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]
