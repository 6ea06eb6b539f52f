"""Progress bars that suit where they are written: tqdm's own on a terminal; in a log that is no
terminal (CI, a cluster job, ``make run > log``), one plain line at most every ``LOG_INTERVAL``
seconds, instead of every carriage-return update tqdm would otherwise append to the file."""
from __future__ import annotations

import sys
from typing import IO, Any

from tqdm.auto import tqdm

LOG_INTERVAL = 10.0   # seconds between two lines of one bar in a log


class _Lines:
    """A stream for tqdm that turns its carriage-return redraws into whole lines."""

    def __init__(self, stream: IO[str]):
        self.stream = stream

    def write(self, text: str) -> None:
        line = text.replace("\r", "").rstrip()
        if line:
            self.stream.write(line + "\n")

    def flush(self) -> None:
        self.stream.flush()


class _LogBar(tqdm):
    """A bar whose postfix and description wait for its next timed line (tqdm would redraw)."""

    def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_description(self, desc=None, refresh=True):
        super().set_description(desc, refresh=False)


def bar(iterable: Any = None, *, stream: IO[str] | None = None, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` writing to ``stream`` (stderr), throttled off a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if isatty is not None and isatty():
        return tqdm(iterable, file=stream, **kwargs)
    return _LogBar(iterable, file=_Lines(stream), mininterval=LOG_INTERVAL,
                   maxinterval=LOG_INTERVAL, ascii=True, ncols=100, dynamic_ncols=False, **kwargs)
