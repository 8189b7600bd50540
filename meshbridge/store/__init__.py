"""The correlation store: messages, their timelines and expectations, and payload files."""

from .payloads import Payloads
from .sqlite import Row, SourceTaken, Store, new_lease, now

__all__ = ["Payloads", "Row", "SourceTaken", "Store", "new_lease", "now"]
