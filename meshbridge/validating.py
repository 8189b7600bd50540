"""``meshbridge.validate``: detect and validate one payload, as ``meshbridge validate`` does (no MESH,
no store; a config only for a route's settings)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import PayloadError

if TYPE_CHECKING:
    from .config import Config, Route
    from .payloads.base import ValidationResult
    from .plugins import Plugins


def validate(
    payload: str | os.PathLike[str] | bytes,
    *,
    type: str = "auto",  # (the command line's word: --type)
    fhir_version: str | None = None,
    fhir_strictness: str | None = None,
    itk: bool = False,
    route: str | Route | None = None,
    config: Config | str | os.PathLike[str] | None = None,
    plugins: Plugins | None = None,
    filename: str | None = None,
) -> ValidationResult:
    """Detect (``type="auto"``) and validate a payload given as a path or as bytes; never raises
    for what is in it: every problem is a finding (``result.valid`` is False when one is an error).

    :param type: a payload type name, or ``auto`` to sniff (with a ``route``: the route's type).
    :param fhir_version: ``STU3`` (default), ``R4`` or ``R5`` for FHIR payloads.
    :param fhir_strictness: ``hl7`` (default: refuse what the HL7 validator calls an error: required
        bindings, element order, primitive types, core invariants, references inside a Bundle) or
        ``structure`` (only what the fhir.resources models refuse is an error; the rest are warnings).
        Given, it overrides the route's setting.
    :param itk: also check the ITK3 conformance rules (the TKW-x rules in ``meshbridge/schemas/``).
    :param route: apply this route's settings (its payload type, options, cap): a
        :class:`~meshbridge.Route`, or its name in ``config``.
    :param config: the config a route name is looked up in (a :class:`~meshbridge.Config` or
        its file; default: the usual config file); its ``[plugins.NAME]`` tables configure the plugins.
    :param plugins: the installed plugins to use (default: those installed).
    :param filename: the payload's file name, for validators that look at it (default: the path's).

    Raises :class:`~meshbridge.PayloadError` when the file cannot be read,
    :class:`~meshbridge.ConfigError` for an unknown route or a bad config, and
    :class:`~meshbridge.PluginError` for a broken plugin.
    """
    from .config import Config, load
    from .plugins import Plugins
    from .validation import check

    plugins = plugins if plugins is not None else Plugins()
    if isinstance(route, str):
        loaded = config if isinstance(config, Config) else load(config)
        route = loaded.route(route)
        plugins.configure(loaded)  # the plugins' [plugins.NAME] settings, as the Bridge has them
    elif isinstance(config, Config):
        plugins.configure(config)
    if route is not None and type == "auto":
        type = route.payload_type
    if isinstance(payload, bytes):
        data = payload
    else:
        path = Path(payload)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise PayloadError(f"cannot read {path}: {exc.strerror}") from None
        filename = filename or path.name
    options = {"fhir_version": fhir_version} if fhir_version else {}
    if fhir_strictness:
        options["fhir_strictness"] = fhir_strictness
    result = check(plugins, data, payload_type=type, options=options, route=route, filename=filename)
    if itk:
        from .itk import check as itk_check
        from .payloads.base import ValidationResult

        result = ValidationResult(result.payload_type, (*result.findings, *itk_check(data)), result.details)
    return result
