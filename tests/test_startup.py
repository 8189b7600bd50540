"""Fast start: ``--help`` and ``status`` import only what they use; the package root is lazy; the
store's schema version is checked on opening and only ``store migrate`` (and the pipeline's
commands) migrate it. Real processes and real SQLite stores; timings are in tests/bench/bench_startup.py."""

from __future__ import annotations

import ast
import json
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import meshbridge
from meshbridge.store import migrating
from meshbridge.testing import run_cli as cli

ROOT = Path(__file__).resolve().parents[1]
# What --help must never load; status may load the config's own dependencies (pydantic) and nothing else.
HEAVY = ("requests", "sqlite_utils", "lxml", "fhir", "mesh_client", "pydantic", "urllib3", "pluggy")
STATUS_HEAVY = tuple(name for name in HEAVY if name != "pydantic")
LAST = "m017_alert_outbox"  # the schema's last migration (test_migration_names_are_the_schemas checks)

PROBE = """
import json, sys
from meshbridge.cli import main
try:
    code = main(sys.argv[1:], standalone_mode=False) or 0  # a command's callback returns None
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted({m.split(".")[0] for m in sys.modules})}), file=sys.stderr)
"""

CONFIG = """\
[store]
path = "var/mb.db"

[mesh]
url = "http://127.0.0.1:9"   # nothing listens: status must never call MESH
shared_key = "unused"

[[mailboxes]]
id = "X26ABC1"
password = "unused"

[[routes]]
name = "out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "WF"
payload_type = "csv"   # no plugin installs it: the pipeline refuses the config, status does not load plugins
"""


def probe(*args: str, cwd: Path | None = None) -> tuple[subprocess.CompletedProcess[str], dict]:
    """Run the command line in a fresh interpreter; what it printed and the top-level modules it loaded."""
    done = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120, cwd=cwd)
    report = json.loads(done.stderr.strip().splitlines()[-1])
    return done, report


@pytest.mark.parametrize("args", [("--help",), ("status", "--help"), ("store", "--help"), ("--version",)])
def test_help_imports_none_of_the_pipeline(args: tuple[str, ...]) -> None:
    done, report = probe(*args)
    assert report["code"] == 0 and ("Usage:" in done.stdout or "version" in done.stdout), done.stdout
    assert "click" in report["modules"]  # the probe sees what was imported
    assert [m for m in HEAVY if m in report["modules"]] == []


def outdated_store(tmp_path: Path) -> tuple[Path, Path]:
    """A config (whose route names an uninstalled payload type) and a real store holding three
    messages, one expectation owed, whose schema lacks its last migration (as an older meshbridge left it)."""

    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG)
    db = tmp_path / "var" / "mb.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        migrating.apply(conn, stop_before=LAST)
        for id_, direction, state in (("o1", "out", "sent"), ("o2", "out", "sent"), ("i1", "in", "delivered")):
            conn.execute(
                "INSERT INTO messages (id, direction, state, route, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                [id_, direction, state, direction, "2024-01-01T00:00:00+00:00", "2024-01-01T00:00:00+00:00"],
            )
        conn.execute("INSERT INTO expectations (message_id, kind) VALUES ('i1', 'bus-ack-owed')")
    conn.close()
    return config, db


def pending_in(path: Path) -> list[str]:
    from meshbridge.store.migrating import pending

    conn = sqlite3.connect(path)
    try:
        return pending(conn)
    finally:
        conn.close()


def test_status_reads_a_real_store_without_the_pipeline(tmp_path: Path) -> None:
    config, db = outdated_store(tmp_path)
    migrated = cli(config, "store", "migrate")
    assert migrated.returncode == 0 and migrated.stdout == f"store {db}: applied 1 migration: {LAST}\n", migrated
    done, report = probe("--config", str(config), "status", "--json", cwd=tmp_path)
    assert report["code"] == 0, done.stderr
    assert json.loads(done.stdout) == {
        "counts": {"in": {"delivered": 1}, "out": {"sent": 2}},
        "overdue": 0,
        "overdue_messages": 0,
        "owed": 1,
        "by_route": [
            {"route": "in", "direction": "in", "state": "delivered", "messages": 1},
            {"route": "out", "direction": "out", "state": "sent", "messages": 2},
        ],
    }
    assert "sqlite3" in report["modules"] and "meshbridge" in report["modules"]
    assert [m for m in STATUS_HEAVY if m in report["modules"]] == []
    # the pipeline loads plugins and refuses the route; status above did not need them
    refused = cli(config, "messages")
    assert refused.returncode == 2 and "no payload type 'csv' is installed" in refused.stderr, refused.stderr


def test_status_refuses_an_older_store_in_one_line_and_store_migrate_brings_it_up(tmp_path: Path) -> None:
    config, db = outdated_store(tmp_path)
    for args in (("status",), ("status", "--json")):
        done = cli(config, *args)
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr == (
            f"meshbridge: store {db} is older than this meshbridge (1 migration to apply): "
            "run `meshbridge store migrate`\n"
        )
    assert pending_in(db) == [LAST]  # refused untouched
    migrated = cli(config, "store", "migrate")
    assert migrated.returncode == 0 and migrated.stdout == f"store {db}: applied 1 migration: {LAST}\n", migrated
    assert pending_in(db) == []
    again = cli(config, "store", "migrate")
    assert again.returncode == 0 and again.stdout == f"store {db}: up to date (schema {LAST})\n", again
    status = cli(config, "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["counts"] == {"in": {"delivered": 1}, "out": {"sent": 2}}  # nothing lost


def test_opening_the_pipeline_migrates_an_older_store(tmp_path: Path) -> None:
    config, db = outdated_store(tmp_path)
    config.write_text(CONFIG.replace('payload_type = "csv"', 'payload_type = "text"'))
    listed = cli(config, "messages", "--json")
    assert listed.returncode == 0, listed.stderr
    assert sorted(m["state"] for m in json.loads(listed.stdout)) == ["delivered", "sent", "sent"]
    assert pending_in(db) == []


def test_store_migrate_builds_a_missing_store(tmp_path: Path) -> None:
    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG)
    db = tmp_path / "var" / "mb.db"
    done = cli(config, "store", "migrate")
    assert done.returncode == 0 and done.stdout == f"store {db}: created (schema {LAST})\n", done
    assert pending_in(db) == []


def test_store_migrate_reports_a_bad_config_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "meshbridge.toml"
    config.write_text(CONFIG.replace('[store]\npath = "var/mb.db"', "[store]\npath = 3"))
    done = cli(config, "store", "migrate")
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "store.path" in done.stderr, done
    assert not (tmp_path / "var").exists()


def test_migration_names_are_the_schemas() -> None:
    from meshbridge.store.migrating import NAMES
    from meshbridge.store.schema import MIGRATIONS

    assert tuple(m.__name__ for m in MIGRATIONS) == NAMES and len(set(NAMES)) == len(NAMES)
    assert NAMES[-1] == LAST


def test_importing_the_package_loads_none_of_it() -> None:
    code = "import sys, meshbridge; print(sorted(m for m in sys.modules if m.startswith('meshbridge')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "['meshbridge', 'meshbridge._version']"


def test_every_public_name_resolves_from_the_package_root() -> None:
    exported = {name for names in meshbridge._HOMES.values() for name in names}
    assert set(meshbridge.__all__) == exported | {"__version__"}
    assert len(meshbridge.__all__) == len(set(meshbridge.__all__))
    for name in meshbridge.__all__:
        assert getattr(meshbridge, name) is not None, name
    assert set(meshbridge.__all__) <= set(dir(meshbridge))
    from meshbridge.bridge import Bridge

    assert meshbridge.Bridge is Bridge
    with pytest.raises(AttributeError, match="has no attribute 'Bridges'"):
        meshbridge.Bridges  # noqa: B018


def test_type_checkers_see_the_same_names_as_run_time() -> None:
    """The TYPE_CHECKING imports in meshbridge/__init__.py name exactly the lazy exports, from the same modules."""
    tree = ast.parse((ROOT / "meshbridge" / "__init__.py").read_text())
    guarded = next(node for node in tree.body if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING")
    seen = {
        (f"{'.' * node.level}{node.module}", alias.name)
        for node in guarded.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert seen == {(module, name) for module, names in meshbridge._HOMES.items() for name in names}


def test_the_version_has_its_own_module_and_pyproject_reads_it() -> None:
    from meshbridge._version import __version__

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "meshbridge._version.__version__"}
    assert meshbridge.__version__ == __version__
    mesh_source = (ROOT / "meshbridge" / "mesh.py").read_text()
    assert "from . import __version__" not in mesh_source and "from ._version import __version__" in mesh_source
