"""User-facing errors: one line each, naming the file, the field and the fix.

The CLI turns a `UserError` into that line and exit status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem the user can fix (bad TOML, unknown algorithm, missing model, ...).

    `problems` holds one formatted line per problem so validation can report all of them at once.
    """

    def __init__(self, *problems: str):
        self.problems = list(dict.fromkeys(p for p in problems if p))  # a line said once (e.g. per axis value)
        super().__init__("\n".join(self.problems))


def problem(where: str, field: str | None, message: str, fix: str | None = None) -> str:
    """Format one problem line: `<where>: <field>: <message>; <fix>`."""
    head = f"{where}: {field}: " if field else f"{where}: "
    return head + message + (f"; {fix}" if fix else "")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """'did you mean X?' for the closest known name, or the list of valid names when nothing is close."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return "valid: " + ", ".join(choices) if choices else "no valid names"


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a container stop, a job manager): handled like Ctrl-C, with its own exit
    status (143, 128 + 15) and line. A KeyboardInterrupt, so every place that stops workers on Ctrl-C stops them."""


@contextlib.contextmanager
def sigterm_stops():
    """While inside: SIGTERM raises Terminated (stopped like Ctrl-C); the previous handler is put back after. Only
    the main thread can set a handler: elsewhere this changes nothing. `bench` (cli.main) and each submitit task
    (bench/launchers/submission.py, where submitit's own handler only logs SIGTERM) use it."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
