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


def test_help_flag_after_arguments_is_not_swallowed(run_locald):
    # Only a leading --help asks for help; a later one is the command's own
    # argument (for `container run IMG cmd --help` it belongs to the payload).
    assert run_locald("config", "--help", check=True).stdout.startswith("usage: locald config")
    result = run_locald("config", "--explain", "--help")
    assert result.returncode == 2
    assert "unknown option" in result.stderr
