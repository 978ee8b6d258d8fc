"""What ``regent study run`` shows while it works, and what it says when it is stopped.

Without a terminal (``nohup``, CI, ``| tee``): one line per step on stderr, with the time since
the run started::

    [    0.0 s] step 1/9 registry
    [   36.1 s] step 2/9 cohort

In a terminal: a bar over the steps; inside a step that has run for more than
:data:`SUB_AFTER` seconds, a second bar over its parts (folds, bootstrap refits, ...: the runner's
``"model cox_1y: fold 2/5"`` labels); each finished step stays printed with its duration.

SIGINT (Ctrl-C) and SIGTERM stop the run: the runner ends the MLflow run as KILLED, and this
module prints which step was interrupted and the command that resumes from the cached steps.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

SUB_AFTER = 2.0  # seconds a step runs before its parts get a bar of their own
_PART = re.compile(r"^(?P<what>.*?)\s*(?P<i>\d+)/(?P<n>\d+)$")


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the run is, so it stops as Ctrl-C does (KILLED, resumable)."""


class Stop:
    """The stop a signal asked for.  Python raises it where the main thread is; raised inside a
    finaliser (a library object's ``__del__``) it would be swallowed, so every progress call
    raises it again until it gets through."""

    pending: KeyboardInterrupt | None = None

    @classmethod
    def check(cls) -> None:
        if cls.pending is not None:
            raise cls.pending


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While the run lasts, SIGINT raises KeyboardInterrupt and SIGTERM (a scheduler, ``kill``)
    raises :class:`Terminated`, both remembered in :class:`Stop` until they get through."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGTERM:
            Stop.pending = Terminated(f"terminated by {signal.Signals(signum).name}")
        else:
            Stop.pending = KeyboardInterrupt()
        raise Stop.pending

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    Stop.pending = None
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        Stop.pending = None


class StepProgress:
    """The runner's ``progress`` callback for the CLI (see the module docstring)."""

    def __init__(
        self,
        steps: list[str],
        console: Console,
        *,
        tty: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.steps = steps
        self.console = console
        self.tty = console.is_terminal if tty is None else tty
        self.clock = clock
        self.start = clock()
        self.step: str | None = None
        self.step_start = self.start
        self.index = 0
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._part: TaskID | None = None

    def elapsed(self) -> float:
        return self.clock() - self.start

    def __enter__(self) -> StepProgress:
        if self.tty:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("starting", total=len(self.steps))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, label: str) -> None:
        Stop.check()  # a stop that a finaliser swallowed gets through here
        step, _, part = label.partition(": ")
        if step != self.step and step in self.steps:
            self._begin(step)
        elif part:
            self._part_progress(part)

    def _begin(self, step: str) -> None:
        now = self.clock()
        if self.step is not None and self._bar is not None:
            _say(self._bar.console, f"  done  {self.step} ({now - self.step_start:.1f} s)")
        self.step, self.step_start = step, now
        self.index = self.steps.index(step) + 1
        if self._bar is None:
            _say(self.console, f"[{now - self.start:9.1f} s] step {self.index}/{len(self.steps)} {step}")
            return
        assert self._task is not None
        self._bar.update(self._task, completed=self.index - 1, description=step)
        if self._part is not None:
            self._bar.remove_task(self._part)
            self._part = None

    def _part_progress(self, part: str) -> None:
        if self._bar is None:
            return  # without a terminal: one line per step, nothing inside it
        m = _PART.match(part)
        if m is None:
            assert self._task is not None
            self._bar.update(self._task, description=f"{self.step}: {part}")
            return
        done, total = int(m["i"]), int(m["n"])
        visible = self.clock() - self.step_start >= SUB_AFTER
        if self._part is None:
            self._part = self._bar.add_task(f"  {m['what']}", total=total, visible=visible)
        self._bar.update(
            self._part, completed=done, total=total, description=f"  {m['what']}", visible=visible
        )

    def finish(self) -> None:
        """The run ended: the last step's line, and the total time without a terminal."""
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=len(self.steps))
            if self.step is not None:
                _say(self._bar.console, f"  done  {self.step} ({self.clock() - self.step_start:.1f} s)")
        else:
            _say(self.console, f"[{self.elapsed():9.1f} s] finished {len(self.steps)} steps")

    def interrupted(self, exc: BaseException, resume: str) -> str:
        """What to print when the run was stopped: the step, the time, how to resume."""
        why = str(exc) if isinstance(exc, Terminated) else "interrupted (Ctrl-C)"
        where = f"step {self.index}/{len(self.steps)} '{self.step}'" if self.step else "before the first step"
        tracked = "the tracked run is marked KILLED" if self.index > 1 else "no run had started yet"
        return (
            f"{why} during {where} after {self.elapsed():.1f} s; {tracked}.\n"
            f"The finished steps are cached; resume with:\n  {resume}"
        )


def resume_command(argv: list[str]) -> str:
    """The command line that ran, for resuming (``--no-resume`` dropped: resuming is the point)."""
    import shlex

    args = [a for a in argv if a != "--no-resume"]
    return "regent " + " ".join(shlex.quote(a) for a in args)


def run_steps(
    steps: list[str],
    console: Console,
    work: Callable[[Callable[[str], object]], Any],
    *,
    resume: str,
    tty: bool | None = None,
) -> Any:
    """Run ``work(progress)`` showing :class:`StepProgress`; on SIGINT/SIGTERM print where it
    stopped and how to resume, then re-raise (the caller exits 130)."""
    progress = StepProgress(steps, console, tty=tty)
    try:
        with terminate_as_interrupt(), warnings_as_lines(console), progress:
            result = work(progress)
            progress.finish()
    except KeyboardInterrupt as exc:
        _say(console, progress.interrupted(exc, resume))
        raise
    return result


@contextmanager
def warnings_as_lines(console: Console) -> Iterator[None]:
    """Regent's own warnings (a horizon beyond the follow-up, ...) as one ``warning:`` line each;
    other warnings as Python shows them."""
    import warnings

    from toolkit.errors import ToolkitWarning

    show = warnings.showwarning

    def line(message: Any, category: type[Warning], *args: Any, **kwargs: Any) -> None:
        if issubclass(category, ToolkitWarning):
            _say(console, f"warning: {message}")
        else:
            show(message, category, *args, **kwargs)

    with warnings.catch_warnings():
        warnings.showwarning = line
        yield


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)
