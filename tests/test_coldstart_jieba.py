"""Chinese words cut with jieba's dictionary loaded by the pieces a text needs.

A one-shot ask that meets a Chinese passage used to load jieba's whole prefix dictionary
(and setuptools' ``pkg_resources``) first; now it reads the groups of words its text can
look up from a word file kept in the data folder (``ingest.chinese_words``). These tests
check that the words are jieba's own, that the file is made, kept and rebuilt when it is
absent, corrupt or from another dictionary, and that an English question over English
documents does not import jieba at all. Speed is measured by bench/scale_bench.py.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ingest import chinese_words
from ingest.chinese_words import ChineseWords, build_file, read_file, source_fingerprint
from tests.conftest import EXAMPLES, make_settings
from tests.test_coldstart import ask_in_fresh_process

if TYPE_CHECKING:
    from bot.settings import Settings

_RUN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


@pytest.fixture(scope="module")
def whole_jieba() -> object:
    """jieba's default tokenizer with its whole dictionary: what the words must equal."""
    import jieba

    jieba.dt.initialize()
    return jieba


@pytest.fixture(scope="module")
def chinese_runs(shared_dir: Path) -> list[str]:
    """Runs of Chinese characters from 150 RGB zh passages and questions (real news text)."""
    texts: list[str] = []
    for line in (
        (shared_dir / "eval/rgb/zh_refine.json").read_text(encoding="utf-8").splitlines()[:30]
    ):
        row = json.loads(line)
        texts += [row["query"], *row["positive"][:2], *row["negative"][:2]]
    return [m.group() for text in texts for m in _RUN.finditer(text)]


@pytest.fixture
def own_temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temp dir of the test's own: no word file left there by another process is found."""
    temp = tmp_path / "temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    return temp


def test_words_are_jiebas_with_its_whole_dictionary(
    tmp_path: Path, own_temp_dir: Path, whole_jieba: object, chinese_runs: list[str]
) -> None:
    import jieba

    ChineseWords(tmp_path / "cache")  # absent: jieba whole, and the file made
    words = ChineseWords(tmp_path / "cache")
    assert words.file is not None, "the second one reads the file"
    ours = [words.cut_for_search(run) for run in chinese_runs]
    assert ours == [jieba.lcut_for_search(run) for run in chinese_runs]
    # Only the groups these texts needed were read, not the whole dictionary.
    assert 0 < len(words.tokenizer.FREQ) < len(jieba.dt.FREQ) / 2
    assert sum(map(len, chinese_runs)) < chinese_words.WHOLE_AFTER


def test_past_a_documents_worth_the_whole_dictionary_is_read(
    tmp_path: Path, own_temp_dir: Path, whole_jieba: object, chinese_runs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    import jieba

    monkeypatch.setattr(chinese_words, "WHOLE_AFTER", 2_000)
    ChineseWords(tmp_path)
    words = ChineseWords(tmp_path)
    ours = [words.cut_for_search(run) for run in chinese_runs]
    assert words.file is None  # filled completely
    assert words.tokenizer.FREQ == jieba.dt.FREQ
    assert ours == [jieba.lcut_for_search(run) for run in chinese_runs]


def test_file_round_trip_and_group_lookups() -> None:
    freq = {"克": 5, "克什": 0, "克什米尔": 7, "地": 3, "地区": 9, "米": 2}
    data = build_file(freq, 26, "test-source")
    file = read_file(data, "test-source")
    assert file.total == 26
    assert file.entries(chinese_words.codes_of("克什")) == {"克": 5, "克什": 0, "克什米尔": 7}
    assert file.entries(chinese_words.codes_of("区")) == {}  # no word starts with it
    assert file.entries(chinese_words.codes_of("米地区")) == {"米": 2, "地": 3, "地区": 9}
    with pytest.raises(ValueError, match="another dictionary"):
        read_file(data, "another-dictionary")
    with pytest.raises(ValueError, match="newline"):
        build_file({"a\nb": 1}, 1, "x")


@pytest.mark.parametrize("damage", ["flip", "truncate", "other-source", "garbage"])
def test_corrupt_or_foreign_file_is_rebuilt(
    tmp_path: Path, own_temp_dir: Path, whole_jieba: object, damage: str
) -> None:
    import jieba

    path = ChineseWords(tmp_path).path
    good = path.read_bytes()
    if damage == "flip":
        bad = bytearray(good)
        bad[-1000] ^= 0xFF  # one word's byte: only the checksum sees it
        path.write_bytes(bytes(bad))
    elif damage == "truncate":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "other-source":
        path.write_bytes(build_file({"中": 1}, 1, "another-jieba"))
    else:
        path.write_bytes(b"not a word file")
    (own_temp_dir / path.name).unlink()  # nor a good copy to fall back on
    rebuilt = ChineseWords(tmp_path)
    assert rebuilt.file is None  # this process cuts with jieba whole...
    assert path.read_bytes() == good  # ...and the file is whole again for the next
    text = "克什米尔地区的经济增长较快"
    assert rebuilt.cut_for_search(text) == jieba.lcut_for_search(text)
    assert ChineseWords(tmp_path).cut_for_search(text) == jieba.lcut_for_search(text)


def test_a_new_data_folder_copies_the_temp_dirs_file(
    tmp_path: Path, own_temp_dir: Path, whole_jieba: object
) -> None:
    first = ChineseWords(tmp_path / "a")
    assert (own_temp_dir / first.path.name).is_file()  # built into both
    second = ChineseWords(tmp_path / "b")
    assert second.file is not None  # not built again
    assert second.path.read_bytes() == first.path.read_bytes()


def test_fingerprint_names_jiebas_dictionary(whole_jieba: object) -> None:
    import jieba

    assert source_fingerprint(jieba).startswith(f"{jieba.__version__}-")


# -- a one-shot ask in a fresh process -------------------------------------------------


def _ask(settings: Settings, question: str) -> tuple[dict[str, object], set[str]]:
    """The answer and the modules a fresh `briefing ask` loaded (a temp dir of its own)."""
    stdout, loaded = ask_in_fresh_process(
        settings, "--json", question, temp_dir=str(settings.data_dir / "tmp")
    )
    return json.loads(stdout), loaded


@pytest.fixture(scope="module")
def english_settings(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Settings:
    """An index of the English example briefings only."""
    from ingest.pipeline import run_ingest

    root = tmp_path_factory.mktemp("english-index")
    docs = root / "docs"
    docs.mkdir()
    for path in EXAMPLES.iterdir():
        if not _RUN.search(path.read_text(encoding="utf-8")):
            shutil.copy(path, docs)
    assert len(list(docs.iterdir())) >= 2
    settings = make_settings(root / "data", model_dir, documents_dir=docs)
    (settings.data_dir / "tmp").mkdir(parents=True)
    assert not run_ingest(settings).failures
    return settings


def test_english_question_over_english_documents_does_not_import_jieba(
    english_settings: Settings,
) -> None:
    answer, loaded = _ask(english_settings, "What did Qingdao's imports and exports total?")
    assert answer["citations"], answer  # it really answered from the index
    assert {"bot.service", "ingest.terms"} <= loaded
    assert "jieba" not in loaded and "ingest.chinese_words" in loaded


def test_chinese_question_cuts_with_the_data_folders_word_file(
    examples_settings: Settings, tmp_path: Path
) -> None:
    # A copy of the examples' index, so the word file made here is this test's own.
    data = tmp_path / "data"
    shutil.copytree(examples_settings.data_dir, data, ignore=shutil.ignore_patterns("cache"))
    (data / "tmp").mkdir()
    settings = examples_settings.model_copy(update={"data_dir": data})
    first, loaded = _ask(settings, "What was Chongqing's gross domestic product in 2022, in 亿元?")
    assert "jieba" in loaded and "pkg_resources" not in loaded
    files = list((data / "cache").glob("jieba-words-*.bin"))
    assert len(files) == 1, "made in the data folder"
    second, _ = _ask(settings, "What was Chongqing's gross domestic product in 2022, in 亿元?")
    assert first["citations"], first  # answered from the Chongqing briefing
    assert second["answer"] == first["answer"] and second["citations"] == first["citations"]
