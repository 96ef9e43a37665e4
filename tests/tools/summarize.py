#!/usr/bin/env python3
"""Adds up JUnit XML reports (ctest, GoogleTest, pytest) into one closing line.

Skipped tests are listed with their reason, loudly: a skip is a thing not
checked on this machine, and the count says how many.
"""
import sys
import xml.etree.ElementTree as ET

passed = failed = skipped = 0
skips = []
for path in sys.argv[1:]:
    try:
        tree = ET.parse(path)
    except (ET.ParseError, FileNotFoundError):
        print(f"summary: no report in {path}")
        failed += 1
        continue
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '')}.{case.get('name')}".strip(".")
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.find("skipped") is not None or case.get("result") == "skipped" \
                or case.get("status") == "notrun":
            skipped += 1
            node = case.find("skipped")
            reason = (node.get("message") or node.text or "") if node is not None else ""
            skips.append(f"{name}: {reason.strip()[:200]}")
        else:
            passed += 1

for skip in skips:
    print(f"SKIPPED {skip}")
print(f"{passed} passed, {failed} failed, {skipped} skipped")
sys.exit(1 if failed else 0)
