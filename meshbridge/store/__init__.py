"""The correlation store: messages, their timelines and expectations, and payload files."""

from .payloads import Payloads
from .sqlite import Row, Store, new_lease, now

__all__ = ["Payloads", "Row", "Store", "new_lease", "now"]
