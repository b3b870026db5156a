"""Progress of long loops (model training, sweeps) on stderr, so that the main job is never silent for long.

The figures write nothing but their images; a loop that may take more than a few
seconds reports on stderr instead: ``Progress(label, total)``, then ``update(done,
loss)`` at every step. A line is printed only once the loop has run for ``after``
seconds, and then at most every ``every`` seconds, with the steps done, the current loss
(a running mean of the last steps' losses, which are noisy) and the time left at the
rate so far; a last line says how long it took. A disabled ``Progress`` (quick mode)
prints nothing.
"""

import sys
import time

AFTER, EVERY = 3.0, 5.0
"""Seconds before the first line, and at least between two lines."""


def _duration(seconds):
    seconds = int(round(max(0.0, float(seconds))))
    if seconds < 60:
        return f"{seconds} s"
    return f"{seconds // 60} min {seconds % 60:02d} s"


class Progress:
    """Reports ``done / total`` steps of a loop on ``stream`` (default stderr), rate-limited.

    Args:
        label: what the loop does, e.g. ``"training a CFM model on spirals"``.
        total: the number of steps.
        enabled: print at all (False in quick mode).
        after: seconds of work before the first line.
        every: minimum seconds between two lines.
        stream: a text stream (default ``sys.stderr``, looked up when printing).
        clock: a function returning seconds (default ``time.perf_counter``; tests pass a fake one).
        unit: what a step is called (``"steps"``, ``"solves"``, ...).
    """

    def __init__(self, label, total, enabled=True, after=AFTER, every=EVERY, stream=None, clock=time.perf_counter,
                 unit="steps"):
        self.label, self.total, self.enabled, self.unit = label, int(total), bool(enabled), unit
        self.after, self.every, self.stream, self.clock = float(after), float(every), stream, clock
        self.start = clock()
        self.last_print = None
        self.recent = []

    def _print(self, text):
        print(f"    {self.label}: {text}", file=self.stream or sys.stderr, flush=True)

    def update(self, done, loss=None):
        """Record that ``done`` steps are finished (and the last step's ``loss``); print if it is time."""
        if not self.enabled:
            return
        if loss is not None:
            self.recent.append(float(loss))
            del self.recent[:-100]
        now = self.clock()
        elapsed = now - self.start
        due = elapsed >= self.after if self.last_print is None else now - self.last_print >= self.every
        if not due or done <= 0:
            return
        self.last_print = now
        left = elapsed / done * (self.total - done)
        text = f"{done}/{self.total} {self.unit} ({100.0 * done / self.total:.0f}%)"
        if self.recent:
            text += f", loss {sum(self.recent) / len(self.recent):.4g} (last {len(self.recent)} {self.unit})"
        self._print(f"{text}, {_duration(elapsed)} so far, about {_duration(left)} left")

    def close(self):
        """Print how long the loop took, if anything was printed before."""
        if self.enabled and self.last_print is not None:
            self._print(f"done, {self.total} {self.unit} in {_duration(self.clock() - self.start)}")
