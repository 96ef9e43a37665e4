"""`locald config` and `locald env` on real project directories: the human and
--json output, env layering with provenance, and every class of bad input with
its exact file:line[:col] on stderr and the documented exit code."""
import json
import os

import pytest

from config_util import write_project

EXIT_USAGE = 2
EXIT_BAD_INPUT = 3

SHOP_TOML = """\
[project]
name = "shop"

[env]
RUST_LOG = "info"

[service.web]
command = "npm run dev"
workdir = "frontend"
env = { NODE_ENV = "development" }
env_file = [".env.web"]
port = 3000
depends_on = { db = "healthy", migrate = "completed_successfully" }
health_check = { http = "/healthz", interval = "1s", timeout = "2s", retries = 3, start_period = "10s" }
stop_signal = "SIGINT"

[service.db]
image = "postgres:15"
command = ["postgres", "-c", "fsync=off"]
volumes = ["pgdata:/var/lib/postgresql/data", "./initdb:/docker-entrypoint-initdb.d:ro"]
resources = { memory = "512M", cpus = 1.5, pids = 512 }
health_check = { exec = "pg_isready" }

[service.migrate]
command = "./migrate"
restart = "no"
port = false
"""


@pytest.fixture
def shop(tmp_path):
    return write_project(tmp_path, {
        "locald.toml": SHOP_TOML,
        ".env": "FROM_DOTENV=1\nGREETING=\"hello ${CLIENT_NAME:-nobody}\"\nRUST_LOG=debug\n",
        ".env.local": "FROM_DOTENV=local\n",
        ".env.web": "# web only\nWEB_ONLY=yes\nNODE_ENV=overridden-by-env\n",
        "Procfile": "web: ignored because locald.toml defines web\nworker: ./work --fast\n",
    })


def test_config_json_shape(run_locald, shop):
    result = run_locald("config", shop, "--json",
                        env={"CLIENT_NAME": "ada", "INHERITED_ONLY": "x"}, check=True)
    doc = json.loads(result.stdout)
    assert set(doc) == {"project", "services"}
    assert doc["project"]["name"] == "shop"
    assert doc["project"]["dir"] == str(shop)
    assert list(doc["services"]) == ["web", "db", "migrate", "worker"]

    web = doc["services"]["web"]
    assert web["kind"] == "host"
    assert web["command"] == "npm run dev"
    assert web["workdir"] == str(shop / "frontend")
    # Only what locald sets: no inherited variables, no injected ones.
    assert web["env"] == {
        "FROM_DOTENV": "local",
        "GREETING": "hello ada",
        "NODE_ENV": "development",
        "RUST_LOG": "info",
        "WEB_ONLY": "yes",
    }
    assert web["depends_on"] == {"db": "healthy", "migrate": "completed_successfully"}
    assert web["port"] == 3000
    assert web["health_check"] == {"kind": "http", "path": "/healthz", "interval_ms": 1000,
                                   "timeout_ms": 2000, "retries": 3, "start_period_ms": 10000}
    assert web["restart"] == "on-failure"
    assert web["backoff"] == {"initial_ms": 500, "max_ms": 30000}
    assert web["min_uptime_ms"] == 5000
    assert web["max_restarts"] == 10
    assert web["stop_signal"] == "SIGINT"
    assert web["stop_timeout_ms"] == 10000
    assert web["replicas"] == 1
    assert web["env_files"] == [str(shop / ".env.web")]
    assert web["source"] == f"{shop}/locald.toml:7:1"

    db = doc["services"]["db"]
    assert db["kind"] == "image"
    assert db["image"] == "postgres:15"
    assert db["command"] == ["postgres", "-c", "fsync=off"]  # the array as written
    assert db["workdir"] is None
    assert db["port"] == "auto"
    assert db["network"] == "host"
    assert db["volumes"] == [
        {"type": "named", "source": "pgdata", "target": "/var/lib/postgresql/data",
         "read_only": False},
        {"type": "bind", "source": str(shop / "initdb"), "target": "/docker-entrypoint-initdb.d",
         "read_only": True},
    ]
    assert db["resources"] == {"memory_bytes": 512 * 1024 * 1024, "cpus": 1.5, "pids": 512}

    assert doc["services"]["migrate"]["port"] is None
    assert doc["services"]["migrate"]["restart"] == "no"

    worker = doc["services"]["worker"]  # from the Procfile beside locald.toml
    assert worker["kind"] == "host"
    assert worker["command"] == "./work --fast"
    assert worker["port"] is None
    assert worker["source"] == f"{shop}/Procfile:2"


def test_config_json_exact_for_a_procfile_project(run_locald, tmp_path):
    project = write_project(tmp_path, {"Procfile": "web: python3 -m http.server $PORT\n"})
    result = run_locald("config", "--json", cwd=project, check=True)
    assert json.loads(result.stdout) == {
        "project": {"name": "project", "dir": str(project), "files": [str(project / "Procfile")]},
        "services": {
            "web": {
                "kind": "host", "command": "python3 -m http.server $PORT", "workdir": str(project),
                "env": {}, "env_files": [], "depends_on": {}, "port": "auto",
                "health_check": None, "restart": "on-failure",
                "backoff": {"initial_ms": 500, "max_ms": 30000}, "min_uptime_ms": 5000,
                "max_restarts": 10, "stop_signal": "SIGTERM", "stop_timeout_ms": 10000,
                "replicas": 1, "image": None, "entrypoint": None, "user": None, "volumes": None,
                "network": None, "resources": None, "read_only": None, "build": None,
                "process": None, "source": f"{project}/Procfile:1",
            },
        },
    }


def test_config_human_output(run_locald, shop):
    result = run_locald("config", shop, check=True)
    assert result.stderr == ""
    out = result.stdout
    assert out.startswith(f"project shop\n  dir:   {shop}\n")
    assert f"service web (host, {shop}/locald.toml:7:1)" in out
    assert "depends_on:   db (healthy), migrate (completed_successfully)" in out
    assert f"WEB_ONLY=yes  # {shop}/.env.web:2" in out
    assert f"service worker (host, {shop}/Procfile:2)" in out


def test_env_prints_the_full_environment(run_locald, shop):
    result = run_locald("env", "web", shop, env={"INHERITED_ONLY": "x", "RUST_LOG": "trace"},
                        check=True)
    lines = result.stdout.splitlines()
    values = dict(line.split("=", 1) for line in lines)
    assert values["INHERITED_ONLY"] == "x"      # the client's environment is the base
    assert values["RUST_LOG"] == "info"          # [env] beats both .env and the shell
    assert values["NODE_ENV"] == "development"   # env beats env_file
    assert values["WEB_ONLY"] == "yes"
    assert values["FROM_DOTENV"] == "local"      # .env.local beats .env
    assert values["PORT"] == "3000"
    assert values["LOCALD_PROJECT"] == "shop"
    assert values["LOCALD_SERVICE"] == "web"
    assert values["LOCALD_PORT_WEB"] == "3000"
    assert "LOCALD_PORT_DB" not in values        # auto ports are assigned at `up`
    assert [line.split("=", 1)[0] for line in lines] == sorted(values)


def test_env_explain_names_every_source(run_locald, shop):
    result = run_locald("env", "web", "--explain", shop, env={"INHERITED_ONLY": "x"}, check=True)
    lines = result.stdout.splitlines()
    assert f"FROM_DOTENV=local  # {shop}/.env.local:1" in lines
    assert f"RUST_LOG=info  # {shop}/locald.toml:5:1" in lines
    assert f"WEB_ONLY=yes  # {shop}/.env.web:2" in lines
    assert f"NODE_ENV=development  # {shop}/locald.toml:10:9" in lines
    assert "INHERITED_ONLY=x  # environment" in lines
    assert "PORT=3000  # injected by locald" in lines
    assert all("  # " in line for line in lines)


def test_env_for_a_procfile_only_service(run_locald, shop):
    result = run_locald("env", "worker", "--explain", cwd=shop, check=True)
    lines = result.stdout.splitlines()
    assert not any(line.startswith("PORT=") for line in lines)
    assert "LOCALD_SERVICE=worker  # injected by locald" in lines


def test_env_unknown_service(run_locald, shop):
    result = run_locald("env", "nope", shop)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr == ("locald: error: no service `nope` in project `shop` "
                             "(services: `web`, `db`, `migrate`, `worker`)\n")


@pytest.mark.parametrize("args", [
    ("config", "a", "b"),
    ("config", "--bogus"),
    ("env",),
    ("env", "web", "dir", "extra"),
    ("env", "web", "--explain=yes"),
])
def test_usage_errors(run_locald, tmp_path, args):
    result = run_locald(*args, cwd=tmp_path)
    assert result.returncode == EXIT_USAGE, result.stderr
    assert result.stderr.startswith("locald: error: ")
    assert f"see `locald help {args[0]}`" in result.stderr


def test_help_for_config_and_env(run_locald):
    assert "usage: locald config [PATH] [--json]" in run_locald("help", "config", check=True).stdout
    assert "usage: locald env SERVICE [--explain] [PATH]" in run_locald("env", "--help",
                                                                       check=True).stdout


def test_no_project_files(run_locald, tmp_path):
    result = run_locald("config", tmp_path)
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr == (f"locald: error: no project in `{tmp_path}`: looked for "
                             "`locald.toml` and `Procfile` there\n")


def test_missing_directory(run_locald, tmp_path):
    result = run_locald("config", tmp_path / "absent")
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.startswith(f"locald: error: opening project directory "
                                    f"`{tmp_path / 'absent'}`")


WEB = '[service.web]\ncommand = "run"\n'

# (id, files, file with the error, "line[:col]", text the message contains)
BAD_INPUTS = [
    ("toml_syntax", {"locald.toml": "[service.web\n"}, "locald.toml", "1:13", "invalid TOML"),
    ("unknown_key", {"locald.toml": WEB + "restrat = \"no\"\n"}, "locald.toml", "3:1",
     "unknown key `restrat` in [service.web] (did you mean `restart`?); allowed: command,"),
    ("wrong_type", {"locald.toml": WEB + "replicas = \"2\"\n"}, "locald.toml", "3:12",
     "`service.web.replicas`: expected an integer, found a string"),
    ("bad_duration", {"locald.toml": WEB + "stop_timeout = \"10 seconds\"\n"}, "locald.toml",
     "3:16", "invalid duration `10 seconds`"),
    ("bad_signal", {"locald.toml": WEB + "stop_signal = \"SIGSTOPP\"\n"}, "locald.toml", "3:15",
     "unknown signal `SIGSTOPP`"),
    ("unknown_dependency", {"locald.toml": WEB + "depends_on = [\"db\"]\n"}, "locald.toml",
     "3:15", "`web` depends on unknown service `db`"),
    ("cycle", {"locald.toml": WEB + "depends_on = [\"api\"]\n[service.api]\ncommand = \"a\"\n"
                                    "depends_on = { web = \"started\" }\n"},
     "locald.toml", "6:16", "dependency cycle: web -> api -> web"),
    ("clash", {"locald.toml": "[service.x]\nimage = \"a\"\nbuild = {}\n"}, "locald.toml", "3:1",
     "`image` and `build` clash in [service.x]"),
    ("container_key_on_host", {"locald.toml": WEB + "read_only = true\n"}, "locald.toml", "3:1",
     "`read_only` in [service.web] needs a container"),
    ("both_spellings", {"locald.toml": WEB + "[services.api]\ncommand = \"a\"\n"}, "locald.toml",
     "3:2", "`[services]` and `[service]` both define services"),
    ("procfile_bad_line", {"Procfile": "web: ok\nthis is not a process\n"}, "Procfile", "2",
     "expected `NAME: command`"),
    ("procfile_duplicate", {"Procfile": "web: a\r\nweb: b\r\n"}, "Procfile", "2",
     "duplicate process `web` (first defined on line 1)"),
    ("dotenv_bad_line", {"Procfile": "web: a\n", ".env": "A=1\nB\n"}, ".env", "2",
     "expected `=` after `B`"),
    ("dotenv_local_unterminated", {"Procfile": "web: a\n", ".env.local": "A=\"open\n"},
     ".env.local", "1", "unterminated double-quoted value for `A`"),
    ("env_file_bad_line", {"locald.toml": WEB + "env_file = \"web.env\"\n",
                           "web.env": "\n\nexport 9=x\n"}, "web.env", "3",
     "found `9=x`"),
    ("env_file_missing", {"locald.toml": WEB + "env_file = \"web.env\"\n"}, "locald.toml",
     "3:12", "env_file of `web`: opening"),
]


@pytest.mark.parametrize("name,files,bad_file,where,text", BAD_INPUTS,
                         ids=[case[0] for case in BAD_INPUTS])
def test_bad_input(run_locald, tmp_path, name, files, bad_file, where, text):
    project = write_project(tmp_path, files)
    for args in (("config", project), ("config", project, "--json"), ("env", "web", project)):
        result = run_locald(*args)
        assert result.returncode == EXIT_BAD_INPUT, (args, result.stderr)
        assert result.stdout == ""
        prefix = f"locald: error: {project}/{bad_file}:{where}: "
        assert result.stderr.startswith(prefix), result.stderr
        assert text in result.stderr
        assert result.stderr.count("\n") == 1, "one line per error"


def test_dotenv_interpolation_sees_the_client_environment(run_locald, tmp_path):
    project = write_project(tmp_path, {
        "Procfile": "web: run\n",
        ".env": "A=${HOME_DIR}/x\nB='${HOME_DIR}'\nC=$(echo no)\nD=\"${MISSING:-dflt}\"\n",
    })
    result = run_locald("config", "--json", project, env={"HOME_DIR": "/h"}, check=True)
    env = json.loads(result.stdout)["services"]["web"]["env"]
    assert env == {"A": "/h/x", "B": "${HOME_DIR}", "C": "$(echo no)", "D": "dflt"}


def test_env_leaves_out_ports_only_the_daemon_assigns(run_locald, tmp_path):
    # Without the daemon the free port `up` assigns is unknown. A PORT from the
    # shell, `.env` or `[env]` is overridden at `up`, so `env` must not show it
    # as if the service got it (the same for LOCALD_PORT_<NAME> of auto ports).
    project = write_project(tmp_path, {
        "locald.toml": ("[env]\nLOCALD_PORT_API = \"1\"\n\n"
                        "[service.web]\ncommand = \"serve\"\n\n"
                        "[service.api]\ncommand = \"api\"\nport = 4567\n\n"
                        "[service.own]\ncommand = \"own\"\nenv = { PORT = \"9999\" }\n"),
        ".env": "PORT=1111\nLOCALD_PORT_WEB=2222\n",
    })
    result = run_locald("env", "web", project, env={"PORT": "3333"}, check=True)
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith(("PORT=", "LOCALD_PORT_WEB=",
                                                           "LOCALD_PORT_OWN="))]
    assert "LOCALD_PORT_API=4567" in lines
    assert ("locald: note: PORT, LOCALD_PORT_WEB, LOCALD_PORT_OWN: assigned by the daemon at "
            "`locald up`") in result.stderr
    # A service that sets PORT itself keeps it; a pinned port is known.
    assert "PORT=9999" in run_locald("env", "own", project, check=True).stdout.splitlines()
    assert "PORT=4567" in run_locald("env", "api", project, check=True).stdout.splitlines()
