"""A payload type plugin that minds its sniffing manners: CSV with a header row.

A CSV sniffer that says "mine" for anything with a comma would turn every letter on an ``auto``
route into CSV. This one claims a payload only when its first line is a header of at least two
column names (letters, digits and ``_``, no spaces) and the next lines have fields too: 0.9
then, else 0 (whether each row has the right number of fields is for ``validate`` to say).
``meshbridge.testing.check_sniffer(CSV)`` checks it against every built-in example and a corpus
of near misses (see "Sniffing etiquette" in docs/plugins.md).

::

    [[routes]]
    name = "results-out"
    payload_type = "csv"                 # or "auto": a letter with commas stays text
    options = { csv_columns = 3 }        # optional: the number of columns every row must have
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from typing import Any

from meshbridge import Finding, PayloadType, ValidationResult, hookimpl

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def sniff(head: bytes) -> float:
    """0.9 for a header of column names then rows of several fields; else 0 (never raises)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head[: len(head) - 3].decode("utf-8", "ignore")  # a character cut at the end of the head
    lines = text.splitlines()[:6]
    if len(lines) < 2:
        return 0.0
    try:
        rows = _rows("\n".join(lines[:-1] if len(lines) > 2 else lines))  # the last line may be cut short
    except csv.Error:
        return 0.0
    header = rows[0]
    if len(header) < 2 or not all(_NAME.fullmatch(name) for name in header):
        return 0.0
    return 0.9 if all(len(row) > 1 for row in rows[1:]) else 0.0


def validate(data: bytes, options: Mapping[str, Any]) -> ValidationResult:
    """Every row has as many fields as the header (or ``csv_columns``); the text is UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ValidationResult("csv", (Finding(f"not UTF-8: {exc.reason}", f"byte {exc.start}", code="csv.utf8"),))
    try:
        rows = _rows(text)
    except csv.Error as exc:
        return ValidationResult("csv", (Finding(f"not CSV: {exc}", code="csv.syntax"),))
    if not rows:
        return ValidationResult("csv", (Finding("no header row", code="csv.header"),))
    columns = int(options.get("csv_columns") or len(rows[0]))
    findings = [
        Finding(f"{len(row)} fields, expected {columns}", f"line {number}", code="csv.fields")
        for number, row in enumerate(rows, 1)
        if len(row) != columns
    ]
    return ValidationResult("csv", tuple(findings[:10]), {"columns": columns, "rows": len(rows) - 1})


CSV = PayloadType(
    "csv",
    "text/csv",
    sniff,
    validate,
    "CSV with a header row: fields per row",
    b"nhs_number,test,value\n9434765919,potassium,4.1\n",
)


@hookimpl
def meshbridge_payload_types() -> list[PayloadType]:
    return [CSV]
