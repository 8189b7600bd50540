"""``[[routes]]``: one workflow through one of our mailboxes, outbound (``from``, ``to``, ``source``)
or inbound (``mailbox``, ``destination``), with its payload type, ITK3 options and validator settings."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator

from .destination import Destination
from .tables import ItkOptions, Source
from .types import Size, Table, Text, config_file, known, problem
from .values import DestinationOptions

_COMMON = {"name", "direction", "workflow_id", "payload_type", "fhir_version", "fhir_strictness", "itk", "options"}
_VALIDATION = {"xml_schema", "schematron", "charset", "max_size", "control_chars"}
_OUTBOUND = _COMMON | _VALIDATION | {"from", "to", "source", "subject", "content_type"}
_INBOUND = _COMMON | _VALIDATION | {"mailbox", "destination"}
_REQUIRED = {"outbound": {"name", "workflow_id", "from", "to"}, "inbound": {"name", "workflow_id", "mailbox"}}


def _only(required: set[str], refused: set[str]) -> dict[str, Any]:
    return {"required": sorted(required), "not": {"anyOf": [{"required": [key]} for key in sorted(refused)]}}


_BOTH_WAYS = {  # the JSON Schema's view of checked(): each direction's required and refused keys
    "if": {"properties": {"direction": {"const": "outbound"}}},
    "then": _only(_REQUIRED["outbound"], _INBOUND - _OUTBOUND),
    "else": _only(_REQUIRED["inbound"], _OUTBOUND - _INBOUND),
}


class Route(Table, json_schema_extra=_BOTH_WAYS):
    """``[[routes]]``: a workflow through one of our mailboxes.

    ``mailbox`` is ours either way (an outbound route's ``from``); ``destination`` is
    ``{kind: target}`` with its options in ``destination_options``; ``options`` holds the route's
    ``options`` table and its validator settings (``xml_schema``, ``charset``, ...) together.
    """

    name: Text
    direction: Literal["outbound", "inbound"]
    workflow_id: Text
    from_: Text | None = Field(None, alias="from")
    """Outbound: our mailbox the messages are sent from."""
    mailbox: Text = ""
    """Inbound: our mailbox the messages arrive in."""
    to: Text | None = None
    """Outbound: the recipient's mailbox."""
    payload_type: Text = "auto"
    fhir_version: Literal["STU3", "R4", "R5"] = "STU3"
    fhir_strictness: Literal["hl7", "structure"] = "hl7"
    """FHIR payloads: ``hl7`` refuses what the HL7 validator calls an error; ``structure`` refuses only
    what the fhir.resources models refuse and reports the rest as warnings."""
    itk: ItkOptions | None = None
    source_table: Source | None = Field(None, alias="source")
    destination_table: Destination | None = Field(None, alias="destination")
    subject: Text | None = None
    content_type: Text | None = None
    options_table: dict[str, Any] = Field(default_factory=dict, alias="options")
    """Settings for the payload type's validator and plugins."""
    xml_schema: Text | None = None
    """An XSD next to the config file (else searched among the shipped schemas)."""
    schematron: Text | None = None
    charset: Text | None = None
    max_size: Size | None = None
    control_chars: Literal["reject", "warn", "allow"] | None = None

    _options: dict[str, Any] = PrivateAttr(default_factory=dict)

    @classmethod
    def checked(cls, data: dict[str, Any]) -> dict[str, Any]:
        direction = data.get("direction")
        if "direction" not in data:
            raise problem("required key is missing", at="direction")
        if direction not in _REQUIRED:
            raise problem(f"expected 'outbound' or 'inbound', got {direction!r}", at="direction")
        known(data, _OUTBOUND if direction == "outbound" else _INBOUND, _REQUIRED[direction])
        data = dict(data)
        if direction == "outbound":
            data["mailbox"] = data["from"]
        itk, workflow = data.get("itk"), data.get("workflow_id")
        if isinstance(itk, dict) and "ack_workflow" not in itk and isinstance(workflow, str):
            data["itk"] = {**itk, "ack_workflow": f"{workflow}_ACK"}
        return data

    @field_validator("xml_schema", "schematron")
    @classmethod
    def _beside_config(cls, value: str, info: ValidationInfo) -> str:
        beside = config_file(info).parent / value
        # next to the config file if it is there; else the XML validator also searches meshbridge/schemas/
        return str(beside) if beside.exists() else value

    @field_validator("charset")
    @classmethod
    def _charset(cls, charset: str) -> str:
        try:
            codecs.lookup(charset)
        except LookupError:
            raise ValueError(f"unknown charset {charset!r}") from None
        return charset

    def model_post_init(self, context: Any, /) -> None:
        checks = {name: getattr(self, name) for name in sorted(_VALIDATION) if getattr(self, name) is not None}
        self._options = {**self.options_table, **checks}

    @property
    def options(self) -> dict[str, Any]:
        return self._options

    @property
    def source(self) -> dict[str, Path] | None:
        return {"folder": self.source_table.folder} if self.source_table else None

    @property
    def destination(self) -> dict[str, Any] | None:
        return {self.destination_table.kind: self.destination_table.target} if self.destination_table else None

    @property
    def destination_options(self) -> DestinationOptions:
        return self.destination_table.options if self.destination_table else DestinationOptions()
