"""The types a plugin implements or returns besides payload types: destinations and their targets.

A destination kind is a :class:`Destination` (any callable of that shape), or a
:class:`DestinationKind` that also names the model of its target, so a bad target in
``meshbridge.toml`` is refused when the Bridge starts rather than on every delivery.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Destination(Protocol):
    """Delivers one inbound payload and says where it went.

    Called as ``deliver(target, blocks, name, content_type)``:

    - ``target``: the route's value for this kind (``destination = { sqlite = ... }``), validated
      by the kind's ``target`` model when it has one (then an instance of it, ``Path`` fields
      resolved against the config file's folder), else the raw TOML value;
    - ``blocks``: the payload's bytes, in blocks (iterate once);
    - ``name``: a safe file name, unique per MESH message id (deliveries may be repeated: make
      them idempotent per name);
    - ``content_type``: the payload's media type as the sender gave it, or ``None``.

    It returns a description of where the payload went (stored, shown in ``show``) and raises
    :class:`~meshbridge.destinations.DeliveryError` when it was not delivered (tried again after
    a backoff; anything else it raises counts the same).
    """

    def __call__(self, target: Any, blocks: Iterable[bytes], name: str, content_type: str | None, /) -> str: ...


@dataclass(frozen=True)
class DestinationKind:
    """A destination with the model its target is validated against when the Bridge starts.

    :param deliver: the :class:`Destination`.
    :param target: a pydantic model, a dataclass or any type pydantic can validate (``Path``,
        ``str``, ``list[str]`` ...). A TOML table fills a model's fields; a plain value is
        validated as the type itself.
    """

    deliver: Destination
    target: Any = None
