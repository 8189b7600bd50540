"""A listing printed a page at a time as one table: ``meshbridge messages`` of any length."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from .output import console, literal

if TYPE_CHECKING:
    from ..models import Page

GAP = 2  # between two columns: a space of padding and the (blank) divider
FOLDED = 4  # the least a column that folds (or its header, if longer) gets before the table outgrows the terminal


class Pages:
    """The pages of a listing (:meth:`~meshbridge.reader.Reading.pages`), the first read at once
    (a bad cursor fails before anything is printed)."""

    def __init__(self, pages: Iterator[Page]) -> None:
        self._first: Page | None = next(pages)
        self._rest = pages
        self.cursor = self._first.next  # of what follows the last page used (None: nothing)

    def each(self, use: Callable[[Page], object]) -> None:
        """``use`` each page in turn, each let go before the next is read: one page in memory."""
        page, self._first = self._first, None
        while page is not None:
            self.cursor = page.next
            use(page)
            page = None  # let go before the next is read
            page = next(self._rest, None)


class PagedTable:
    """Pages of rows printed as one borderless table: the header once, each column as wide as the
    widest cell seen so far (so that pages line up) while the terminal has room, else folded.
    ``whole`` columns (ids) are never cut nor folded: a terminal narrower than they need gets
    lines longer than itself (it wraps them) rather than a shortened id."""

    def __init__(self, *columns: str, whole: Collection[str] = ()) -> None:
        self.columns = columns
        self.whole = [name in whole for name in columns]
        self.widths = [len(name) for name in columns]
        self.least = [max(len(name), FOLDED) for name in columns]
        self.out = console()
        self.pages = 0

    def print(self, rows: Iterable[Sequence[object]]) -> None:
        """Print one page of rows (the header with the first)."""
        from rich import box
        from rich.table import Column, Table

        cells = [[literal(value) for value in row] for row in rows]
        for row in cells:
            self.widths = [max(width, cell.cell_len) for width, cell in zip(self.widths, row, strict=True)]
        gaps = GAP * (len(self.columns) - 1)
        needed = gaps + sum(
            width if whole else min(width, least)
            for width, least, whole in zip(self.widths, self.least, self.whole, strict=True)
        )
        self.out.width = max(self.out.width, needed)
        roomy = gaps + sum(self.widths) <= self.out.width
        built = Table(
            *(
                Column(name, no_wrap=whole, overflow="fold", min_width=width if whole or roomy else None)
                for name, width, whole in zip(self.columns, self.widths, self.whole, strict=True)
            ),
            box=box.SIMPLE_HEAD,
            show_edge=False,
            pad_edge=False,
            collapse_padding=True,
            show_header=not self.pages,
        )
        for row in cells:
            built.add_row(*row)
        if cells or not self.pages:
            self.out.print(built)
        self.pages += 1
