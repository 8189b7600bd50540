"""The command line (``meshbridge``). Thin: parse, call :class:`~meshbridge.Bridge`, print.

Exit codes: 0 done; 1 refused or failed (the reason is printed); 2 usage or configuration error;
3 MESH could not be reached (``send``: the message is stored and ``poll`` retries it; ``poll``,
``run --once``, ``retry``: for some mailbox, the rest of the work done); 4 MESH refused a
mailbox's login, its password or ``[mesh] shared_key`` (``send``: the message is stored and waits,
``accepted``; ``poll``, ``run --once``, ``retry``: the rest of the work done; 4 wins over 3).
An exception becomes its exit code through one table, :mod:`.exits`.

Text from a peer (workflow ids, subjects, file names, local ids, findings, ack texts) is data: every
human line goes through :func:`echo` or :func:`literal`, never through rich markup, and control
characters are shown as escapes (:func:`visible`).
"""

from __future__ import annotations

from pathlib import Path

import click

from . import configcmd, payload, reading, running, sandbox, sending, serving, storecmd
from .output import echo, fail, literal

__all__ = ["echo", "fail", "literal", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config",
    type=click.Path(path_type=Path),
    default=None,
    help="Config file (default: $MESHBRIDGE_CONFIG, else ./meshbridge.toml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per line (for journald, Splunk, ELK).",
)
@click.option(
    "--log-level",
    default="WARNING",
    show_default=True,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.version_option(package_name="meshbridge")
@click.pass_context
def main(ctx: click.Context, config: Path | None, log_format: str, log_level: str) -> None:
    """meshbridge: NHS MESH with ITK3 reliable messaging."""
    from ..logs import configure

    configure(log_level, log_format)
    ctx.obj = {"config": config}


for _module in (sending, reading, payload, running, sandbox, serving, configcmd, storecmd):
    _commands = [c for c in vars(_module).values() if isinstance(c, click.Command)]
    _nested = [sub for c in _commands if isinstance(c, click.Group) for sub in c.commands.values()]
    for _command in _commands:
        if _command not in _nested:  # a group's own commands (store migrate) stay in their group
            main.add_command(_command)

if __name__ == "__main__":  # pragma: no cover
    main()
