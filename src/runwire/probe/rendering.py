"""A report as a person reads it (a rich table, a summary line, one line per monitor walk) and as
a machine reads it (JSON). Text from the target is shown as text, never as rich markup."""

from __future__ import annotations

import json

from rich.table import Table
from rich.text import Text

from runwire.probe.report import Outcome, Report, Status, StepResult

__all__ = ["as_json", "duration", "summary", "table", "unreachable_line", "walk_line"]

_STYLES = {Status.OK: "green", Status.FAILED: "bold red", Status.SKIPPED: "yellow"}


def duration(seconds: float) -> str:
    """``0.0123`` as ``12 ms``, ``2.5`` as ``2.50 s``."""
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"
    return f"{seconds:.2f} s"


def _detail(step: StepResult) -> Text:
    if step.status is Status.FAILED:
        return Text.assemble(
            ("expected ", "dim"), f"{step.expected}\n", ("got ", "dim"), f"{step.got}"
        )
    return Text(step.detail)


def table(report: Report) -> Table:
    """One row per step: its name, ok/failed/skipped, the time it took and what it saw."""
    grid = Table(title=f"runwire check {report.url}", title_justify="left")
    grid.add_column("step", no_wrap=True)
    grid.add_column("result", no_wrap=True)
    grid.add_column("time", justify="right", no_wrap=True)
    grid.add_column("detail", overflow="fold")
    for step in report.steps:
        grid.add_row(
            step.name,
            Text(step.status.value, style=_STYLES[step.status]),
            duration(step.seconds) if step.ran else "-",
            _detail(step),
        )
    return grid


def summary(report: Report) -> Text:
    """The line under the table: the verdict and the counts."""
    counts = {status: sum(1 for s in report.steps if s.status is status) for status in Status}
    skipped = f", {counts[Status.SKIPPED]} skipped" if counts[Status.SKIPPED] else ""
    took = f" in {duration(report.seconds)}"
    if report.outcome is Outcome.PASSED:
        return Text(f"passed: {counts[Status.OK]} steps ok{skipped}{took}", style="green")
    failed = [s.name for s in report.steps if s.status is Status.FAILED]
    return Text(
        f"failed: {', '.join(failed)} ({counts[Status.OK]} ok{skipped}){took}", style="bold red"
    )


def unreachable_line(report: Report) -> str:
    """The one line printed when the target cannot be checked at all."""
    return f"runwire check: {report.unreachable}"


def walk_line(report: Report) -> str:
    """One line per walk in monitor mode: when, the verdict, and what failed."""
    when = report.started_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    head = f"{when} {report.outcome.label} in {duration(report.seconds)}"
    if report.unreachable is not None:
        return f"{head}: {report.unreachable}"
    failed = [s for s in report.steps if s.status is Status.FAILED]
    if not failed:
        return head
    shown = "; ".join(f"{s.name}: expected {s.expected}, got {s.got}" for s in failed)
    return f"{head}: {shown}"


def as_json(report: Report, *, indent: int | None = 2) -> str:
    """The report as JSON (docs/operating.md gives the shape)."""
    return json.dumps(report.to_json(), indent=indent, ensure_ascii=False)
