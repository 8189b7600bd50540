"""Notifications (``meshbridge_on_event``): one typed kind list, every kind emitted through it and documented.

Every emit site names an :class:`EventKind` member (checked in the source, so a kind the enum does
not list cannot be emitted), every member is emitted somewhere, and README's Notifications table
and the hookspec's docstring list exactly the members. Each notification has its own id, the same
for every plugin told of it; one about a mailbox has no message id. Against the real mesh-sandbox.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path

import pytest
from conftest import WORKFLOW

import meshbridge
from meshbridge import Bridge, EventKind, Notification, hookimpl, hookspecs, load
from meshbridge.plugins import Plugins, make_plugin_manager
from meshbridge.sandbox import PASSWORD, Sandbox, config_text

ROOT = Path(meshbridge.__file__).resolve().parent.parent  # the tree under test
PACKAGE = ROOT / "meshbridge"
EMITTERS = {"notify", "_notify", "_raise", "Notification"}  # callables whose first argument is a kind
PATIENT = b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="unknown"/></Patient>'
ITK_ROUTES = f"""
[[routes]]
name = "toc-out"
direction = "outbound"
from = "X26ABC1"
to = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{ event = "ITK006D" }}

[[routes]]
name = "toc-in"
direction = "inbound"
mailbox = "X26ABC2"
workflow_id = "{WORKFLOW}"
payload_type = "fhir"
itk = {{}}
destination = {{ folder = "in" }}
"""


def sources() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(PACKAGE.rglob("*.py"))]


def kind_members(node: ast.expr) -> list[str] | None:
    """The EventKind members an expression names (``EventKind.X``, or a conditional of such); None if it is not one."""
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "EventKind":
        return [node.attr]
    if isinstance(node, ast.IfExp):
        body, orelse = kind_members(node.body), kind_members(node.orelse)
        return None if body is None or orelse is None else body + orelse
    return None


def annotated_kind_parameters(tree: ast.Module) -> dict[int, set[str]]:
    """For each line of a function, the names of its parameters annotated ``EventKind``."""
    found: dict[int, set[str]] = {}
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            names = {
                a.arg
                for a in function.args.args + function.args.kwonlyargs
                if a.annotation is not None and ast.unparse(a.annotation) == "EventKind"
            }
            for line in range(function.lineno, (function.end_lineno or function.lineno) + 1):
                found.setdefault(line, set()).update(names)
    return found


def test_every_emit_site_names_an_EventKind_member() -> None:
    checked, wrong = 0, []
    for path, tree in sources():
        kinds_here = annotated_kind_parameters(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in EMITTERS:
                continue
            where, first = f"{path.relative_to(ROOT)}:{node.lineno}", node.args[0]
            if name == "notify" and isinstance(first, ast.Call) and getattr(first.func, "id", "") == "Notification":
                continue  # Plugins.notify(Notification(...)): the Notification call is checked itself
            members = kind_members(first)
            if members is not None:
                wrong += [f"{where}: EventKind.{m} is not a member" for m in members if m not in EventKind.__members__]
            elif not (isinstance(first, ast.Name) and first.id in kinds_here.get(node.lineno, set())):
                wrong.append(f"{where}: {name}({ast.unparse(first)}, ...) does not name an EventKind")
            checked += 1
    assert checked >= 20, f"only {checked} emit sites found: has the emitting code moved?"
    assert wrong == []


def test_every_EventKind_member_is_emitted_and_every_named_member_exists() -> None:
    named: set[str] = set()
    for path, tree in sources():
        if path.name == "events.py":
            continue
        for node in ast.walk(tree):
            members = kind_members(node) if isinstance(node, ast.Attribute) else None
            named.update(members or [])
    assert named - set(EventKind.__members__) == set(), "EventKind.X named in the code but not a member"
    assert set(EventKind.__members__) - named == set(), "a kind the code never emits"


def documented_in_readme() -> set[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Notifications (`meshbridge_on_event`)")
    section = text[start : text.index("\n#", start + 1)]
    return set(re.findall(r"^\| `([a-z-]+)` \|", section, re.M))


def documented_in_hookspec() -> set[str]:
    return set(re.findall(r"^\s*\* ``([a-z-]+)``:", hookspecs.meshbridge_on_event.__doc__ or "", re.M))


def test_every_kind_is_documented_in_the_readme_and_the_hookspec() -> None:
    kinds = {kind.value for kind in EventKind}
    assert documented_in_readme() == kinds
    assert documented_in_hookspec() == kinds


def test_a_notification_takes_only_a_known_kind_and_has_an_id_of_its_own() -> None:
    with pytest.raises(ValueError, match="'overdo' is not a valid EventKind"):
        Notification("overdo", "m1", "late")
    first, second = Notification("overdue", "m1", "late"), Notification(EventKind.OVERDUE, "m1", "late")
    assert first.kind is EventKind.OVERDUE and first.kind == "overdue"
    assert re.fullmatch(r"[0-9a-f]{32}", first.id) and first.id != second.id
    assert first.mailbox is None
    with pytest.warns(DeprecationWarning, match="meshbridge.Notification"):
        from meshbridge.events import Event
    assert Event is Notification


class Recorder:
    def __init__(self) -> None:
        self.heard: list[Notification] = []

    @hookimpl
    def meshbridge_on_event(self, event: Notification) -> None:
        self.heard.append(event)


def with_recorders(path: Path) -> tuple[Bridge, Recorder, Recorder]:
    pm = make_plugin_manager(load_entrypoints=False)
    first, second = Recorder(), Recorder()
    pm.register(first, name="first")
    pm.register(second, name="second")
    return Bridge(load(path), Plugins(pm)), first, second


def test_a_duplicate_itk_message_is_one_notification_to_every_plugin_and_one_log_line(
    tmp_path: Path, meshbridge_config, mesh_peer, caplog: pytest.LogCaptureFixture
) -> None:
    path = meshbridge_config(ITK_ROUTES)
    payload = tmp_path / "patient.xml"
    payload.write_bytes(PATIENT)
    bridge, first, second = with_recorders(path)
    with bridge:
        sent = bridge.send(payload, route="toc-out")
        wire = bridge.store.payloads.read(sent.payload_sha256)
        mesh_peer("X26ABC1").send_message("X26ABC2", wire, workflow_id=WORKFLOW)  # the same ITK message again
        with caplog.at_level(logging.INFO):
            bridge.poll()
        [duplicate] = [m for m in bridge.messages(direction="in") if m.state == "duplicate"]
    assert duplicate.inf_ack_code == "20007"
    [heard] = [n for n in first.heard if n.kind is EventKind.DUPLICATE]
    assert [n for n in second.heard if n.kind is EventKind.DUPLICATE] == [heard]  # the same one, same id
    assert heard.message_id == duplicate.id and heard.mailbox is None
    assert re.fullmatch(r"[0-9a-f]{32}", heard.id)
    assert "refused with 20007" in heard.summary
    lines = [r for r in caplog.records if duplicate.id in r.getMessage() and "duplicate" in r.getMessage()]
    assert [(r.name, r.levelname) for r in lines] == [("meshbridge.steps", "INFO")]  # its step line only


def test_a_mailbox_notification_has_no_message_id(tmp_path: Path, mesh_sandbox: Sandbox) -> None:
    from conftest import OUT_IN

    text = config_text(mesh_sandbox, OUT_IN)
    first = text.index(f'password = "{PASSWORD}"')  # X26ABC1's
    path = tmp_path / "meshbridge.toml"
    path.write_text(text[:first] + 'password = "Wr0ng-Pa55-xyz"' + text[first + len(f'password = "{PASSWORD}"') :])
    bridge, recorder, _ = with_recorders(path)
    with bridge:
        bridge.poll()
    [refused] = recorder.heard
    assert (refused.kind, refused.message_id, refused.mailbox) == (EventKind.MESH_AUTH, None, "X26ABC1")
    assert refused.detail["mailbox"] == "X26ABC1" and "403" in refused.detail["reason"]
