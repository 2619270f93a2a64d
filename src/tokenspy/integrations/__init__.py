"""Integrations with frameworks that sit above the provider SDKs (LangChain/LangGraph).

Each lives in its own module and imports its framework on import:
``tokenspy.integrations.langchain`` needs ``langchain-core``.
"""
