"""One exception module: every exception meshbridge raises on purpose is in ``meshbridge.errors``,
under ``MeshbridgeError``, exported from ``meshbridge``, drawn in the module's docstring and the
README as it is, and mapped to its exit code in one table that the command line alone uses.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

import meshbridge
from meshbridge import errors

ROOT = Path(meshbridge.__file__).resolve().parent.parent  # the tree under test


def error_classes() -> dict[str, type]:
    return {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }


def test_no_public_exception_class_is_defined_outside_errors() -> None:
    strays = []
    modules = [
        m.name for m in pkgutil.walk_packages(meshbridge.__path__, "meshbridge.") if m.name != "meshbridge.__main__"
    ]
    assert "meshbridge.store.sqlite" in modules and "meshbridge.errors" in modules
    for name in modules:
        module = importlib.import_module(name)
        for attr, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == name
                and not attr.startswith("_")
                and name != errors.__name__
            ):
                strays.append(f"{name}.{attr}")
    assert strays == []


def test_every_error_is_a_MeshbridgeError_exported_from_meshbridge() -> None:
    classes = error_classes()
    assert len(classes) >= 30
    for name, cls in classes.items():
        assert issubclass(cls, errors.MeshbridgeError), name
        assert name in meshbridge.__all__, f"{name} is not in meshbridge.__all__"
        assert getattr(meshbridge, name) is cls


def documented_tree() -> dict[str, str | None]:
    """``{class: parent}`` as drawn in errors.py's docstring."""
    tree: dict[str, str | None] = {}
    parents: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        if line.startswith("MeshbridgeError"):
            tree["MeshbridgeError"], parents = None, ["MeshbridgeError"]
        elif "── " in line:
            depth = line.index("──") // 4 + 1
            name = line.split("── ", 1)[1].split()[0]
            del parents[depth:]
            tree[name] = parents[-1]
            parents.append(name)
    return tree


def test_the_docstring_draws_the_hierarchy_as_it_is() -> None:
    actual = {
        name: (None if cls is errors.MeshbridgeError else cls.__bases__[0].__name__)
        for name, cls in error_classes().items()
    }
    assert documented_tree() == actual


def readme_exit_codes() -> dict[str, int]:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Errors")
    section = text[start : text.index("\n#", start + 1)]
    codes: dict[str, int] = {}
    for classes, code in re.findall(r"^\| ((?:`\w+`(?:, )?)+) \|.*\| (\d+) \|$", section, re.M):
        codes.update(dict.fromkeys(re.findall(r"`(\w+)`", classes), int(code)))
    return codes


def test_the_readme_lists_every_error_with_the_exit_code_the_cli_gives_it() -> None:
    from meshbridge.cli.exits import exit_code

    documented = readme_exit_codes()
    assert set(documented) == set(error_classes())
    assert {name: exit_code(error_classes()[name]) for name in documented} == documented


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ConfigError", 2),
        ("InvalidRequest", 2),
        ("StoreDamaged", 2),
        ("PluginError", 2),
        ("TransportError", 3),
        ("MeshAuthRefused", 4),
        ("MeshRejected", 1),
        ("SendAbandoned", 1),
        ("PayloadRejected", 1),
        ("UnknownMessage", 1),
        ("ReplayRefused", 1),
        ("AckRefused", 1),
        ("StoreError", 1),
        ("DeliveryError", 1),
        ("MeshbridgeError", 1),
    ],
)
def test_exit_codes(name: str, code: int) -> None:
    from meshbridge.cli.exits import exit_code

    assert exit_code(error_classes()[name]) == code
    if name == "MeshAuthRefused":
        assert exit_code(errors.MeshAuthRefused("refused", "X26ABC1")) == 4  # an instance too


def test_the_command_line_turns_errors_into_exit_codes_only_through_the_table() -> None:
    """No ``except SomeError: fail(..., 2)`` in meshbridge/cli: such a handler calls ``fail_for``."""
    names = set(error_classes())
    wrong = []
    cli = ROOT / "meshbridge" / "cli"
    for path in sorted(cli.glob("*.py")) if cli.is_dir() else [cli.with_suffix(".py")]:
        tree = ast.parse(path.read_text(), str(path))
        for handler in ast.walk(tree):
            if not isinstance(handler, ast.ExceptHandler) or handler.type is None:
                continue
            caught = {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)}
            caught |= {n.attr for n in ast.walk(handler.type) if isinstance(n, ast.Attribute)}
            if not caught & names:
                continue
            for call in ast.walk(handler):
                func = call.func if isinstance(call, ast.Call) else None
                called = getattr(func, "id", None) or getattr(func, "attr", None)
                if called in ("fail", "exit"):
                    wrong.append(f"{path.name}:{call.lineno}: except {ast.unparse(handler.type)}: {called}(...)")
    assert wrong == []
