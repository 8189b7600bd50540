"""States, directions and timeline kinds are written once, in ``meshbridge/models.py``: elsewhere
the code names the enum member (``State.FAILED``), never the bare text (``"failed"``), where a state
is compared or handed to a call. A word that only looks like a state (a FHIR issue type, MESH's
own status text, a log step's name) carries ``# not a state: what it is`` on its line."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import meshbridge
from meshbridge.models import Direction, State, TimelineKind

PACKAGE = Path(meshbridge.__file__).parent
STATES = {s.value for s in State}
KINDS = {k.value for k in TimelineKind}
DIRECTIONS = {d.value for d in Direction}
MARK = "not a state"


def words(node: ast.AST, values: set[str]) -> Iterator[ast.Constant]:
    """``node`` if it is a string constant among ``values``; or those of a tuple, list or set literal."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in values:
        yield node
    elif isinstance(node, ast.Tuple | ast.List | ast.Set):
        for element in node.elts:
            yield from words(element, values)


def literals(tree: ast.AST) -> Iterator[ast.Constant]:
    """State texts compared (``== "failed"``, ``in ("sent", ...)``) or given to a call
    (``transition(id, "valid")``, ``state="valid"``, ``from_states=("mesh-acked",)``); direction
    texts likewise; timeline kinds given as ``kind=``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            for side in (node.left, *node.comparators):
                yield from words(side, STATES | DIRECTIONS)
        elif isinstance(node, ast.Call):
            for arg in node.args:
                yield from words(arg, STATES | DIRECTIONS)
            for keyword in node.keywords:
                yield from words(keyword.value, STATES | DIRECTIONS | (KINDS if keyword.arg == "kind" else set()))


def offenders(path: Path, root: Path = PACKAGE) -> list[str]:
    """``module:line: 'text'`` for each bare state text in ``path`` not marked as something else."""
    text = path.read_text()
    lines = text.splitlines()
    found = sorted(literals(ast.parse(text)), key=lambda c: (c.lineno, c.col_offset))
    return [f"{path.relative_to(root)}:{c.lineno}: {c.value!r}" for c in found if MARK not in lines[c.lineno - 1]]


def test_no_state_is_written_as_bare_text_outside_models() -> None:
    modules = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name != "models.py" and "migrat" not in p.name]
    assert len(modules) > 40
    found = [line for module in modules for line in offenders(module)]
    assert found == [], "name the member of State, Direction or TimelineKind (meshbridge.models):\n" + "\n".join(found)


def test_the_scan_sees_each_form(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        'if state == "failed": pass\n'
        'if m["state"] in ("sent", "delivered"): pass\n'
        'store.transition(mid, "valid", from_states=("mesh-acked",))\n'
        'store.messages(state="accepted", direction="in")\n'
        'store.update(mid, kind="chunk-sent")\n'
        'move_aside(path, "sent")  # not a state: a folder\n'
        'log.info("failed to %s", "the word")\n'
    )
    found = [line.split(": ", 1)[1] for line in offenders(sample, tmp_path)]
    expected = ["failed", "sent", "delivered", "valid", "mesh-acked", "accepted", "in", "chunk-sent"]
    assert found == [repr(word) for word in expected]  # not the marked folder name, not the log text
