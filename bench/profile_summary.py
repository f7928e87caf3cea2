"""Read a py-spy profile of collapsed stacks (``--format raw``, as ``RUNWIRE_BENCH_PROFILE``
makes them) as tables: where the samples were (self), what they were under (inclusive), by
line, or what one function's time went to (its callees, a few frames deep).

The server's profile has no item above a few percent (docs/benchmarks.md, "Hot path, session
13"): these views group it by what a run does rather than by function.

Usage: python bench/profile_summary.py PROFILE [--view self|inclusive|lines|module]
       [--under FUNCTION [--depth 2]] [--top 40]
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

_FRAME = re.compile(r"(?P<function>.*) \((?P<file>.*):(?P<line>\d+)\)$")


def _short(path: str) -> str:
    return re.sub(r".*/(site-packages|src)/", "", path)


def frame_name(frame: str, *, line: bool = False) -> str:
    """``function (file)``, or with its line, of one frame of a collapsed stack."""
    found = _FRAME.match(frame)
    if found is None:
        return frame
    where = _short(found["file"]) + (f":{found['line']}" if line else "")
    return f"{found['function']} ({where})"


def stacks(path: Path) -> Iterator[tuple[list[str], int]]:
    """Each stack of the profile (outermost frame first) and its sample count."""
    for row in path.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if stack:
            yield stack.split(";"), int(count)


def summary(path: Path, view: str, under: str | None, depth: int) -> tuple[Counter[str], int]:
    """The samples of ``view`` by name, and the total (all of the profile's samples)."""
    counts: Counter[str] = Counter()
    total = 0
    for frames, n in stacks(path):
        total += n
        if under is not None:
            names = [frame_name(f) for f in frames]
            at = next((i for i, name in enumerate(names) if name.startswith(under)), None)
            if at is not None:
                below = names[at + 1 : at + 1 + depth]
                counts[" > ".join(below) if below else "<self>"] += n
        elif view == "self":
            counts[frame_name(frames[-1])] += n
        elif view == "lines":
            counts[frame_name(frames[-1], line=True)] += n
        elif view == "module":
            found = _FRAME.match(frames[-1])
            counts[_short(found["file"]).rsplit("/", 1)[0] if found else frames[-1]] += n
        else:  # inclusive: each function once per stack, however deep it recurses
            for name in dict.fromkeys(frame_name(f) for f in frames):
                counts[name] += n
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--view", choices=["self", "inclusive", "lines", "module"], default="self")
    parser.add_argument("--under", help="the callees of the function whose name starts so")
    parser.add_argument("--depth", type=int, default=1)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    counts, total = summary(args.profile, args.view, args.under, args.depth)
    print(f"{total} samples")
    for name, n in counts.most_common(args.top):
        print(f"{100 * n / total:6.1f}%  {name}")


if __name__ == "__main__":
    main()
