"""The binary's surface every later command relies on."""


def test_version(run_locald):
    result = run_locald("--version", check=True)
    assert result.stdout.startswith("locald ")


def test_help_lists_commands(run_locald):
    result = run_locald("--help", check=True)
    assert "commands:" in result.stdout
    assert "help" in result.stdout


def test_unknown_command_is_usage_error(run_locald):
    result = run_locald("frobnicate")
    assert result.returncode == 2
    assert result.stderr.startswith("locald: error: unknown command `frobnicate`")
