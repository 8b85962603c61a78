"""A real single-node Kafka broker (KRaft: broker and controller in one JVM) on loopback.

The jars come from Maven Central (see kafka/pom.xml) and are cached by the pom's hash, so only the
first use needs the network. A class-data archive made on the first start makes later starts faster.

    python -m tests.support.kafka_broker start --dir DIR   # prints bootstrap=127.0.0.1:PORT, leaves it running
    python -m tests.support.kafka_broker stop --dir DIR
    python -m tests.support.kafka_broker fetch             # only resolve the jars (warms a CI machine)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

POM = Path(__file__).resolve().parent / "kafka" / "pom.xml"
CACHE_ENV = "PIPELOOM_KAFKA_CACHE"
HEAP_AND_GC = ["-Xms256m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-XX:+ExitOnOutOfMemoryError"]
# The orphan guard in tests/conftest.py fails a test that leaves a process carrying this variable; the broker
# outlives single tests on purpose, so it must not inherit it.
_TEST_TAG = "PIPELOOM_TEST_TAG"

_LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = ${sys:pipeloom.kafka.log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
"""

_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}
num.partitions=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
"""


class BrokerError(RuntimeError):
    """The broker could not be prepared, started or stopped; the message says what to do next."""


# ------------------------------------------------------------ tools and jars

def missing_tools() -> list[str]:
    """What is missing to run the broker, as install hints; empty when java and mvn are on PATH."""
    hints = []
    if shutil.which("java") is None:
        hints.append("`java` (Java 17 or newer) is not installed: apt-get install openjdk-17-jre-headless")
    if shutil.which("mvn") is None:
        hints.append("`mvn` (Maven, to fetch the Kafka jars) is not installed: apt-get install maven")
    return hints


def cache_dir() -> Path:
    """The folder for this pom's jars and class-data archive: $PIPELOOM_KAFKA_CACHE or ~/.cache/pipeloom-test/kafka."""
    root = os.environ.get(CACHE_ENV)
    if root:
        base = Path(root).expanduser()
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pipeloom-test" / "kafka"
    return base / hashlib.sha256(POM.read_bytes()).hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def resolve_jars(timeout: float = 900) -> Path:
    """The folder holding the broker's jars, fetched with Maven on first use (safe to call from many processes)."""
    home = cache_dir()
    jars = home / "jars"
    if (jars / ".complete").exists():
        return jars
    if shutil.which("mvn") is None:
        raise BrokerError(missing_tools()[-1])
    with _locked(home / ".lock"):
        if (jars / ".complete").exists():
            return jars
        work = Path(tempfile.mkdtemp(prefix="resolve-", dir=home))
        try:
            shutil.copy(POM, work / "pom.xml")
            cmd = ["mvn", "-q", "-B", "-Dstyle.color=never", "dependency:copy-dependencies", f"-DoutputDirectory={work / 'jars'}"]
            try:
                done = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout,
                                      env=_clean_env(), stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as exc:
                raise BrokerError(f"Maven took over {timeout:.0f} s to fetch the Kafka jars ({POM}); "
                                  "check access to Maven Central or a mirror in ~/.m2/settings.xml") from exc
            found = sorted((work / "jars").glob("*.jar")) if (work / "jars").is_dir() else []
            if done.returncode != 0 or not any(p.name.startswith("kafka_2.13-") for p in found):
                tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                raise BrokerError(f"Maven could not fetch the Kafka jars listed in {POM} (exit {done.returncode}); "
                                  "it needs access to Maven Central (https://repo.maven.apache.org) or a mirror "
                                  f"set in ~/.m2/settings.xml. Maven said:\n{tail}")
            (work / "jars" / ".complete").write_text(f"{len(found)} jars\n")
            if jars.exists():
                shutil.rmtree(jars)
            os.replace(work / "jars", jars)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return jars


def _classpath(jars: Path) -> str:
    # The class-data archive is only valid for the exact classpath it was made with, so keep the order stable.
    return os.pathsep.join(str(p) for p in sorted(jars.glob("*.jar")))


def _archive_path(java: str) -> Path:
    real = Path(os.path.realpath(java))
    libjvm = real.parent.parent / "lib" / "server" / "libjvm.so"
    stamp = f"{real}:{real.stat().st_mtime_ns}:{libjvm.stat().st_mtime_ns if libjvm.exists() else 0}"
    return cache_dir() / f"broker-{hashlib.sha256(stamp.encode()).hexdigest()[:12]}.jsa"


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != _TEST_TAG}


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _cluster_id() -> str:
    # What `StorageTool random-uuid` prints (Kafka's Uuid: 16 random bytes, url-safe base64, no padding),
    # made here to save a JVM start. Kafka avoids ids starting with "-" as they look like a flag.
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


# ------------------------------------------------------------ process helpers

def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return []


def _die_with_parent() -> None:
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


# ------------------------------------------------------------ the broker

class Broker:
    """One broker whose configuration, data, logs and pid file live in `workdir`.

    With `die_with_parent`, the kernel kills the broker if this process dies without stopping it (a test
    session killed with -9); the command line leaves it off, since there the broker must outlive it.
    """

    def __init__(self, workdir: Path | str, die_with_parent: bool = False):
        self.dir = Path(workdir).resolve()
        self.die_with_parent = die_with_parent
        self.props = self.dir / "server.properties"
        self.data = self.dir / "data"
        self.logs = self.dir / "logs"
        self.log = self.logs / "server.log"
        self.pid_file = self.dir / "broker.pid"
        self.state_file = self.dir / "broker.json"
        self.bootstrap: str | None = None
        self.pid: int | None = None
        self.timings: dict[str, float | str] = {}
        self._proc: subprocess.Popen | None = None

    # -------------------------------------------------------- start

    def start(self, timeout: float = 180) -> str:
        """Start the broker and wait until it serves metadata; returns 'host:port' for bootstrap.servers."""
        hints = missing_tools()
        if hints:
            raise BrokerError("; ".join(hints))
        state = self._read_state()
        if state and self._is_ours(state["pid"]):
            raise BrokerError(f"a broker is already running from {self.dir} (pid {state['pid']}, "
                              f"bootstrap={state['bootstrap']}); stop it first with "
                              f"`python -m tests.support.kafka_broker stop --dir {self.dir}`")
        t0 = time.monotonic()
        jars = resolve_jars()
        self.timings["resolve_s"] = round(time.monotonic() - t0, 2)
        java = shutil.which("java")
        cp = _classpath(jars)
        archive = _archive_path(java)
        port, cport = _free_ports(2)
        self._prepare_dir(port, cport)

        share = [f"-XX:SharedArchiveFile={archive}"] if archive.exists() else []
        t0 = time.monotonic()
        self._run_tool([java, *HEAP_AND_GC[1:], *share, f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
                        f"-Dpipeloom.kafka.log={self.logs / 'storage-tool.log'}", "-cp", cp,
                        "kafka.tools.StorageTool", "format", "-t", _cluster_id(), "-c", str(self.props),
                        "--standalone"])
        self.timings["format_s"] = round(time.monotonic() - t0, 2)

        archive_tmp = None
        if share:
            self.timings["archive"] = "used"
        else:
            # Written when the JVM exits normally; moved into place by stop() so a killed run leaves no half file.
            archive_tmp = archive.with_name(f"{archive.stem}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp")
            share = [f"-XX:ArchiveClassesAtExit={archive_tmp}"]
            self.timings["archive"] = "made at stop"
        cmd = [java, *HEAP_AND_GC, *share, f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
               f"-Dpipeloom.kafka.log={self.log}", "-cp", cp, "kafka.Kafka", str(self.props)]
        t0 = time.monotonic()
        with open(self.logs / "jvm.out", "ab") as out:
            self._proc = subprocess.Popen(cmd, cwd=self.dir, env=_clean_env(), stdin=subprocess.DEVNULL,
                                          stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_die_with_parent if self.die_with_parent else None)
        self.pid = self._proc.pid
        self.bootstrap = f"127.0.0.1:{port}"
        self.pid_file.write_text(f"{self.pid}\n")
        self._write_state({"pid": self.pid, "bootstrap": self.bootstrap, "props": str(self.props),
                           "archive": str(archive), "archive_tmp": str(archive_tmp) if archive_tmp else None})
        try:
            self._wait_ready(port, timeout)
        except BaseException:
            self.stop(grace=5)
            raise
        self.timings["ready_s"] = round(time.monotonic() - t0, 2)
        return self.bootstrap

    def _prepare_dir(self, port: int, cport: int) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.data.exists():
            if any(self.data.iterdir()) and not (self.data / "meta.properties").exists():
                raise BrokerError(f"{self.data} holds files that are not a broker's data; choose another --dir")
            shutil.rmtree(self.data)  # each start begins with an empty broker
        self.data.mkdir()
        self.logs.mkdir(exist_ok=True)
        (self.dir / "log4j2.properties").write_text(_LOG4J)
        self.props.write_text(_PROPERTIES.format(port=port, cport=cport, data=self.data))

    def _run_tool(self, cmd: list[str]) -> None:
        try:
            done = subprocess.run(cmd, cwd=self.dir, env=_clean_env(), capture_output=True, text=True,
                                  timeout=180, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting the broker's data in {self.data} took over 180 s") from exc
        if done.returncode != 0:
            raise BrokerError(f"formatting the broker's data in {self.data} failed (exit {done.returncode}):\n"
                              f"{(done.stdout + done.stderr).strip()[-3000:]}")

    def _wait_ready(self, port: int, timeout: float) -> None:
        try:
            from confluent_kafka.admin import AdminClient
        except ImportError as exc:
            raise BrokerError("the readiness check needs confluent-kafka: pip install confluent-kafka "
                              "(it is in pipeloom's [test] extra)") from exc
        deadline = time.monotonic() + timeout
        admin = None
        while True:
            if self._proc.poll() is not None:
                raise BrokerError(f"the Kafka broker exited with code {self._proc.returncode} while starting; "
                                  f"its log {self.log} ends with:\n{_tail(self.log)}\n{_tail(self.logs / 'jvm.out', 10)}")
            if time.monotonic() > deadline:
                raise BrokerError(f"the Kafka broker was not ready after {timeout:.0f} s; "
                                  f"its log {self.log} ends with:\n{_tail(self.log)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if admin is None:
                admin = AdminClient({"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 5000})
            try:
                if admin.list_topics(timeout=5).brokers:
                    return
            except Exception:  # KafkaException while the broker is still coming up
                pass
            time.sleep(0.2)

    # -------------------------------------------------------- stop

    def stop(self, grace: float | None = None) -> bool:
        """Stop the broker started from this folder: SIGTERM, then SIGKILL after `grace` s; False if none ran."""
        state = self._read_state() or {}
        pid = self.pid or state.get("pid")
        if pid is None and self.pid_file.exists():
            pid = int(self.pid_file.read_text().strip() or 0) or None
        archive_tmp = state.get("archive_tmp")
        if grace is None:
            grace = 45 if archive_tmp else 20  # dumping the class-data archive at exit takes a few seconds
        stopped = False
        if pid and self._is_ours(pid):
            t0 = time.monotonic()
            self._signal(pid, signal.SIGTERM)
            if not self._wait_exit(pid, grace):
                self._signal(pid, signal.SIGKILL)
                self._wait_exit(pid, 10)
            self.timings["stop_s"] = round(time.monotonic() - t0, 2)
            stopped = True
        elif self._proc is not None:
            self._proc.wait()  # reap it if it died on its own
        if archive_tmp:
            tmp = Path(archive_tmp)
            if stopped and tmp.exists() and tmp.stat().st_size > 0:
                os.replace(tmp, state["archive"])
                for stale in Path(state["archive"]).parent.glob("broker-*.jsa"):  # made by an older JDK
                    if stale != Path(state["archive"]):
                        stale.unlink(missing_ok=True)
            else:
                tmp.unlink(missing_ok=True)
        self.pid_file.unlink(missing_ok=True)
        self.state_file.unlink(missing_ok=True)
        self.pid = None
        return stopped

    def _is_ours(self, pid: int) -> bool:
        # A pid file can outlive its process and the pid be reused: only ever signal our own broker.
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None
        args = _cmdline(pid)
        return _alive(pid) and "kafka.Kafka" in args and str(self.props) in args

    def _signal(self, pid: int, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)  # its own session, so its group is its pid
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            try:
                self._proc.wait(timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    # -------------------------------------------------------- state file

    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    def _write_state(self, state: dict) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=1) + "\n")
        os.replace(tmp, self.state_file)


# ------------------------------------------------------------ CLI

def main(argv: list[str] | None = None) -> int:
    """Start, stop or prepare a broker from the command line; exit 2 with the reason on failure."""
    parser = argparse.ArgumentParser(prog="python -m tests.support.kafka_broker",
                                     description="A real single-node Kafka broker on 127.0.0.1, for tests and demos.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a broker with an empty data folder and print bootstrap=HOST:PORT")
    start.add_argument("--dir", required=True, type=Path, help="folder for its configuration, data, logs and pid file")
    start.add_argument("--timeout", type=float, default=180, help="seconds to wait until it is ready (180)")
    stop = sub.add_parser("stop", help="stop the broker started with the same --dir")
    stop.add_argument("--dir", required=True, type=Path)
    sub.add_parser("fetch", help="only fetch the broker's jars with Maven into the cache")
    args = parser.parse_args(argv)
    try:
        if args.command == "fetch":
            print(f"jars={resolve_jars()}")
        elif args.command == "start":
            broker = Broker(args.dir)
            bootstrap = broker.start(timeout=args.timeout)
            print(f"bootstrap={bootstrap}", flush=True)
            t = broker.timings
            print(f"ready {t['ready_s']} s after launch (format {t['format_s']} s, class-data archive "
                  f"{t['archive']}); pid {broker.pid}, log {broker.log}\n"
                  f"stop it with: python -m tests.support.kafka_broker stop --dir {args.dir}", file=sys.stderr)
        else:
            broker = Broker(args.dir)
            if not broker.stop():
                print(f"no broker was running from {args.dir}", file=sys.stderr)
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
