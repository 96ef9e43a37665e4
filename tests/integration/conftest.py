"""Shared fixtures for the integration tests: the real binary, an isolated
LOCALD_HOME per test, and the unprivileged user for rootless runs."""
import os
import pathlib
import pwd
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("LOCALD_SOURCE_DIR", pathlib.Path(__file__).parents[2]))
BINARY = pathlib.Path(os.environ.get("LOCALD_BIN", SOURCE_DIR / "build" / "locald"))


@pytest.fixture
def locald_bin():
    if not BINARY.exists():
        pytest.fail(f"locald binary not built at {BINARY}")
    return BINARY


@pytest.fixture
def locald_home(tmp_path):
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    return home


@pytest.fixture
def run_locald(locald_bin, locald_home):
    """Runs `locald ARGS…` with an isolated LOCALD_HOME; returns CompletedProcess."""

    def run(*args, cwd=None, env=None, timeout=60, input=None, check=False):
        full_env = dict(os.environ)
        full_env["LOCALD_HOME"] = str(locald_home)
        full_env.update(env or {})
        result = subprocess.run([str(locald_bin), *map(str, args)], cwd=cwd, env=full_env,
                                capture_output=True, text=True, timeout=timeout, input=input)
        if check and result.returncode != 0:
            raise AssertionError(f"locald {' '.join(map(str, args))} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    return run


@pytest.fixture
def test_user():
    """The unprivileged user with subuid/subgid ranges (scripts/setup-test-user)."""
    name = os.environ.get("LOCALD_TEST_USER")
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    if not name:
        pytest.skip("LOCALD_TEST_USER not set: run through scripts/test, which creates it")
    return name
