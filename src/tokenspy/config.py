"""Process-wide settings changed by ``tokenspy.init`` and the pytest plugin."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Called before a setting changes (the recorder books the calls it deferred under the old ones).
on_change: list[Callable[[], None]] = []


@dataclass
class Config:
    track_git: bool = False
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    # Ask OpenAI-style streams for a usage chunk (and hide that chunk from the caller).
    inject_stream_usage: bool = True

    def __setattr__(self, name: str, value: Any) -> None:
        for hook in on_change:
            hook()
        object.__setattr__(self, name, value)


config = Config()
