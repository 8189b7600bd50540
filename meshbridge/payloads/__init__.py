"""Built-in payload types, each a plugin on :mod:`meshbridge.hookspecs`."""

from .base import ERROR, WARNING, Finding, Payload, PayloadType, ValidationResult

__all__ = ["ERROR", "WARNING", "Finding", "Payload", "PayloadType", "ValidationResult"]
