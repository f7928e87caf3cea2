"""The mutation score of the pure core (`make mutate`), against its list of equivalent mutants.

Reads mutmut's totals (mutants/mutmut-cicd-stats.json) and, on stdin, `mutmut results` (the
mutants not killed). A surviving mutant listed in equivalent.txt changes no behaviour (the file
says why of each); any other survivor is an edge the unit tests do not pin down. Exits 1 when the
score, killed (timeouts included) over all mutants, is under the floor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

FLOOR = 90.0
HERE = Path(__file__).parent


def equivalent() -> set[str]:
    names = set()
    for line in (HERE / "equivalent.txt").read_text(encoding="utf-8").splitlines():
        name = line.split("#", 1)[0].strip()
        if name:
            names.add(name)
    return names


def main() -> int:
    stats = json.loads(Path("mutants/mutmut-cicd-stats.json").read_text(encoding="utf-8"))
    survivors = {}
    for line in sys.stdin:
        name, _, status = line.strip().rpartition(": ")
        if name and status != "timeout":
            survivors[name] = status
    listed = equivalent()
    caught = stats["killed"] + stats["timeout"]
    score = 100.0 * caught / stats["total"]
    unexplained = sorted(set(survivors) - listed)
    print(f"mutants {stats['total']}, killed {caught} ({score:.1f}%), not killed {len(survivors)}")
    print(
        f"  listed as equivalent in tests/mutation/equivalent.txt: {len(survivors.keys() & listed)}"
    )
    for name in unexplained:
        print(f"  not killed, not listed: {name} ({survivors[name]}): `mutmut show {name}`")
    for name in sorted(listed - set(survivors)):
        print(f"  listed but killed or gone (renumbered?): {name}")
    if score < FLOOR:
        print(f"the score is under {FLOOR}%")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
