"""The plugin contract: every hook a meshbridge plugin may implement.

Implement a hook with ``@meshbridge.hookimpl`` on a module-level function of the same name, and
expose the module under the entry-point group ``meshbridge``::

    [project.entry-points.meshbridge]
    hl7v2 = "meshbridge_hl7v2"

Hooks are called with keyword arguments; an implementation may accept only the arguments it needs.
Every hook may take ``plugin_config``: the plugin's own ``[plugins.NAME]`` table of
``meshbridge.toml`` (``NAME`` is the entry-point name), validated by the model the plugin returns
from :func:`meshbridge_config_model` (an instance of it), or the table as a dict when the plugin
declares no model (``{}`` without a table). Plugins read their settings from there, never from
environment variables. Built-in payload types and destinations are registered through these same
hooks. ``docs/plugins.md`` documents every hook and argument with a worked example.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pluggy

from .contract import Destination, DestinationKind

if TYPE_CHECKING:
    from .config import Route
    from .domain_acks import AckProtocol
    from .events import Notification
    from .payloads.base import Finding, Payload, PayloadType

hookspec = pluggy.HookspecMarker("meshbridge")
hookimpl = pluggy.HookimplMarker("meshbridge")

__all__ = ["Destination", "DestinationKind", "hookimpl", "hookspec"]


@hookspec
def meshbridge_config_model() -> Any:
    """Return the model of this plugin's ``[plugins.NAME]`` table: a pydantic model class, a
    dataclass, or any type pydantic validates.

    The table is validated when the Bridge starts, before any message is touched: an unknown key
    or a bad value stops meshbridge with a ``ConfigError`` naming the file and key
    (``meshbridge.toml: plugins.NAME.path: ...``). ``Path`` values relative to the config file
    are resolved against its folder. The validated instance is what the other hooks receive as
    ``plugin_config``. Return ``None`` (or implement no such hook) to take the table as a dict.

    Called once per plugin; the first non-None result is used.
    """


@hookspec
def meshbridge_payload_types(plugin_config: Any) -> list[PayloadType]:
    """Return the payload types this plugin adds.

    Each :class:`~meshbridge.PayloadType` has a ``name`` used as ``payload_type`` in routes, a
    ``media_type``, a ``sniff(head) -> float`` used when a route says ``payload_type = "auto"``
    (the highest confidence wins; an explicit type is confirmed by its own sniffer) and a
    ``validate(data, options) -> ValidationResult``. Names must be unique across plugins. A
    sniffer follows the confidence scale of ``docs/plugins.md`` ("Sniffing etiquette"): it must
    not claim other types' payloads (check it with :func:`meshbridge.testing.check_sniffer`).

    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    All results are collected.
    """


@hookspec
def meshbridge_validate(payload: Payload, route: Route | None, plugin_config: Any) -> list[Finding] | None:
    """Add findings of your own after the payload type's validator ran (e.g. NHS number checks).

    :param payload: the bytes, type, direction and the type validator's result.
    :param route: the route the payload travels on, or ``None`` (``meshbridge validate`` without
        ``--route``).
    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    Return a list of :class:`~meshbridge.Finding` (empty or ``None`` when there is nothing to
    say). All results are collected; any error finding refuses the payload.
    """


@hookspec
def meshbridge_transform(payload: Payload, route: Route, plugin_config: Any) -> bytes | None:
    """Rewrite an outbound payload after validation, before ITK wrapping and sending.

    :param payload: the validated payload (its ``data`` is the previous transform's output).
    :param route: the outbound route it is sent on (transforms run only for sends on a route).
    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    Return the new bytes, or ``None`` to leave it alone. Transforms run in plugin order (last
    registered first, as pluggy calls them); each sees the output of the one before. The final
    bytes are validated again, as the route's type, before they are stored: invalid output
    rejects the message with its findings and nothing is sent. A transform that raises rejects
    it too (``payload.transform-crashed``). Payloads on ``payload_type = "binary"`` routes are
    never transformed: they are streamed from disk untouched, and there is no type to check the
    output against.
    """


@hookspec
def meshbridge_destinations(plugin_config: Any) -> Mapping[str, Destination | DestinationKind]:
    """Return destination kinds for inbound routes, by the key used in config.

    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    ``destination = { folder = "..." }`` is the built-in ``folder`` kind. Each value is a
    :class:`~meshbridge.Destination` or a :class:`~meshbridge.DestinationKind` naming the model of
    its target: then every route's target is validated when the Bridge starts (a ``ConfigError``
    naming ``routes[N].destination.KIND``), ``Path`` fields resolved against the config file's
    folder, and the destination receives the validated instance. A destination is called
    as ``deliver(target, blocks, name, content_type)`` where ``target`` is the config value,
    ``blocks`` the payload's bytes, ``name`` a safe file name unique per MESH message id; it
    returns a description of where the payload went and raises
    :class:`~meshbridge.DeliveryError` when it was not delivered (it will be tried
    again, after a backoff; anything else it raises counts the same). It runs in a thread of its
    own and has the route's total deadline: past it, the delivery is recorded failed and the
    thread abandoned (what it returns later is ignored). Delivery must be idempotent for the same name.

    All results are collected and merged; a later plugin may not replace an existing kind.
    """


@hookspec
def meshbridge_ack_protocols(plugin_config: Any) -> list[AckProtocol]:
    """Return domain acknowledgement protocols (e.g. EDIFACT RECEP, NHSACK) that run on the same
    expectation machinery as ITK3 acks.

    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    Each :class:`~meshbridge.AckProtocol` has a ``name`` (the expectation kind), an
    ``expects(payload, route) -> key | None`` that gives an outbound payload's correlation key
    when it expects this acknowledgement (the deadline comes from the route option
    ``<name>_within``), and an ``answers(payload) -> AckMatch | None`` that recognises an inbound
    payload as such an acknowledgement and says which key it answers, and ``workflows``: the MESH
    workflow ids the acknowledgement arrives on (default: the original's workflow id, or that id
    with ``_ACK``). An acknowledgement is applied only when MESH says it came from the mailbox the
    original was sent to (``mex-From``), into the mailbox the original was sent from, on one of
    those workflows; any other is kept as an ``orphan`` with the reason (an ``orphan`` event) and
    changes nothing on the original. ``examples/recep_ack.py`` is a complete plugin.

    All results are collected.
    """


@hookspec
def meshbridge_on_event(event: Notification, plugin_config: Any) -> None:
    """Hear about what an operator may need to act on.

    :param event: a :class:`~meshbridge.Notification`: its ``kind`` (an
        :class:`~meshbridge.EventKind`), ``message_id``, a one-line ``summary``, the facts in
        ``detail`` and its own ``id`` (uuid4 hex, the same for every plugin told of it).
    :param plugin_config: the plugin's validated ``[plugins.NAME]`` table.

    The kinds, about a message:

    * ``overdue``: an expected response's deadline passed unmet (``detail``: ``expected``, ``due_at``);
    * ``nack``: an outbound message got a negative ITK or domain response (``code``, ``text``);
    * ``undeliverable``: a MESH REPORT (or tracking) says the recipient will not get it;
    * ``orphan``: a response, ack or REPORT that answers nothing it may answer (``reason``);
    * ``unrouted``: an inbound message no route takes (kept in the store);
    * ``rejected``: validation refused an outbound payload (``findings``; quarantined);
    * ``invalid``: an inbound payload failed validation (``findings``);
    * ``duplicate``: an inbound ITK message whose id its sender used before (answered 20007);
    * ``failed``: MESH refused an outbound message (``code``), or its send attempts are spent;
    * ``undelivered``: an inbound message's delivery attempts are spent (``route``, ``reason``).

    About a mailbox rather than a message (``event.message_id`` is None, ``event.mailbox`` and
    ``event.detail["mailbox"]`` name it):

    * ``mesh-auth``: MESH refused the mailbox's login (its password or the shared key), passed once
      until it clears, however many passes and processes meet it (``reason``);
    * ``mesh-auth-cleared``: a call on that mailbox succeeded again (``since``);
    * ``handshake-failed``: the service's daily MESH handshake of the mailbox failed, other than a
      refused login (``reason``; once a day).

    About the MESH client certificate (no message, no mailbox):

    * ``certificate-expiring``: it, or a CA of ``ca_bundle``, expires within ``[alerts]
      certificate_warning`` (``certificate``, ``file``, ``subject``, ``not_after``, ``days_left``;
      checked daily, once a day).

    Called by the dispatcher, after the notification was queued in the store's outbox with what it
    reports, in one transaction (after each Bridge operation; in ``meshbridge run`` by its
    ``alerts`` job), at least once: a process killed between calling it
    and recording that may call it again, with the same ``event.id``. Exceptions raised here are
    logged and ignored: a failing notifier must not stop messages moving.
    """
