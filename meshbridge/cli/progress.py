"""The progress bar of a chunked ``send`` or ``poll``: rich, on stderr, only when stderr is a terminal."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..printable import visible

if TYPE_CHECKING:
    from ..bridge import Bridge


class TransferBar:
    """A :class:`meshbridge.progress.Progress` drawn as one rich bar per transfer (bytes, rate, ETA).

    Started at the first chunked transfer, so a command that moves none prints nothing extra.
    Names are shown literally (a MESH id is a remote's text), stdout is left alone (``send``
    prints the message id there for a caller to capture).
    """

    def __init__(self) -> None:
        self._bar: Any = None
        self._tasks: dict[str, Any] = {}
        self._streams: list[tuple[logging.StreamHandler[Any], Any]] = []  # log handlers moved above the bar

    def __call__(self, transfer: str, done: int, total: int | None) -> None:
        bar = self._bar or self._start()
        task = self._tasks.get(transfer)
        if task is None:
            task_id = bar.add_task(visible(transfer), total=total)
            task = self._tasks[transfer] = next(t for t in bar.tasks if t.id == task_id)
        task.total = total  # a download's estimate firms up (Progress.update(total=) would forget the rate)
        bar.update(task.id, completed=done)

    def _start(self) -> Any:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = Console(stderr=True, markup=False, emoji=False, highlight=False)
        self._bar = Progress(
            TextColumn("{task.description}", markup=False),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._bar.start()
        for handler in logging.getLogger().handlers:  # log lines go above the bar, not into its line
            if isinstance(handler, logging.StreamHandler) and handler.stream is console.file:
                self._streams.append((handler, handler.setStream(_AboveTheBar(console))))
        return self._bar

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        for handler, stream in self._streams:
            handler.setStream(stream)
        self._streams.clear()


class _AboveTheBar(io.TextIOBase):
    """A log handler's stream while a bar is drawn: each line printed through the bar's console,
    which puts it above the bar (as it is: no markup, no wrapping of its own)."""

    def __init__(self, console: Any) -> None:
        super().__init__()
        self._console = console

    def write(self, text: str) -> int:
        self._console.out(text.removesuffix("\n"), highlight=False)
        return len(text)


@contextmanager
def transfer_bar(bridge: Bridge) -> Iterator[None]:
    """While it lasts, ``bridge``'s chunked transfers draw a bar on stderr if it is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    bar = TransferBar()
    bridge.progress = bar
    try:
        yield
    finally:
        bridge.progress = None
        bar.close()
