"""Progress reporting without printing from the library: stages call `progress(stage, done, total)`.

The library accepts any such callable (or None). The CLI passes `TqdmProgress`, one bar per stage on stderr.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFn = Callable[[str, int, int], None]


def report(progress: ProgressFn | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


class TqdmProgress:
    def __init__(self):
        self.bars: dict[str, object] = {}

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get(stage)
        if bar is None:
            bar = self.bars[stage] = tqdm(total=total, desc=stage, leave=True, dynamic_ncols=True, mininterval=0.5)
        bar.total = total
        bar.n = min(done, total)
        bar.refresh()
        if done >= total:
            bar.close()
            del self.bars[stage]
