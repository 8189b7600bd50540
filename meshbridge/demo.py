"""``meshbridge demo``: round trips through an embedded mesh-sandbox, then an ITK3 exchange
(:mod:`meshbridge.demo_itk`), in a temporary workspace."""

from __future__ import annotations

import hashlib
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bridge import Bridge
from .config import load
from .demo_itk import Command, run_itk
from .models import Direction, Message, State
from .plugins import Plugins
from .sandbox import Sandbox, config_text

SENDER, RECIPIENT = "X26ABC1", "X26ABC2"
CHUNK = 64 * 1024

ROUTES = """
[[routes]]
name = "{name}-out"
direction = "outbound"
from = "{sender}"
to = "{recipient}"
workflow_id = "{workflow}"
payload_type = "{ptype}"

[[routes]]
name = "{name}-in"
direction = "inbound"
mailbox = "{recipient}"
workflow_id = "{workflow}"
payload_type = "{ptype}"
destination = {{ folder = "in/{name}" }}
"""


def samples(plugins: Plugins) -> list[tuple[str, str, bytes]]:
    """``(name, type, bytes)``: one per installed payload type with an example, one big enough to chunk."""
    bulk = b"".join(f"line {i:07d} of a bulk text extract\n".encode() for i in range(12_000))
    examples = [(t.name, t.name, t.example) for t in plugins.payload_types().values() if t.example]
    return [*examples, ("chunked", "text", bulk)]


def run_demo(
    *,
    keep: bool,
    echo: Callable[[str], None],
    show: Callable[[Message], None],
    command: Command,
) -> bool:
    """Payload round trips, then an ITK3 exchange between two organisations (:mod:`meshbridge.demo_itk`);
    True when all of it happened as it should. ``command(config, *args)`` runs a meshbridge command."""
    started = time.monotonic()
    workspace = Path(tempfile.mkdtemp(prefix="meshbridge-demo-"))
    _live["workspace"] = workspace
    try:
        _live["sandbox"] = sandbox = Sandbox()
        with sandbox:
            echo(f"mesh-sandbox running on {sandbox.url}; workspace {workspace}")
            plugins = Plugins()
            config_file = _write_workspace(workspace, sandbox, samples(plugins))
            with Bridge(load(config_file), plugins) as bridge:
                sent = []
                for name, _ptype, data in samples(plugins):
                    payload = workspace / "out" / f"{name}.dat"
                    payload.write_bytes(data)
                    message = bridge.send(payload, route=f"{name}-out")
                    sent.append((message.id, hashlib.sha256(data).hexdigest()))
                    chunks = message.chunks_total or 1
                    echo(
                        f"sent {name}: {len(data)} bytes, {message.payload_type}, in {chunks} chunk(s)"
                        f" as {message.mesh_message_id}"
                    )
                report = bridge.poll()
                for problem in report.problems:
                    echo(f"problem: {problem}")
                ok = not report.problems
                for message_id, sha in sent:
                    message = bridge.show(message_id)
                    show(message)
                    found = bridge.store.find(Direction.IN, message.mesh_message_id or "")
                    if found is None:
                        ok = False
                        echo(f"{message_id} was not collected")
                        continue
                    inbound = bridge.show(found.id)
                    show(inbound)
                    delivered = Path(inbound.destination or "")
                    same = delivered.is_file() and hashlib.sha256(delivered.read_bytes()).hexdigest() == sha
                    ok = ok and same and message.state == State.DELIVERED and inbound.state == State.DELIVERED
                    echo(f"delivered to {delivered} — sha256 {'matches' if same else 'DIFFERS'}")
            ok = run_itk(workspace, sandbox, plugins, echo=echo, command=command) and ok
        echo(f"demo {'passed' if ok else 'FAILED'} in {time.monotonic() - started:.1f}s")
        return ok
    finally:
        if keep:
            echo(f"workspace kept: {workspace}")
        else:
            _remove(workspace)


_live: dict[str, Any] = {}  # the running demo's sandbox and workspace, for abandon()


def abandon(*, keep: bool) -> None:
    """Stop the running demo's sandbox and remove its workspace (unless ``keep``): for a signal
    handler that then ends the process (the sandbox runs in its own session, so it would outlive it)."""
    sandbox, workspace = _live.pop("sandbox", None), _live.pop("workspace", None)
    if sandbox is not None:
        sandbox.stop()
    if workspace is not None and not keep:
        _remove(workspace)


def _write_workspace(workspace: Path, sandbox: Sandbox, payloads: list[tuple[str, str, bytes]]) -> Path:
    (workspace / "out").mkdir()
    routes = "".join(
        ROUTES.format(
            name=name, ptype=ptype, sender=SENDER, recipient=RECIPIENT, workflow=f"MESHBRIDGE_DEMO_{name.upper()}"
        )
        for name, ptype, _ in payloads
    )
    mesh = f'chunk_size = {CHUNK}\ntracking_interval = "0s"\n'
    config_file = workspace / "meshbridge.toml"
    config_file.write_text(config_text(sandbox, routes, mailboxes=(SENDER, RECIPIENT), mesh=mesh))
    return config_file


def _remove(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
