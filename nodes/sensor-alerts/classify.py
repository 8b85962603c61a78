"""Classify: decide, reading by reading, whether each sensor is behaving normally.

For every sensor and metric we remember its last `window` readings. A new
reading is compared with them: how many standard deviations is it from their
average (its z-score)? Far away means unusual:

    |z| < warning_z               -> normal
    warning_z <= |z| < critical_z -> warning
    |z| >= critical_z             -> critical

A sensor repeating exactly the same value `stuck_after` times in a row is
flagged as a warning too: real readings always wobble a little.

Writes every reading with its label to classified.json and only the warnings
and critical readings to alerts.json.
"""

import math
from collections import deque

import pipeloom


class Stream:
    """The recent history of one sensor's readings of one metric."""

    __slots__ = ("window", "shift", "total", "squares", "last", "repeats")

    def __init__(self, first_value):
        self.window = deque()
        # Sums are kept relative to the first value so that large levels
        # (pressure ~1013 hPa) do not swamp the small variance in rounding.
        self.shift = first_value
        self.total = 0.0
        self.squares = 0.0
        self.last = None
        self.repeats = 0


def main():
    p = pipeloom.params()
    size = int(p.get("window", 50))
    min_samples = int(p.get("min_samples", 10))
    warning_z = float(p.get("warning_z", 3.5))
    critical_z = float(p.get("critical_z", 6.0))
    stuck_after = int(p.get("stuck_after", 8))
    min_std = float(p.get("min_std", 0.05))

    streams = {}
    counts = {"normal": 0, "warning": 0, "critical": 0}
    sqrt = math.sqrt
    with pipeloom.writer("classified") as classified, pipeloom.writer("alerts") as alerts:
        keep = classified.write
        for rec in pipeloom.records("events"):
            x = rec["value"]
            key = (rec["sensor_id"], rec["metric"])
            st = streams.get(key)
            if st is None:
                st = streams[key] = Stream(x)
            d = x - st.shift
            window = st.window
            n = len(window)
            z = 0.0
            mean = None
            if n >= min_samples:
                mean = st.total / n
                std = sqrt(max(st.squares / n - mean * mean, 0.0))
                z = (d - mean) / (std if std > min_std else min_std)

            if x == st.last:
                st.repeats += 1
            else:
                st.last, st.repeats = x, 1
            az = abs(z)
            if az < warning_z:
                if st.repeats < stuck_after:
                    label, reason = "normal", None
                else:
                    label, reason = "warning", "stuck"
            elif az < critical_z:
                label, reason = "warning", "high" if z > 0 else "low"
            else:
                label, reason = "critical", "high" if z > 0 else "low"

            # Learn only from believable readings: a spike or a stuck sensor
            # would otherwise distort what "usual" means for the next ones.
            if label == "normal" or reason in ("high", "low") and label == "warning":
                window.append(d)
                st.total += d
                st.squares += d * d
                if n >= size:
                    old = window.popleft()
                    st.total -= old
                    st.squares -= old * old

            counts[label] += 1
            rec["label"] = label
            rec["score"] = round(z, 2)
            rec["reason"] = reason
            keep(rec)
            if label != "normal":
                expected = round(mean + st.shift, 2) if mean is not None else None
                alerts.write({**rec, "expected": expected})

    total = sum(counts.values())
    print(f"classify: {total} readings from {len(streams)} sensor streams: "
          f"{counts['normal']} normal, {counts['warning']} warning, {counts['critical']} critical")


if __name__ == "__main__":
    main()
