"""Make a realistic sensor log for the sensor-alerts demo.

    python nodes/sensor-alerts/generate.py --events 1000000 --out sensors.log --seed 7
    python nodes/sensor-alerts/generate.py --kafka 127.0.0.1:9092 --topic sensor-readings --rate 2000 --seconds 60

Six greenhouse sensors each report temperature, humidity and air pressure
every five minutes. Readings follow a daily rhythm with noise; a few are
spikes or dips (a door left open, a sensor knocked), some sensors get stuck on
one value for a while, and about 1% of lines arrive garbled or empty, as they
do from real field gateways. The same seed always gives the same file.

With --kafka, the readings go to a Kafka topic instead, one message per line,
at a steady rate and stamped with the real time: `ts` is when the reading was
made and `sent_at` (milliseconds since 1970) when it was sent, so the alerts
it causes can be timed from end to end.
"""

from __future__ import annotations

import argparse
import os
import math
import random
import sys
from datetime import datetime, timedelta, timezone

SENSORS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
# metric: (typical level, daily swing, noise, decimals)
METRICS = {
    "temperature": (21.0, 3.0, 0.3, 1),
    "humidity": (55.0, 8.0, 1.0, 1),
    "pressure": (1013.0, 1.5, 0.3, 1),
}
START = datetime(2026, 11, 26, tzinfo=timezone.utc)
STEP_S = 300  # every stream reports once per five minutes
SPIKE_RATE = 0.008
STUCK_RATE = 0.0006
MALFORMED_RATE = 0.01


class Stream:
    """One sensor's readings of one metric."""

    def __init__(self, rng: random.Random, sensor: str, metric: str):
        level, swing, noise, decimals = METRICS[metric]
        self.sensor, self.metric = sensor, metric
        self.level = level + rng.uniform(-0.1, 0.1) * swing * 3
        self.swing = swing * rng.uniform(0.7, 1.3)
        self.phase = rng.uniform(0, 2 * math.pi)
        self.noise, self.decimals = noise, decimals
        self.stuck_left = 0
        self.stuck_value = 0.0
        self.last = self.level

    def reading(self, rng: random.Random, t_s: float) -> float:
        if self.stuck_left > 0:
            self.stuck_left -= 1
            return self.stuck_value
        day = 2 * math.pi * t_s / 86_400
        value = self.level + self.swing * math.sin(day + self.phase) + rng.gauss(0, self.noise)
        if rng.random() < SPIKE_RATE:
            value += rng.choice((-1, 1)) * rng.uniform(8, 20) * self.noise
        value = round(value, self.decimals)
        if rng.random() < STUCK_RATE:
            self.stuck_left = rng.randint(12, 40)
            self.stuck_value = value
        self.last = value
        return value


def garbled(rng: random.Random, line: str, sensor: str, ts: str) -> str:
    """A line as a flaky gateway might deliver it."""
    kind = rng.randrange(9)
    if kind == 0:
        return ""
    if kind == 1:
        return line[: rng.randint(5, max(6, len(line) - 12))]  # cut off mid-transmission
    if kind == 2:
        return line.replace(":", ": ", 1).split(" ", 1)[0] + f" sensor_id={sensor} ts={ts}"  # value missing
    if kind == 3:
        head, rest = line.split(" ", 1)
        return head.replace(".", "O", 1) + "x " + rest  # letters where digits belong
    if kind == 4:
        return line.replace(f"ts={ts}", "ts=yesterday")
    if kind == 5:
        return line.replace(f" sensor_id={sensor}", "")
    if kind == 6:
        return f"windspeed:{rng.uniform(0, 12):.1f} sensor_id={sensor} ts={ts}"
    if kind == 7:
        return "ERR gateway checksum mismatch 0x" + format(rng.getrandbits(16), "04x")
    return line.split(":", 1)[0] + ":NaN " + line.split(" ", 1)[1]


def readings(seed: int, clock=None):
    """Endless log lines; with `clock` (a function returning epoch seconds) stamped live, else simulated."""
    rng = random.Random(seed)
    streams = [Stream(rng, s, m) for s in SENSORS for m in METRICS]
    order = list(range(len(streams)))
    slot = 0
    while True:
        t_s = slot * STEP_S
        rng.shuffle(order)
        for k, i in enumerate(order):
            st = streams[i]
            value = st.reading(rng, t_s)
            if clock is None:
                ts = (START + timedelta(seconds=t_s + 7 * k)).strftime("%Y-%m-%dT%H:%M:%SZ")
                line = f"{st.metric}:{value:.{st.decimals}f} sensor_id={st.sensor} ts={ts}"
            else:
                now = clock()
                ts = datetime.fromtimestamp(now, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                line = f"{st.metric}:{value:.{st.decimals}f} sensor_id={st.sensor} ts={ts} sent_at={int(now * 1000)}"
            if rng.random() < MALFORMED_RATE:
                line = garbled(rng, line, st.sensor, ts)
            yield line
        slot += 1


def produce(brokers: str, topic: str, rate: float, seconds: float, seed: int) -> int:
    """Send readings to Kafka at `rate` per second for `seconds`; returns how many the broker acknowledged."""
    import time

    try:
        from confluent_kafka import Producer
    except ImportError:
        print("generate.py: --kafka needs the confluent-kafka package (pip install confluent-kafka)", file=sys.stderr)
        raise SystemExit(2)
    acked = [0]
    failed = []

    def delivered(err, _msg):
        if err is None:
            acked[0] += 1
        else:
            failed.append(err)

    p = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "acks": "all", "enable.idempotence": True})
    total = int(rate * seconds)
    start = time.monotonic()
    for n, line in enumerate(readings(seed, clock=time.time)):
        if n >= total:
            break
        due = start + n / rate
        wait = due - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        while True:
            try:
                p.produce(topic, value=line.encode(), on_delivery=delivered)
                break
            except BufferError:
                p.poll(0.05)
        p.poll(0)
    left = p.flush(30)
    took = time.monotonic() - start
    print(f"generate.py: sent {acked[0]:,} readings to {topic} in {took:.1f} s ({acked[0] / max(took, 1e-9):,.0f}/s)"
          + (f"; {len(failed) + left} not delivered: {failed[0] if failed else 'timed out'}" if failed or left else ""),
          file=sys.stderr)
    return acked[0]


def generate(events: int, seed: int, out) -> None:
    """Write `events` lines to the open text file `out`."""
    import itertools

    buf: list[str] = []
    for line in itertools.islice(readings(seed), events):
        buf.append(line)
        if len(buf) >= 20_000:
            out.write("\n".join(buf) + "\n")
            buf.clear()
    if buf:
        out.write("\n".join(buf) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=1000, help="number of log lines (default 1000)")
    ap.add_argument("--out", default="-", help="file to write (default: standard output)")
    ap.add_argument("--seed", type=int, default=24, help="random seed; the same seed gives the same file (default 24)")
    ap.add_argument("--kafka", metavar="BROKERS", help="send to Kafka (host:port,...) instead of writing a file")
    ap.add_argument("--topic", default="sensor-readings", help="the topic for --kafka (default sensor-readings)")
    ap.add_argument("--rate", type=float, default=100.0, help="readings per second for --kafka (default 100)")
    ap.add_argument("--seconds", type=float, default=10.0, help="how long to send for --kafka (default 10)")
    args = ap.parse_args(argv)
    if args.events < 0:
        ap.error("--events must be 0 or more")
    if args.kafka:
        if args.rate <= 0 or args.seconds <= 0:
            ap.error("--rate and --seconds must be more than 0")
        sent = produce(args.kafka, args.topic, args.rate, args.seconds, args.seed)
        return 0 if sent == int(args.rate * args.seconds) else 1
    if args.out == "-":
        generate(args.events, args.seed, sys.stdout)
        return 0
    tmp = f"{args.out}.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        generate(args.events, args.seed, fh)
    os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
