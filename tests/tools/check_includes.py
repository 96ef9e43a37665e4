#!/usr/bin/env python3
"""Checks the #include graph between modules against docs/architecture.md.

An arrow A -> B means files in src/A may include headers of src/B. Nothing
points back up; a stray include is reported with its file and line.
"""
import pathlib
import re
import sys

ALLOWED = {
    "base": set(),
    "config": {"base"},
    "host": {"base"},
    "oci": {"base"},
    "layers": {"base", "oci"},
    "ns": {"base"},
    "image": {"base", "oci", "layers", "ns"},
    "cnb": {"base", "ns", "layers", "oci", "image"},
    "daemon": {"base", "config", "host", "oci", "layers", "ns", "image", "cnb"},
    "cli": {"base", "config", "host", "oci", "layers", "ns", "image", "cnb", "daemon"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+)/')


def main(src: str) -> int:
    root = pathlib.Path(src)
    problems = []
    for path in sorted(root.rglob("*")):
        if path.suffix not in (".h", ".cc") or not path.is_file():
            continue
        module = path.relative_to(root).parts[0]
        if module not in ALLOWED:
            problems.append(f"{path}: not in a known module ({', '.join(ALLOWED)})")
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            target = match.group(1)
            if target == module or target not in ALLOWED:
                continue
            if target not in ALLOWED[module]:
                problems.append(f"{path}:{number}: `{module}` may not include `{target}/` "
                                f"(allowed: {', '.join(sorted(ALLOWED[module])) or 'nothing'})")
    for problem in problems:
        print(problem)
    if not problems:
        print("include graph matches the architecture")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "src"))
