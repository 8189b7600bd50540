"""An event notifier plugin: every event an operator may need to act on, as a line of JSON.

::

    [plugins.event_log]
    path = "var/events.jsonl"            # relative to this config file's folder
    kinds = ["rejected", "overdue"]      # optional: only these kinds (default: all)

A notifier runs after the event is recorded in the store; if it raises, meshbridge logs it and
carries on, so a full disk here never stops messages moving.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from meshbridge import Notification, hookimpl


@dataclass(frozen=True)
class Settings:
    """``[plugins.event_log]``."""

    path: Path
    kinds: tuple[str, ...] = ()


@hookimpl
def meshbridge_config_model() -> type[Settings]:
    return Settings


@hookimpl
def meshbridge_on_event(event: Notification, plugin_config: Settings | None) -> None:
    if plugin_config is None or (plugin_config.kinds and event.kind not in plugin_config.kinds):
        return  # (None: run without a config file, e.g. `meshbridge validate`)
    line = {"kind": event.kind, "message_id": event.message_id, "summary": event.summary, "detail": event.detail}
    plugin_config.path.parent.mkdir(parents=True, exist_ok=True)
    with plugin_config.path.open("a", encoding="utf-8") as log:
        log.write(json.dumps(line, default=str) + "\n")
