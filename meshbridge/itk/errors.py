"""ITK errors, under :class:`meshbridge.errors.MeshbridgeError`."""

from __future__ import annotations

from ..errors import MeshbridgeError


class ItkError(MeshbridgeError):
    """An ITK3 message cannot be used as asked (e.g. it has no Binary payload to unwrap)."""


class ItkUnreadable(ItkError):
    """The bytes are not a readable ITK3 message; answer with 10009 if anything at all.

    :param reason: what is wrong, in words a person can act on.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
