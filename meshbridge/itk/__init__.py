"""ITK3 reliable messaging, as a pure library (no MESH, no store).

* :mod:`.codes`: the ITK-ResponseCodes-1 table and the fixed URLs;
* :mod:`.model`: :class:`Handling`, :class:`ItkHeader`, :func:`same_id`;
* :mod:`.parse`: :func:`parse` bytes (FHIR STU3 XML or JSON) into an :class:`ItkHeader`;
* :mod:`.build`: :func:`build_message`, :func:`build_response`, :func:`binary_payload`;
* :mod:`.conformance`: :func:`check` against ``meshbridge/schemas/itk3-message.sch`` / ``itk3-response.sch``.
"""

from ..errors import ItkError, ItkUnreadable
from .build import FHIR_JSON, FHIR_XML, binary_payload, build_message, build_response
from .codes import (
    BUSINESS,
    CODES,
    EXTENSION_HANDLING,
    FATAL_ERROR,
    HANDLING_KEYS,
    INFRASTRUCTURE,
    MESSAGE_DEFINITION_BASE,
    OK,
    POSITIVE_CODES,
    RESPONSE_EVENT,
    RESPONSE_MESSAGE_DEFINITION,
    RESPONSE_MESSAGE_DEFINITION_OLD,
    SUCCESS,
    SYSTEM_MESSAGE_EVENT,
    SYSTEM_RECIPIENT_TYPE,
    SYSTEM_RESPONSE_CODES,
    TOO_LARGE,
    UNREADABLE,
    WITHDRAWN,
    ResponseCode,
    lookup,
)
from .conformance import check
from .model import Handling, ItkHeader, same_id
from .parse import header_in_head, parse

__all__ = [
    "BUSINESS",
    "CODES",
    "EXTENSION_HANDLING",
    "FATAL_ERROR",
    "FHIR_JSON",
    "FHIR_XML",
    "HANDLING_KEYS",
    "INFRASTRUCTURE",
    "MESSAGE_DEFINITION_BASE",
    "OK",
    "POSITIVE_CODES",
    "RESPONSE_EVENT",
    "RESPONSE_MESSAGE_DEFINITION",
    "RESPONSE_MESSAGE_DEFINITION_OLD",
    "SUCCESS",
    "SYSTEM_MESSAGE_EVENT",
    "SYSTEM_RECIPIENT_TYPE",
    "SYSTEM_RESPONSE_CODES",
    "TOO_LARGE",
    "UNREADABLE",
    "WITHDRAWN",
    "Handling",
    "ItkError",
    "ItkHeader",
    "ItkUnreadable",
    "ResponseCode",
    "binary_payload",
    "build_message",
    "build_response",
    "check",
    "header_in_head",
    "lookup",
    "parse",
    "same_id",
]
