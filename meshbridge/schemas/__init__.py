"""The files meshbridge ships as package data, found wherever it is installed (a checkout, a wheel,
a zip): ``config.schema.json`` (the JSON Schema of ``meshbridge.toml``, what ``meshbridge config
schema`` prints) and the ITK3 conformance Schematron ``itk3-message.sch`` and ``itk3-response.sch``."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable

CONFIG_SCHEMA = "config.schema.json"
#: This folder (read its files with ``read_bytes``/``read_text``: it need not be a folder on disk).
FOLDER: Traversable = files(__name__)


def resource(name: str) -> Traversable:
    """The shipped file ``name``."""
    return FOLDER / name


def text(name: str) -> str:
    """The shipped file ``name`` as text."""
    return resource(name).read_text(encoding="utf-8")
