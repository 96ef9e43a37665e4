"""`up` on a running project re-applies it: unchanged services are left alone,
changed ones restarted, removed ones stopped, new ones started."""
from host_util import PY, host, pid_alive  # noqa: F401 (fixture)


def test_reapply_after_editing_locald_toml(host):
    project = host.project("edit", """
        [service.keep]
        command = "sleep 1000"
        port = false

        [service.change]
        command = "sleep 1000"
        port = false
        env = { MODE = "one" }

        [service.remove]
        command = "sleep 1000"
        port = false
    """)
    host.run("up", project, check=True)
    before = {s["name"]: s for s in host.status()["services"]}

    # A different shell environment alone is not a change.
    host.run("up", project, check=True, env={"SOME_NEW_VAR": "1"})
    same = {s["name"]: s for s in host.status()["services"]}
    assert {n: s["pid"] for n, s in same.items()} == {n: s["pid"] for n, s in before.items()}

    (project / "locald.toml").write_text("""
[service.keep]
command = "sleep 1000"
port = false

[service.change]
command = "sleep 1000"
port = false
env = { MODE = "two" }

[service.added]
command = "sleep 1000"
port = false
""")
    host.run("up", project, check=True)
    after = {s["name"]: s for s in host.status()["services"]}
    assert set(after) == {"keep", "change", "added"}
    assert after["keep"]["pid"] == before["keep"]["pid"]
    assert after["change"]["pid"] != before["change"]["pid"]
    assert after["change"]["state"] == "running"
    assert after["added"]["state"] == "running"
    assert not pid_alive(before["remove"]["pid"])
    assert not pid_alive(before["change"]["pid"])
    env = open(f"/proc/{after['change']['pid']}/environ", "rb").read().split(b"\0")
    assert b"MODE=two" in env

    # A config error on re-apply changes nothing.
    (project / "locald.toml").write_text("[service.keep]\ncommand = 3\n")
    result = host.run("up", project)
    assert result.returncode == 3
    still = {s["name"]: s["pid"] for s in host.status()["services"]}
    assert still == {n: s["pid"] for n, s in after.items()}


def test_down_then_up_keeps_the_port(host):
    project = host.project("again", f"""
        [service.web]
        command = "exec {PY} -m http.server $PORT --bind 127.0.0.1"
    """)
    host.run("up", project, check=True)
    first = host.service("web")
    host.run("down", project, check=True)
    assert not pid_alive(first["pid"])
    assert host.status() == {"services": []}
    host.run("up", project, check=True)
    second = host.service("web")
    assert second["state"] == "ready"
    assert second["port"] == first["port"]
    assert second["pid"] != first["pid"]
