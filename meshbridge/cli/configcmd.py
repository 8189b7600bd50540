"""``meshbridge config``: about the config file itself (``config schema``: its JSON Schema)."""

from __future__ import annotations

import click


@click.group("config")
def config() -> None:
    """About meshbridge.toml itself."""


def _schema() -> None:
    from ..schemas import CONFIG_SCHEMA, text

    click.echo(text(CONFIG_SCHEMA), nl=False)  # shipped as generated from the config's model (a test checks)


# (added to the group only: cli/__init__ registers every command at this module's top level)
config.add_command(
    click.Command(
        "schema",
        callback=_schema,
        help="Print the JSON Schema of meshbridge.toml (shipped as meshbridge/schemas/config.schema.json).\n\n"
        "Editors with TOML schema support (Taplo, Even Better TOML) complete and check the file with it: "
        "put `#:schema ./config.schema.json` on its first line.",
        short_help="Print the JSON Schema of meshbridge.toml.",
    )
)
