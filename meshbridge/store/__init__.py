"""The correlation store: messages, their timelines and expectations, and payload files."""

from .payloads import PayloadFiles
from .sqlite import Row, SourceTaken, Store, now

__all__ = ["PayloadFiles", "Row", "SourceTaken", "Store", "now"]
