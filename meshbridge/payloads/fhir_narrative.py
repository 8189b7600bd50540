"""txt-2, checked directly: "The narrative SHALL have some non-whitespace content".

The definitions give txt-1 and txt-2 as ``htmlChecks()``, a FHIRPath function of the HL7
validator that fhirpathpy does not have. For txt-2 the validator looks for content in the xhtml
``div``: some text that is not whitespace (Java's ``trim()``: characters up to U+0020), or an
``img`` element. :func:`has_content` does the same on the div as FHIR JSON carries it (and as
:mod:`.fhir_xml_json` renders it from XML). A div that is not well-formed XML is left alone (the
models' business, and no content rule can be judged on it). txt-1 (which xhtml elements and
attributes are allowed) is not checked here.
"""

from __future__ import annotations

from ..errors import XMLRejected
from .xml_parsing import parse

TXT_2 = "txt-2: The narrative SHALL have some non-whitespace content"
_WHITESPACE = "".join(chr(c) for c in range(0x21))  # what Java's String.trim() removes


def has_content(div: str) -> bool | None:
    """Whether the xhtml ``div`` has text that is not whitespace or an ``img``; None when it is not
    well-formed XML."""
    try:
        root = parse(div.encode("utf-8"))
    except (XMLRejected, ValueError):
        return None
    for node in root.iter():
        tag = node.tag
        if isinstance(tag, str) and (  # an element: comments and PIs have no content of their own
            tag.rpartition("}")[2] == "img" or (node.text and node.text.strip(_WHITESPACE))
        ):
            return True
        if node is not root and node.tail and node.tail.strip(_WHITESPACE):
            return True
    return False
