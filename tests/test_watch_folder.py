"""The folder always heard (issue 18, cases 2 and 7): a watched folder replaced under its
name is watched again; slow writers are read once whole; a half-written PDF is retried
quietly rather than reported as a failure."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from ingest.embeddings import LocalEmbeddings
from ingest.types import Outcome
from ingest.watch import FolderMissing, Settling, watch
from tests.test_loaders import _make_pdf
from tests.test_watch import QUIET_S, SETTLE_S, folder, wait_for, watching


@pytest.fixture(scope="module")
def embeddings(model_dir: Path) -> LocalEmbeddings:
    return LocalEmbeddings(model_dir)


def note(title: str, fact: str) -> str:
    return f"# {title}\n\n{fact} The harbour office published the figures on Monday.\n"


@pytest.mark.parametrize("how", ["recreated", "swapped"])
def test_a_replaced_folder_is_watched_again(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, how: str
) -> None:
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    (docs / "a.md").write_text(note("Berth report", "Berth 4 handled 1,200 containers."))
    backup = tmp_path / "backup"
    with watching(settings, embeddings) as w:
        shutil.copytree(docs, backup)
        if how == "recreated":  # rm -rf docs && mkdir docs && cp -a backup/. docs/
            shutil.rmtree(docs)
            docs.mkdir()
            shutil.copytree(backup, docs, dirs_exist_ok=True)
        else:  # mv docs docs.old; mv docs.new docs
            shutil.copytree(backup, tmp_path / "docs.new")
            os.rename(docs, tmp_path / "docs.old")
            os.rename(tmp_path / "docs.new", docs)
        time.sleep(QUIET_S + SETTLE_S)
        (docs / "b.md").write_text(note("Rail report", "The rail line opened on 3 May 2021."))
        wait_for(lambda: Outcome.ADDED in w.outcomes("b.md"), timeout=20)
        assert "rail line opened" in w.texts()
        told = [o for o in w.outcomes("a.md") if o is not Outcome.UNCHANGED]
        assert told == [Outcome.ADDED]  # the same content: not news again


def test_a_folder_gone_for_good_is_an_error_the_caller_hears(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.watch

    monkeypatch.setattr(ingest.watch, "FOLDER_GONE_S", 0.5)
    settings = folder(tmp_path, model_dir)
    errors: list[BaseException] = []
    ready = threading.Event()

    def run() -> None:
        try:
            watch(settings, lambda r: None, quiet_s=QUIET_S, settle_s=SETTLE_S,
                  embeddings=embeddings, on_ready=ready.set)  # fmt: skip
        except FolderMissing as err:
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30)
    shutil.rmtree(settings.documents_dir)
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert errors and str(settings.documents_dir) in str(errors[0])


def test_a_writer_pausing_longer_than_the_settle_time_is_read_at_most_twice(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    """Before: one run per pause (a .md written with 1.7 s pauses was ingested 3 times)."""
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    pause = SETTLE_S + QUIET_S + 0.3  # longer than the watcher waits by default
    with watching(settings, embeddings) as w, (docs / "slow.md").open("w") as out:
        out.write("# Dredging report\n\n")
        for i in range(5):
            out.write(f"Phase {i} of the harbour dredging was completed on schedule.\n\n")
            out.flush()
            time.sleep(pause)
        out.close()
        wait_for(lambda: "Phase 4 of" in w.texts(), timeout=30)
        time.sleep(2 * pause)
        assert w.outcomes("slow.md") in ([Outcome.ADDED], [Outcome.ADDED, Outcome.UPDATED])


def test_a_half_written_pdf_is_retried_quietly(
    tmp_path: Path, model_dir: Path, embeddings: LocalEmbeddings
) -> None:
    """Before: each run read the PDF half-written and reported it corrupt."""
    settings = folder(tmp_path, model_dir)
    docs = settings.documents_dir
    data = _make_pdf([["Harbour annual report", "Berth 4 handled 1,200 containers in May."]])
    with watching(settings, embeddings) as w, (docs / "annual.pdf").open("wb") as out:
        out.write(data[: len(data) // 2])
        out.flush()
        time.sleep(QUIET_S + SETTLE_S + 1.0)  # the watcher reads it half-written
        out.write(data[len(data) // 2 :])
        out.close()
        wait_for(lambda: Outcome.ADDED in w.outcomes("annual.pdf"), timeout=30)
        assert Outcome.FAILED not in w.outcomes("annual.pdf")
        assert "1,200 containers" in w.texts()


def test_settling_learns_a_writers_pause(tmp_path: Path) -> None:
    now = [0.0]
    settling = Settling(settle_s=1.0, clock=lambda: now[0])
    path = tmp_path / "f.md"
    path.write_text("a")
    settling.add({str(path)})
    assert settling.still_growing() == [str(path)]  # first look
    now[0] = 1.1
    assert settling.still_growing() == []  # held 1.1 s > 1.0 s: read it
    settling.clear()
    now[0] = 2.8  # it grows again 2.8 s after its last change: the writer had paused
    path.write_text("ab")
    settling.add({str(path)})
    assert settling.required_s == pytest.approx(1.5 * 2.8)  # waits longer from now on
    assert settling.still_growing() == [str(path)]
    now[0] = 2.8 + 2.0
    assert settling.still_growing() == [str(path)]  # 2.0 s still is not enough now
    now[0] = 2.8 + 4.3
    assert settling.still_growing() == []
