"""Dependency gating, observed through the timestamps `status --json` reports."""
from host_util import PY, host, parse_time, wait_until  # noqa: F401 (fixture)

# A "database" that takes a while to get ready and says so in its log.
SLOW_DB = """
    import time
    time.sleep(1.5)
    print("db accepting connections", flush=True)
    time.sleep(1000)
"""


def test_dependents_start_only_after_their_conditions(host):
    project = host.project("gate", f"""
        [service.db]
        command = ["{PY}", "-u", "db.py"]
        port = false
        health_check = {{ log = "accepting connections", interval = "100ms", retries = 100 }}

        [service.migrate]
        command = "sleep 0.5; echo migrated"
        port = false
        restart = "no"
        depends_on = {{ db = "healthy" }}

        [service.web]
        command = "sleep 1000"
        port = false
        depends_on = {{ db = "healthy", migrate = "completed_successfully" }}

        [service.sidecar]
        command = "sleep 1000"
        port = false
        depends_on = ["db"]
    """, files={"db.py": SLOW_DB})
    result = host.run("up", project, check=True)
    # Plain progress lines (stdout is not a TTY) with the states in order.
    lines = result.stdout.splitlines()
    assert "gate:web: pending" in "\n".join(lines)
    assert any(line.startswith("gate:db: ready") for line in lines)
    status = {s["name"]: s for s in host.status()["services"]}
    db, migrate, web, sidecar = (status[n] for n in ("db", "migrate", "web", "sidecar"))
    assert db["state"] == "ready"
    assert migrate["state"] == "exited" and migrate["exit_code"] == 0
    assert web["state"] == "running"
    assert sidecar["state"] == "running"
    # healthy: migrate started only after db was ready.
    assert parse_time(migrate["started_at"]) >= parse_time(db["ready_at"])
    # completed_successfully: web started after migrate had finished (it ran
    # at least its 0.5 s) and after db was ready.
    assert parse_time(web["started_at"]) >= parse_time(db["ready_at"])
    assert (parse_time(web["started_at"]) - parse_time(migrate["started_at"])).total_seconds() >= 0.5
    # started: the sidecar did not wait for db to be healthy.
    assert parse_time(sidecar["started_at"]) < parse_time(db["ready_at"])
    assert "migrated" in host.logs("migrate")


def test_failed_dependency_fails_only_its_dependents(host):
    project = host.project("partial", """
        [service.migrate]
        command = "echo boom; exit 3"
        port = false
        restart = "no"

        [service.api]
        command = "sleep 1000"
        port = false
        depends_on = { migrate = "completed_successfully" }

        [service.cache]
        command = "sleep 1000"
        port = false
    """)
    result = host.run("up", project)
    assert result.returncode == 1, result
    status = {s["name"]: s for s in host.status()["services"]}
    assert status["migrate"]["state"] == "exited"
    assert status["migrate"]["exit_code"] == 3
    assert status["api"]["state"] == "failed"
    assert status["api"]["pid"] is None
    assert status["cache"]["state"] == "running"
    human = host.run("status", check=True).stdout
    assert "dependency `migrate`" in human
    assert "api failed" in result.stderr


def test_stop_order_dependents_first(host):
    # Each service records when it received SIGTERM; dependents must be gone
    # before their dependency is even signalled.
    trap = ("trap 'date +%s.%N > {name}.stopped; exit 0' TERM; "
            "while :; do sleep 0.05; done")
    project = host.project("order", f"""
        [service.db]
        command = "{trap.format(name='db')}"
        port = false
        [service.api]
        command = "{trap.format(name='api')}"
        port = false
        depends_on = ["db"]
        [service.web]
        command = "{trap.format(name='web')}"
        port = false
        depends_on = ["api"]
    """)
    host.run("up", project, check=True)
    host.run("down", project, check=True)
    times = {n: float((project / f"{n}.stopped").read_text()) for n in ("db", "api", "web")}
    assert times["web"] <= times["api"] <= times["db"]
    # A project that is down is forgotten (its ports are kept for the next up).
    assert host.status() == {"services": []}
