"""``meshbridge config``: about the config file itself (``config schema``: its JSON Schema)."""

from __future__ import annotations

import click


@click.group("config")
def config() -> None:
    """About meshbridge.toml itself."""


def _schema() -> None:
    from ..config import schema_text

    click.echo(schema_text(), nl=False)


# (added to the group only: cli/__init__ registers every command at this module's top level)
config.add_command(
    click.Command(
        "schema",
        callback=_schema,
        help="Print the JSON Schema of meshbridge.toml (shipped as schemas/config.schema.json).\n\n"
        "Editors with TOML schema support (Taplo, Even Better TOML) complete and check the file with it: "
        "put `#:schema ./config.schema.json` on its first line.",
        short_help="Print the JSON Schema of meshbridge.toml.",
    )
)
