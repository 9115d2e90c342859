"""Progress of an ensemble, at chunk granularity, reported from inside the compiled loop
(private): a redrawn line on a terminal, whole lines (about one per 10%) in a log."""

import sys
import time

# The host time at which the first chunk of the run in progress finished (compilation
# and the first chunk are not timed: the rate comes from the chunks after it).
_clock: dict[str, float | None] = {"start": None}


def report_progress(k, n_chunks, failed, device):
    """Host side: chunk `k` of `n_chunks` finished with `failed` failures so far (only
    device 0 reports)."""
    if int(device) != 0:
        return
    k, n_chunks, now = int(k), int(n_chunks), time.perf_counter()
    if k == 0 or _clock["start"] is None:
        _clock["start"], timed = now, 0
    else:
        timed = k
    elapsed = now - _clock["start"]
    eta = f", ~{elapsed / timed * (n_chunks - k - 1):.1f} s left" if timed else ""
    last = k + 1 == n_chunks
    line = (
        f"ds.ensemble: chunk {k + 1}/{n_chunks} ({100 * (k + 1) // n_chunks}%){eta}, "
        f"{int(failed)} failed"
    )
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty and isatty():  # one line, redrawn
        print("\r" + line, end="\n" if last else "", file=sys.stderr, flush=True)
    elif last or k == 0 or 10 * (k + 1) // n_chunks > 10 * k // n_chunks:
        # A log file or a notebook: whole lines, about one per 10%.
        print(line, file=sys.stderr, flush=True)
