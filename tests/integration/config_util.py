"""Helpers for the config CLI tests: write a throwaway project directory."""
import pathlib


def write_project(root: pathlib.Path, files: dict) -> pathlib.Path:
    """Writes {relative name: text} under root/project and returns that dir."""
    project = root / "project"
    project.mkdir(exist_ok=True)
    for name, text in files.items():
        path = project / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
    return project
