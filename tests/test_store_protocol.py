"""The ``Store`` protocol: what the rest of meshbridge may use of a store, and both stores have.

mypy checks the same in ``meshbridge/store/__init__.py`` (each store is a Store); this checks it
at run time, and that code outside ``meshbridge/store/`` uses nothing of a store the protocol lacks.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import meshbridge
from meshbridge.store import Store
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


def test_each_backends_store_is_a_store(store: Store) -> None:  # SQLiteStore and PostgresStore
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
