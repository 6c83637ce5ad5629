"""Process memory for the benchmarks: /proc/self/status fields and a peak-RSS sampler.

Shared by the scripts that measure peak memory in a fresh child process
(``bench_kmeans.py``, ``bench_io.py``); Linux only (0 where /proc is absent).
"""

from __future__ import annotations

import threading


def vm(field: str) -> int:
    """A ``VmXXX`` line of /proc/self/status, in bytes (0 if unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS, where the kernel allows it; True if it now
    reads as a fresh peak (within 16 MiB of the RSS)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return 0 < vm("VmHWM") <= vm("VmRSS") + (16 << 20)


class RssSampler:
    """Polls VmRSS (or another ``/proc/self/status`` field, such as ``RssAnon``) every few
    milliseconds in a thread; ``peak`` is the largest seen."""

    def __init__(self, interval: float = 0.005, field: str = "VmRSS") -> None:
        self.interval = interval
        self.field = field
        self.peak = vm(field)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, vm(self.field))
            self._stop.wait(self.interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, vm(self.field))
