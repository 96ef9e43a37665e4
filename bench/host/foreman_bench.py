#!/usr/bin/env python3
"""locald vs foreman on the same 20-service Procfile (issue H1's benchmark).

Measures, each over several runs (median reported):
  1. start: from launching the command to all 20 processes running
     (locald cold = daemon autostart included; warm = daemon already up);
  2. RSS of the supervisor with the 20 services running (locald daemon vs the
     foreman ruby process);
  3. log throughput: one service writes SIZE MB of 100-byte lines; the producer
     times itself from first to last write (a slow consumer shows as a slow
     producer, because the PTY/pipe fills up);
     The same producer under a bare PTY read loop ("raw pty") is the ceiling:
     what the kernel's PTY moves at that moment with nothing recorded;
  4. death notice: SIGKILL one service, time until the tool's output says so
     (locald: `logs -f` shows the [locald] "killed by SIGKILL" line; foreman: its
     "terminated by SIGKILL" line), read by this script from a pipe.

Every measurement is interleaved: each run measures every tool once, in
alternating order, so the load of a shared machine hits them alike.

usage: bench/host/foreman_bench.py [--runs N] [--log-mb M] [--locald build/locald]
Needs `foreman` (Debian ruby-foreman; `scripts/bootstrap --bench`)."""
import argparse
import json
import os
import pathlib
import platform
import pty
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MARKER = "LOCALD_BENCH_MARKER"
N = 20


def procs_with_marker(value, comm=None):
    found = []
    needle = f"{MARKER}={value}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if needle not in open(f"/proc/{entry}/environ", "rb").read().split(b"\0"):
                continue
            if comm and open(f"/proc/{entry}/comm").read().strip() != comm:
                continue
            state = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[0]
            if state != "Z":
                found.append(int(entry))
        except OSError:
            pass
    return found


def wait_for(predicate, timeout=60, interval=0.0005):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError("timed out")


def rss_kib(pid):
    """VmRSS and RssAnon (private memory, without mapped library/binary pages)."""
    values = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "RssAnon"):
            values[key] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("RssAnon", 0)


def write_procfile(path, lines):
    path.mkdir(parents=True, exist_ok=True)
    (path / "Procfile").write_text("".join(f"{name}: {cmd}\n" for name, cmd in lines))


def sleepers():
    return [(f"svc{i:02d}", "exec sleep 1000000") for i in range(1, N + 1)]


class Locald:
    name = "locald"

    def __init__(self, binary, work):
        self.binary = binary
        self.home = work / "locald-home"

    def env(self, marker):
        return dict(os.environ, LOCALD_HOME=str(self.home), **{MARKER: marker})

    def run(self, *args, marker="none", **kw):
        return subprocess.run([self.binary, *map(str, args)], env=self.env(marker),
                              capture_output=True, text=True, timeout=300, **kw)

    def start_time(self, project, marker, warm):
        if warm:
            self.run("status")  # the daemon is up before the clock starts
        t0 = time.monotonic()
        proc = subprocess.Popen([self.binary, "up", str(project)], env=self.env(marker),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: len(procs_with_marker(marker, "sleep")) >= N)
        elapsed = time.monotonic() - t0
        proc.wait(timeout=120)
        return elapsed

    def supervisor_rss(self):
        pid = int((self.home / "run" / "daemon.pid").read_text().split()[0])
        return rss_kib(pid)

    def stop(self, project):
        self.run("down", project)
        self.run("shutdown")

    def throughput(self, project, marker):
        self.run("up", project, marker=marker)
        result = project / "producer.json"
        wait_for(lambda: result.exists() and result.stat().st_size > 0, timeout=600,
                 interval=0.05)
        self.run("shutdown")
        return json.loads(result.read_text())

    def death(self, project, marker):
        self.run("up", project, marker=marker)
        victim = wait_for(lambda: procs_with_marker(marker, "sleep"))[0]
        follow = subprocess.Popen([self.binary, "logs", "-f", "--no-color", "--since", "0s"],
                                  cwd=project, env=self.env(marker), stdout=subprocess.PIPE)
        time.sleep(0.5)  # the follow is established
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        elapsed = read_until(follow.stdout, b"killed by", t0)
        follow.kill()
        follow.wait()
        self.run("shutdown")
        return elapsed


class RawPty:
    """The ceiling: the same producer under a PTY whose master a bare loop
    reads and discards (non-blocking 64 KiB reads after each poll wakeup, as
    locald's supervisor does), nothing recorded. What the kernel's PTY moves on
    this machine at this moment."""
    name = "raw pty"

    def __init__(self, py):
        self.py = py

    def throughput(self, project, marker, mb):
        master, slave = pty.openpty()
        env = dict(os.environ, **{MARKER: marker})
        proc = subprocess.Popen([self.py, "-u", "producer.py", str(mb)], cwd=project,
                                stdin=slave, stdout=slave, stderr=slave, env=env,
                                start_new_session=True)
        os.close(slave)
        os.set_blocking(master, False)
        result = project / "producer.json"
        poller = select.poll()
        poller.register(master, select.POLLIN)
        next_check = 0.0
        while True:
            if poller.poll(50):
                try:
                    while os.read(master, 65536):
                        pass
                except (BlockingIOError, OSError):
                    pass
            now = time.monotonic()
            if now >= next_check:
                next_check = now + 0.05
                if result.exists() and result.stat().st_size > 0:
                    break
        proc.kill()
        proc.wait()
        os.close(master)
        return json.loads(result.read_text())


class Foreman:
    name = "foreman"

    def __init__(self):
        self.proc = None

    def launch(self, project, marker, stdout=subprocess.DEVNULL):
        env = dict(os.environ, **{MARKER: marker})
        self.proc = subprocess.Popen(["foreman", "start", "-f", str(project / "Procfile"), "-d",
                                      str(project)], env=env, stdout=stdout,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def start_time(self, project, marker, warm):
        t0 = time.monotonic()
        self.launch(project, marker)
        wait_for(lambda: len(procs_with_marker(marker, "sleep")) >= N)
        return time.monotonic() - t0

    def supervisor_rss(self):
        return rss_kib(self.proc.pid)

    def stop(self, project):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def throughput(self, project, marker):
        self.launch(project, marker)
        result = project / "producer.json"
        wait_for(lambda: result.exists() and result.stat().st_size > 0, timeout=600,
                 interval=0.05)
        self.stop(project)
        return json.loads(result.read_text())

    def death(self, project, marker):
        self.launch(project, marker, stdout=subprocess.PIPE)
        victim = wait_for(lambda: procs_with_marker(marker, "sleep"))[0]
        time.sleep(0.5)
        # Drain what foreman printed so far.
        while select.select([self.proc.stdout], [], [], 0)[0]:
            if not os.read(self.proc.stdout.fileno(), 65536):
                break
        t0 = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        elapsed = read_until(self.proc.stdout, b"terminated by SIGKILL", t0)
        self.stop(project)
        return elapsed


def read_until(stream, needle, t0, timeout=30):
    data = b""
    deadline = t0 + timeout
    while needle not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise RuntimeError(f"no {needle!r} within {timeout}s: {data[-500:]!r}")
        if select.select([stream], [], [], remaining)[0]:
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                raise RuntimeError(f"stream ended before {needle!r}")
            data += chunk
    return time.monotonic() - t0


PRODUCER = """
import json, os, sys, time
size = int(sys.argv[1]) * 1000 * 1000
line = b"x" * 99 + b"\\n"
chunk = line * 640
out = sys.stdout.buffer
t0 = time.monotonic()
written = 0
while written < size:
    out.write(chunk)
    written += len(chunk)
out.flush()
elapsed = time.monotonic() - t0
tmp = "producer.json.tmp"
with open(tmp, "w") as f:
    json.dump({"bytes": written, "seconds": elapsed}, f)
os.rename(tmp, "producer.json")
time.sleep(1000000)
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--log-mb", type=int, default=200)
    parser.add_argument("--locald", default=str(pathlib.Path(__file__).resolve().parents[2] / "build" / "locald"))
    args = parser.parse_args()
    args.locald = os.path.abspath(args.locald)
    if shutil.which("foreman") is None:
        sys.exit("foreman not found: run scripts/bootstrap --bench (Debian ruby-foreman)")
    py = "/usr/bin/python3"
    with open("/proc/loadavg") as f:
        load_at_start = f.read().split()[:3]
    work = pathlib.Path(tempfile.mkdtemp(prefix="locald-bench-"))
    results = {}
    tools = {"locald": Locald(args.locald, work), "foreman": Foreman()}
    try:
        # Interleaved: every run measures each tool once, in alternating order,
        # so load changes on this shared machine hit all of them alike.
        order = [("locald cold", tools["locald"], False), ("locald warm", tools["locald"], True),
                 ("foreman", tools["foreman"], False)]
        for run in range(args.runs):
            for label, tool, warm in (order if run % 2 == 0 else order[::-1]):
                project = work / f"start-{label.replace(' ', '-')}-{run}"
                write_procfile(project, sleepers())
                marker = f"start-{label}-{run}-{time.monotonic_ns()}"
                if isinstance(tool, Locald) and not warm:
                    tool.run("shutdown")  # cold: no daemon before the clock starts
                elapsed = tool.start_time(project, marker, warm)
                time.sleep(0.3)
                total, private = tool.supervisor_rss()
                if isinstance(tool, Locald):
                    tool.run("down", project)
                else:
                    tool.stop(project)
                wait_for(lambda: not procs_with_marker(marker, "sleep"), timeout=60, interval=0.01)
                entry = results.setdefault(label, {"start_ms": [], "rss_kib": [], "rss_anon_kib": []})
                entry["start_ms"].append(round(elapsed * 1000, 1))
                entry["rss_kib"].append(total)
                entry["rss_anon_kib"].append(private)
        tools["locald"].run("shutdown")
        log_tools = [("locald", tools["locald"]), ("foreman", tools["foreman"]),
                     ("raw pty", RawPty(py))]
        for run in range(args.runs):
            for name, tool in (log_tools if run % 2 == 0 else log_tools[::-1]):
                project = work / f"log-{name.replace(' ', '-')}-{run}"
                write_procfile(project, [("flood", f"exec {py} -u producer.py {args.log_mb}")])
                (project / "producer.py").write_text(PRODUCER)
                marker = f"log-{name}-{run}"
                if isinstance(tool, RawPty):
                    report = tool.throughput(project, marker, args.log_mb)
                else:
                    report = tool.throughput(project, marker)
                results.setdefault(f"{name} log", {"mb_per_s": []})["mb_per_s"].append(
                    round(report["bytes"] / report["seconds"] / 1e6, 1))
        death_tools = list(tools.items())
        for run in range(args.runs):
            for name, tool in (death_tools if run % 2 == 0 else death_tools[::-1]):
                project = work / f"death-{name}-{run}"
                write_procfile(project, [("victim", "exec sleep 1000000"),
                                         ("bystander", "exec sleep 1000000")])
                notice = tool.death(project, f"death-{name}-{run}-{time.monotonic_ns()}")
                results.setdefault(f"{name} death", {"notice_ms": []})["notice_ms"].append(
                    round(notice * 1000, 2))
    finally:
        subprocess.run([args.locald, "shutdown"], env=dict(os.environ, LOCALD_HOME=str(work / "locald-home")),
                       capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    summary = {"load_at_start": load_at_start, "load_at_end": load,
               "locald": args.locald,
               "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus, kernel {platform.release()}",
               "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "runs": args.runs, "log_mb": args.log_mb, "results": results}
    for label, values in results.items():
        for key, series in list(values.items()):
            values[key + "_median"] = statistics.median(series)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
