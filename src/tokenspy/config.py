"""Process-wide settings changed by ``tokenspy.init`` and the pytest plugin."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field


@dataclass
class Config:
    track_git: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Ask OpenAI-style streams for a usage chunk (and hide that chunk from the caller).
    inject_stream_usage: bool = True
    # Where token counts come from: "response" or "request" (see tokenspy.usage_source).
    usage: str = "response"


config = Config()
