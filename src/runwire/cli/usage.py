"""``runwire usage``: a user's LLM-usage records imported, generated, listed or deleted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from runwire.cli.terminal import DataDir, err, out, run_on_store, settings_of
from runwire.cli.users import user_id_of
from runwire.errors import RunwireError

if TYPE_CHECKING:
    from runwire.store.store import Store
    from runwire.store.usage_batches import UsageBatch
    from runwire.usage.workload import ImportResult

__all__ = ["added_line", "batch_line", "usage_app"]

usage_app = typer.Typer(
    help="Import, generate, list or delete a user's LLM-usage records.", no_args_is_help=True
)


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace", newline="") as handle:
        yield from handle


@usage_app.command("import")
def usage_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    user: Annotated[str, typer.Option("--user", help="E-mail of the user who owns the data.")],
    data_dir: DataDir = None,
) -> None:
    """Import a JSONL or CSV file of LLM calls; good lines are kept, bad ones listed.

    Records already stored are not added again, so importing a file twice adds nothing.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from runwire.usage.pricing import PricingTable
    from runwire.usage.workload import Workload

    settings = settings_of(data_dir)
    try:
        kind = Workload.format_of_file(file.name)
    except RunwireError as exc:
        err.print(f"[red]error:[/red] {escape(exc.message)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    total = sum(1 for _ in _lines(file))

    async def work(store: Store) -> Any:
        user_id = await user_id_of(store, user)
        workload = Workload(store.usage, PricingTable.load())
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=err, transient=True
        ) as progress:
            task = progress.add_task("lines", total=total)
            return await workload.import_lines(
                user_id,
                _lines(file),
                kind,
                on_progress=lambda n: progress.update(task, completed=n),
                name=file.name[:200],
            )

    result = run_on_store(settings, work)
    out.print(
        f"imported {result.imported} records from {file} ({added_line(result)})", highlight=False
    )
    if result.rejected_total:
        err.print(f"[yellow]rejected {result.rejected_total} lines:[/yellow]")
        for line, why in result.rejected[:200]:
            err.print(f"  line {line}: {why}", highlight=False)
        if result.rejected_total > 200:
            err.print(f"  … and {result.rejected_total - 200} more")
        raise typer.Exit(1 if result.imported == 0 else 0)


def added_line(result: ImportResult) -> str:
    """What an import added, as ``usage import`` and ``usage sample`` say it."""
    added = f"{result.new} new, {result.already_present} already present"
    return f"{added}; batch {result.batch_id}" if result.batch_id else added


@usage_app.command("sample")
def usage_sample(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user to give the sample.")],
    data_dir: DataDir = None,
) -> None:
    """Give a user a generated, realistic set of LLM calls (30 days, several models), once."""
    from runwire.usage.pricing import PricingTable
    from runwire.usage.workload import Workload

    settings = settings_of(data_dir)

    async def work(store: Store) -> ImportResult:
        user_id = await user_id_of(store, user)
        return await Workload(store.usage, PricingTable.load()).load_sample(user_id)

    result = run_on_store(settings, work)
    out.print(
        f"loaded {result.imported} sample records for {user} ({added_line(result)})",
        highlight=False,
    )


@usage_app.command("batches")
def usage_batches(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user whose data to list.")],
    data_dir: DataDir = None,
) -> None:
    """List a user's import batches, newest first: id, records, source, file, when."""
    from runwire.usage.pricing import PricingTable
    from runwire.usage.workload import Workload

    settings = settings_of(data_dir)

    async def work(store: Store) -> list[UsageBatch]:
        return await Workload(store.usage, PricingTable.load()).batches(
            await user_id_of(store, user)
        )

    batches = run_on_store(settings, work)
    if not batches:
        out.print(f"{user} has no usage batches", highlight=False)
    for batch in batches:
        out.print(batch_line(batch), highlight=False, soft_wrap=True)


def batch_line(batch: UsageBatch) -> str:
    """One batch as ``usage batches`` lists it: id, records, source, when (UTC), file name."""
    from runwire.store.records import iso_from_ms

    when = iso_from_ms(batch.created_at)[:19].replace("T", " ")
    name = f"  {batch.name}" if batch.name else ""
    return f"{batch.id}  {batch.records:>8} records  {batch.source:<7}  {when} UTC{name}"


@usage_app.command("delete")
def usage_delete(
    user: Annotated[str, typer.Option("--user", help="E-mail of the user whose data to delete.")],
    batch: Annotated[
        str | None,
        typer.Option("--batch", help="Delete this batch only (see `runwire usage batches`)."),
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Delete all of the user's usage records.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Delete a user's usage records: one batch (--batch ID) or all of them (--all)."""
    from runwire.usage.pricing import PricingTable
    from runwire.usage.workload import Workload

    if (batch is None) == (not everything):
        err.print("[red]error:[/red] give either --batch ID or --all", highlight=False)
        raise typer.Exit(2)
    settings = settings_of(data_dir)

    async def work(store: Store) -> int:
        user_id = await user_id_of(store, user)
        return await Workload(store.usage, PricingTable.load()).delete(user_id, batch)

    deleted = run_on_store(settings, work)
    what = f"batch {batch}" if batch else "all usage data"
    out.print(f"deleted {deleted} records ({what} of {user})", highlight=False)
