"""The ``Store`` protocol: what the rest of meshbridge may use of a store, and the SQLite store has.

mypy checks the same in ``meshbridge/store/__init__.py`` (an SQLiteStore is a Store); this checks it
at run time, and that code outside ``meshbridge/store/`` uses nothing of a store the protocol lacks.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path

import pytest

import meshbridge
from meshbridge.store import SQLiteStore, Store
from meshbridge.store.protocol import DiskRoom, LoginRecords, PayloadStore

PACKAGE = Path(meshbridge.__file__).parent
PARTS = {"payloads": PayloadStore, "space": DiskRoom, "logins": LoginRecords}  # a Store's parts, each a protocol


def members(protocol: type) -> set[str]:
    return {name for name in vars(protocol) if not name.startswith("_")} | set(getattr(protocol, "__annotations__", {}))


def check(protocol: type, implementation: object) -> list[str]:
    """What ``implementation`` lacks of ``protocol``, or has with other parameters."""
    problems = []
    for name in sorted(members(protocol)):
        declared = inspect.getattr_static(protocol, name)
        if not hasattr(implementation, name):
            problems.append(f"{type(implementation).__name__} has no {name}")
        elif callable(declared) and not isinstance(declared, property):
            wanted = list(inspect.signature(declared).parameters.values())[1:]  # without self
            found = list(inspect.signature(getattr(implementation, name)).parameters.values())
            if [(p.name, p.kind, p.default) for p in wanted] != [(p.name, p.kind, p.default) for p in found]:
                has, declares = inspect.signature(getattr(implementation, name)), inspect.signature(declared)
                problems.append(f"{name}{has} is not {name}{declares}")
    return problems


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(tmp_path / "mb.db")
    yield opened
    opened.close()


def test_the_sqlite_store_is_a_store(store: SQLiteStore) -> None:
    assert check(Store, store) == []
    for part, protocol in PARTS.items():
        assert check(protocol, getattr(store, part)) == [], part


def test_the_check_finds_what_is_missing_or_different() -> None:
    class Partial:
        def get(self, message_id: str, extra: int = 0) -> None: ...

    problems = check(Store, Partial())
    assert "Partial has no transition" in problems
    assert any(p.startswith("get(") and "extra" in p for p in problems)


def uses_of_a_store() -> dict[str, set[str]]:
    """Attributes read from a store (``store.x``, ``self.store.x``, ``bridge.store.x``) outside
    ``meshbridge/store/``, by name, with the modules that read them."""
    uses: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        if module.startswith("store/"):
            continue
        for node in ast.walk(ast.parse(path.read_text(), module)):
            if not isinstance(node, ast.Attribute):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("store", "_store"):
                if module == "cli/storecmd.py" and node.attr == "command":  # the click group named store
                    continue
            elif isinstance(value, ast.Attribute) and value.attr in ("store", "_store"):
                base = value.value
                if (isinstance(base, ast.Name) and base.id == "config") or (
                    isinstance(base, ast.Attribute) and base.attr == "config"
                ):
                    continue  # the [store] section of the config
            else:
                continue
            uses.setdefault(node.attr, set()).add(module)
    return uses


def test_meshbridge_uses_only_what_the_protocol_names() -> None:
    uses = uses_of_a_store()
    assert {"transition", "get", "payloads", "page", "message"} <= set(uses)  # the scan finds them
    assert {name: sorted(where) for name, where in uses.items() if name not in members(Store)} == {}


# Subscripts outside the store whose key is a column name but which are not store rows: "module:value" -> why
NOT_ROWS = {
    "sending.py:fields": "NewMessage, a TypedDict of what `accept` is told about a message to send",
    "pipeline/outbound.py:detail": "the JSON detail of a timeline entry being built",
    "steps.py:detail": "the JSON detail of a timeline entry being logged",
    "sandbox.py:body": "the JSON body of a request to mesh-sandbox",
    "sandbox.py:response.json()": "the JSON answer of mesh-sandbox",
    "config/route.py:data": "the raw [[routes]] table of meshbridge.toml, before validation",
    "itk/build.py:details": "a FHIR resource (JSON) being built",
    "itk/build.py:header": "a FHIR MessageHeader (JSON) being built",
}


def columns(store: SQLiteStore) -> set[str]:
    """The columns of the tables a store's reads return as typed objects."""
    tables = ("messages", "events", "expectations", "mesh_logins", "ack_keys")
    return {row[1] for table in tables for row in store.conn.execute(f"PRAGMA table_info({table})")}


def subscripts(module: str, text: str) -> dict[str, set[str]]:
    """The ``value["key"]`` subscripts of one module, keyed by ``module:value``, with their keys."""
    found: dict[str, set[str]] = {}
    for node in ast.walk(ast.parse(text, module)):
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            found.setdefault(f"{module}:{ast.unparse(node.value)}", set()).add(node.slice.value)
    return found


def imported(path: Path) -> set[str]:
    """The modules ``path`` imports, relative ones without their dots (``..store`` -> ``store``)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names.add((node.module or "").removeprefix("meshbridge."))
        elif isinstance(node, ast.Import):
            names.update(a.name.removeprefix("meshbridge.") for a in node.names)
    return names


def row_reads(known: set[str]) -> dict[str, list[str]]:
    """Subscripts by a column name outside ``meshbridge/store/`` and ``models.py`` (which turn rows
    into typed objects) and ``payloads/`` (validators read payload documents and never reach the
    store: checked below), keyed by ``module:value``, with the columns read."""
    reads: dict[str, list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = str(path.relative_to(PACKAGE))
        if module.startswith("payloads/"):
            assert "store" not in {a.split(".")[0] for a in imported(path)}, f"{module} reaches the store"
            continue
        if module.startswith("store/") or module == "models.py":
            continue
        for where, keys in subscripts(module, path.read_text()).items():
            if keys & known:
                reads[where] = sorted(keys & known)
    return reads


def test_no_code_outside_the_store_reads_a_row(store: SQLiteStore) -> None:
    """Store reads are typed (issue 11): ``message.state``, never ``message["state"]``."""
    known = columns(store)
    assert {"state", "mesh_message_id", "kind", "due_at", "since"} <= known
    reads = row_reads(known)
    assert {where: keys for where, keys in reads.items() if where not in NOT_ROWS} == {}
    assert sorted(set(NOT_ROWS) - set(reads)) == [], "no longer needed: take them off NOT_ROWS"


def test_the_row_scan_finds_a_row_read() -> None:
    text = 'message = store.get("x")\nif message["state"] == "sent" and config["x"]: print(message.id)'
    assert subscripts("m.py", text) == {"m.py:message": {"state"}, "m.py:config": {"x"}}
