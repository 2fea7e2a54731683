"""Print the slowest tests of every pytest run in this CI run (their JUnit XML files), slowest first.

Usage: python .ci/slowest.py N FILE...  (files that do not exist are skipped: an environment that failed early)
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path


def cases(path: Path) -> list[tuple[float, str, str]]:
    """(seconds, environment, test id) of each test case in one JUnit file."""
    environment = path.parent.name
    found = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        found.append((float(case.get("time") or 0.0), environment, name))
    return found


def main(argv: list[str]) -> int:
    count, files = int(argv[0]), [Path(a) for a in argv[1:]]
    found = sorted((c for f in files if f.is_file() for c in cases(f)), reverse=True)
    print(f"\nThe {min(count, len(found))} slowest of {len(found)} tests in this CI run (setup, call and teardown):")
    for seconds, environment, name in found[:count]:
        print(f"{seconds:8.1f} s  {environment:8s}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
