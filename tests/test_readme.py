"""The README is the product page (issue 19): short, complete, and true to the code.

Its sections are there, every command it lists exists (and every command is listed), its
links lead somewhere, and its transcript is what the real answerer says over the example
briefings (the answer and source lines; the notes may move with the answer stage's scores).
"""

from __future__ import annotations

import re

import click
import pytest

from bot.cli import cli
from bot.settings import Settings, env_names
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def section(title: str) -> str:
    match = re.search(rf"(?ms)^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def test_readme_is_short() -> None:
    assert len(README.splitlines()) <= 250


@pytest.mark.parametrize(
    "title",
    [
        "A real exchange",
        "Quick start",
        "Setting up the Telegram bot",
        "Running it for a team",
        "Settings",
        "Commands",
        "Exit codes and errors",
        "Backup and recovery",
        "Troubleshooting",
        "Measured",
    ],
)
def test_readme_has_the_section(title: str) -> None:
    assert section(title).strip()


def test_quick_start_is_the_two_ci_commands() -> None:
    quick = section("Quick start")
    assert "bash .ci/demo" in quick and "bash .ci/run" in quick
    assert "../shared" in quick  # what the skipped tests' reason refers to


def test_telegram_setup_covers_what_a_new_admin_needs() -> None:
    setup = section("Setting up the Telegram bot")
    for needed in (
        "@BotFather",
        "TELEGRAM_BOT_TOKEN",
        "TELEGRAM_ADMIN_IDS",
        "privacy mode",
        "TELEGRAM_ALLOWED_USER_IDS",
        "TELEGRAM_ALLOWED_CHAT_IDS",
    ):
        assert needed in setup, needed
    team = section("Running it for a team")
    for needed in ("deploy/briefing-bot.service", "DOCUMENTS_DIR", "CHROMA_HOST", "chroma run"):
        assert needed in team, needed


def _commands(group: click.Group, prefix: str = "briefing") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            names += _commands(command, f"{prefix} {name}")
        else:
            names.append(f"{prefix} {name}")
    return names


def test_every_command_is_listed_and_every_listed_one_exists() -> None:
    table = section("Commands")
    for command in _commands(cli):
        parent, _, leaf = command.rpartition(" ")
        listed = command in table or (parent != "briefing" and parent in table and leaf in table)
        assert listed, f"{command} is not in the README's command table"
    mentioned = set(re.findall(r"`(briefing [a-z]+)", table))
    top = {f"briefing {name}" for name in cli.commands}
    assert mentioned <= top, mentioned - top


def test_settings_table_names_real_settings() -> None:
    names = set(env_names())
    table = section("Settings")
    for name in re.findall(r"^\| `([A-Z_]+)`", table, re.MULTILINE):
        assert name in names, name
    assert Settings.model_fields["data_dir"].default_factory is not None
    assert "| `DATA_DIR` | the user data folder |" in table


def test_error_contract_says_what_click_prints_first() -> None:
    errors = section("Exit codes and errors")
    assert "one `Error: …` line" in errors
    assert "Usage: briefing" in errors
    for status in ("`0`", "`1`", "`2`", "`3`"):
        assert f"| {status} |" in errors


def test_relative_links_lead_somewhere() -> None:
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README):
        if not target.startswith(("http://", "https://")):
            assert (ROOT / target).exists(), target


def test_figures_are_one_table_linking_the_history() -> None:
    measured = section("Measured")
    assert "bench/RESULTS.md" in measured
    tables = re.findall(r"(?m)^\| --- \|", measured)
    assert len(tables) == 1
    assert "load average" not in README  # the lab notebook lives in bench/RESULTS.md


def test_transcript_is_a_real_exchange(examples_settings: Settings) -> None:
    """Each quote shown is verbatim in the example it cites (title, date and link as
    ingested), and the real answerer cites that document for the question today. (The
    exact wording follows the answer stage: regenerate the block with `bash .ci/demo`'s
    index and `briefing ask` when it changes.)"""
    from bot.formatting import source_line
    from bot.service import AnswerService
    from bot.types import Hit

    block = re.search(r"(?s)```\n(\$ briefing ask .*?)```", section("A real exchange"))
    assert block
    exchanges = re.split(r"(?m)^\$ briefing ask ", block.group(1))[1:]
    assert len(exchanges) >= 2
    service = AnswerService(examples_settings)
    chunks = service.store.all_chunks()
    for exchange in exchanges:
        question_line, *shown = exchange.strip().splitlines()
        question = question_line.strip().strip('"')
        sources = [ln for ln in shown if re.match(r"\[\d+\] ", ln)]
        quotes = [ln.strip()[1:-1] for ln in shown if ln.startswith('    "')]
        assert sources and len(quotes) == len(sources), exchange
        for source, quote in zip(sources, quotes, strict=True):
            cited = [c for c in chunks if source == source_line(Hit(c, 0.0), int(source[1]))]
            assert cited, f"no example document is shown as {source!r}"
            assert any(quote in c.text for c in cited), quote
        answer = service.answer(question)
        cited_now = {source_line(c.hit, c.n) for c in answer.citations}
        assert cited_now & set(sources), (question, cited_now)
