"""The config is declared once (pydantic models): ``meshbridge config schema`` prints its JSON
Schema, ``meshbridge/schemas/config.schema.json`` ships the same text (package data), the shipped
example validates against it, and the schema refuses what the loader refuses. ``[plugins.NAME]``
tables load as raw tables."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from test_config import CMD, GOOD

from meshbridge import ConfigError, load

ROOT = Path(__file__).parent.parent
SHIPPED = ROOT / "meshbridge" / "schemas" / "config.schema.json"
EXAMPLE = ROOT / "examples" / "meshbridge.toml"


def schema_errors(document: dict[str, Any]) -> list[str]:
    """Where ``document`` breaks the shipped schema: by jsonschema when it is installed (the dev
    extra), else by loading it through the model the schema is generated from."""
    schema = json.loads(SHIPPED.read_text())
    try:
        import jsonschema
    except ImportError:
        from meshbridge.config import parse

        try:
            parse(document, EXAMPLE.resolve())
        except ConfigError as exc:
            return [exc.key]
        return []
    validator = jsonschema.Draft202012Validator(schema)
    jsonschema.Draft202012Validator.check_schema(schema)
    return [".".join(map(str, error.absolute_path)) for error in validator.iter_errors(document)]


def test_config_schema_prints_the_shipped_schema() -> None:
    done = subprocess.run([sys.executable, "-m", "meshbridge", "config", "schema"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout == SHIPPED.read_text()  # the package data, as shipped
    from meshbridge.config import schema_text

    assert schema_text() == SHIPPED.read_text(), "meshbridge/schemas/config.schema.json is stale: regenerate it"
    schema = json.loads(done.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(schema["properties"]) == {"store", "mesh", "mailboxes", "routes", "service", "alerts", "web", "plugins"}
    assert schema["required"] == ["store", "mesh"] and schema["additionalProperties"] is False
    mesh = schema["$defs"]["MeshConfig"]["properties"]
    assert mesh["chunk_size"]["default"] == 100_000_000 and "description" in mesh["chunk_size"]


def test_the_shipped_example_validates_against_the_schema() -> None:
    document = tomllib.loads(EXAMPLE.read_text())
    assert schema_errors(document) == []
    assert EXAMPLE.read_text().startswith("#:schema ../meshbridge/schemas/config.schema.json\n")  # editors find it


REFUSED = {  # what the loader refuses, the schema refuses too, at the same key
    "an unknown top-level key": (GOOD + "\n[extras]\na = 1\n", "extras"),
    "an unknown mesh key": (GOOD.replace('chunk_size = "20MB"', "chunk_sise = 1"), "mesh.chunk_sise"),
    "a bad duration": (GOOD.replace('"5m"', '"5 minutes"'), "mailboxes[0].poll_interval"),
    "an outbound route with an inbound key": (
        GOOD.replace('from = "X26ABC1"', 'from = "X26ABC1"\nmailbox = "X26ABC1"'),
        "routes[0].mailbox",
    ),
    "an inbound route without its mailbox": (GOOD.replace('mailbox = "X26ABC1"\n', ""), "routes[1].mailbox"),
    "a secret reference of another kind": (
        GOOD.replace('{ file = "secrets/pw" }', '{ vault = "pw" }'),
        "mailboxes[0].password",
    ),
    "a payload type that is not text": (GOOD.replace('"fhir"', "3"), "routes[0].payload_type"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_the_schema_refuses_what_the_loader_refuses(tmp_path: Path, case: str) -> None:
    text, key = REFUSED[case]
    path = tmp_path / "meshbridge.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load(path)
    assert info.value.key == key
    assert schema_errors(tomllib.loads(text)) != []


def test_plugin_tables_load_raw_and_relative_paths_resolve_against_the_config(tmp_path: Path) -> None:
    text = GOOD.replace(CMD, 'destination = { folder = "in" }') + (
        '\n[plugins.csv]\ndelimiter = ";"\n[plugins.audit]\nfile = "audit.log"\nlevels = { sent = true }\n'
    )
    folder = tmp_path / "conf"
    folder.mkdir()
    (folder / "meshbridge.toml").write_text(text.replace("MB_TEST_SHARED_KEY", "MB_UNSET_IS_FINE"))
    config = load(folder / "meshbridge.toml")
    assert config.plugin_tables == {"csv": {"delimiter": ";"}, "audit": {"file": "audit.log", "levels": {"sent": True}}}
    assert config.route("discharge-in").destination == {"folder": folder / "in"}
    assert config.store.path == folder / "var" / "mb.db"
    assert config.mesh.shared_key.where == "mesh.shared_key"  # named when it cannot be resolved
    assert [s.where for s in config.secrets()] == ["mesh.shared_key", "mailboxes[0].password"]
    assert load(folder / "meshbridge.toml").plugin_tables == config.plugin_tables
    (folder / "meshbridge.toml").write_text(text.replace("[plugins.csv]", "[plugin.csv]"))
    allowed = r": plugin: unknown key \(allowed: alerts, mailboxes, mesh, plugins, routes, "
    with pytest.raises(ConfigError, match=allowed):
        load(folder / "meshbridge.toml")


def test_the_schemas_ship_as_package_data() -> None:
    """Every shipped schema is package data (a wheel carries it inside ``meshbridge/``, where
    importlib.resources finds it), not data-files an installed wheel may put anywhere."""
    from fnmatch import fnmatch

    from meshbridge.itk.conformance import MESSAGE_SCHEMA, RESPONSE_SCHEMA, SCHEMAS
    from meshbridge.schemas import CONFIG_SCHEMA, text

    build = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "data-files" not in build
    patterns = build["package-data"]["meshbridge.schemas"]
    folder = ROOT / "meshbridge" / "schemas"
    shipped = sorted(p.name for p in folder.iterdir() if p.suffix != ".py" and p.name != "__pycache__")
    assert shipped == sorted([CONFIG_SCHEMA, MESSAGE_SCHEMA, RESPONSE_SCHEMA])
    assert all(any(fnmatch(name, pattern) for pattern in patterns) for name in shipped)
    assert not (ROOT / "schemas").exists()  # one copy
    assert text(CONFIG_SCHEMA) == SHIPPED.read_text() and (SCHEMAS / MESSAGE_SCHEMA).read_bytes().startswith(b"<")
