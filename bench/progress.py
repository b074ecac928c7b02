"""Progress reporting without printing from the library: stages call `progress(stage, done, total)`.

The library accepts any such callable (or None). The CLI picks one with `for_stream(sys.stderr)`:

* a terminal gets `TqdmProgress`, one bar per stage, redrawn at most every `mininterval` seconds (tqdm's own
  throttle: the bar is advanced with `update`, never forced with `refresh`, which redraws on every call);
* anything else (a file, a pipe, a cluster log) gets `LineProgress`: plain lines at 0, 25, 50, 75 and 100% of each
  stage, no carriage returns or cursor escapes, so a log of the default suite stays a few kilobytes.

Whole lines (each run's start and finish, bench.runlines) go through `announce(progress, line)`: a progress object
with a `line(text)` method writes them (above the bars on a terminal); a plain callable ignores them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

ProgressFn = Callable[[str, int, int], None]

MILESTONES = (0, 25, 50, 75, 100)  # percent of a stage at which LineProgress writes a line


def report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def announce(progress, line: str | Callable[[], str]) -> None:
    """Pass one whole line (a run's start or finish) to `progress` when it writes lines; a callable `line` is
    called only then (a finish line reads the run's folder)."""
    write = getattr(progress, "line", None)
    if write is not None:
        write(line() if callable(line) else line)


def write_line(stream: TextIO, line: str) -> None:
    """`line` on `stream`, flushed; never fails a run for a log that went away or cannot encode a symbol."""
    from bench.terminal import encodable

    try:
        print(encodable(line, stream), file=stream, flush=True)
    except (OSError, ValueError):
        pass


def for_stream(stream: TextIO | None = None) -> ProgressFn:
    """Bars on a terminal, milestone lines elsewhere (`stream` defaults to stderr)."""
    stream = stream if stream is not None else sys.stderr
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):  # a closed or exotic stream: no terminal
        tty = False
    return TqdmProgress(stream) if tty else LineProgress(stream)


class TqdmProgress:
    """One tqdm bar per stage on a terminal."""

    def __init__(self, stream: TextIO | None = None, mininterval: float = 0.5):
        self.stream = stream
        self.mininterval = mininterval
        self.bars: dict[str, object] = {}

    def line(self, text: str) -> None:
        """A whole line above the bars (tqdm.write keeps them intact)."""
        from tqdm import tqdm

        from bench.terminal import encodable

        stream = self.stream if self.stream is not None else sys.stderr
        try:
            tqdm.write(encodable(text, stream), file=stream)
        except (OSError, ValueError):
            pass

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, leave=True, dynamic_ncols=True,
                                          mininterval=self.mininterval, file=self.stream)
        bar.total = total
        bar.update(max(0, min(done, total) - bar.n))  # throttled by mininterval, unlike refresh()
        if done >= total:
            bar.close()
            del self.bars[stage]


class LineProgress:
    """`stage: done/total (pct%, elapsed)` lines at each milestone a stage crosses; nothing in between."""

    def __init__(self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.stages: dict[str, tuple[float, int]] = {}  # stage -> (start time, next milestone index)

    def line(self, text: str) -> None:
        write_line(self.stream, text)

    def __call__(self, stage: str, done: int, total: int) -> None:
        start, nxt = self.stages.get(stage, (self.clock(), 0))
        pct = 100 if total <= 0 else max(0, min(100, int(100 * done / total)))
        crossed = nxt
        while crossed < len(MILESTONES) and pct >= MILESTONES[crossed]:
            crossed += 1
        if crossed > nxt:
            try:
                print(f"{stage}: {min(done, total)}/{total} ({pct}%, {self.clock() - start:.0f} s)",
                      file=self.stream, flush=True)
            except (OSError, ValueError):  # the log went away: progress is not worth failing a run for
                pass
        if done >= total:
            self.stages.pop(stage, None)
        else:
            self.stages[stage] = (start, crossed)
