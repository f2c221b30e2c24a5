"""The BM25 tokeniser and index: numbers, months, stop words, Chinese, filtering."""

from __future__ import annotations

from bot.lexical import LexicalIndex, stem, tokenize
from ingest.types import IndexedChunk


def chunk(i: int, text: str, title: str = "", date: str | None = None) -> IndexedChunk:
    return IndexedChunk(
        chunk_id=f"c{i}",
        doc_id=f"d{i}",
        text=text,
        path=f"{i}.txt",
        title=title,
        index=0,
        start=0,
        end=len(text),
        date=date,
    )


def test_numbers_stay_whole_and_thousands_separators_fold() -> None:
    terms = tokenize("Trade totaled 341.81 billion yuan in 2020, with 1,234.5 tons.")
    assert "341.81" in terms
    assert "2020" in terms
    assert "1234.5" in terms
    assert "1,234.5" not in terms
    assert "341" not in terms  # the decimal is not split


def test_sentence_final_period_is_not_a_decimal_point() -> None:
    assert tokenize("It grew in 2020.") == tokenize("It grew in 2020")


def test_stop_words_dropped_and_case_folded() -> None:
    terms = tokenize("What was THE total of the Imports?")
    assert "the" not in terms and "what" not in terms and "was" not in terms
    assert stem("total") in terms
    assert stem("imports") in terms


def test_month_abbreviations_match_full_names() -> None:
    assert tokenize("Jan–Jul") == tokenize("January to July")
    assert set(tokenize("Sept. trade")) == set(tokenize("September trade"))


def test_plurals_fold() -> None:
    assert stem("exports") == stem("export")
    assert stem("cities") == stem("city")


def test_chinese_is_segmented_into_words() -> None:
    terms = tokenize("2020年青岛进出口总额为3418.1亿元")
    assert "青岛" in terms
    assert "进出口" in terms
    assert "2020" in terms
    assert "3418.1" in terms
    assert "的" not in tokenize("青岛的进出口")


def test_search_ranks_the_matching_chunk_first() -> None:
    chunks = [
        chunk(0, "Wind capacity reached 12.4 gigawatts at the end of June."),
        chunk(
            1, "Imports and exports in Qingdao totaled 341.81 billion yuan from January to July."
        ),
        chunk(2, "A reservoir upgrade will add 80 million cubic metres of storage by 2027."),
    ]
    index = LexicalIndex.build(chunks)
    results = index.search("Qingdao Jan–Jul imports", k=3)
    assert results[0][0] == 1
    assert all(score > 0 for _, score in results)
    assert [i for i, _ in index.search("341.81", k=3)] == [1]


def test_title_terms_make_a_chunk_findable() -> None:
    chunks = [
        chunk(0, "It rose by four percent.", title="Harbour trade note"),
        chunk(1, "Rain fell."),
    ]
    assert [i for i, _ in LexicalIndex.build(chunks).search("harbour", k=2)] == [0]


def test_allowed_mask_restricts_results() -> None:
    chunks = [chunk(0, "exports grew strongly"), chunk(1, "exports grew slowly")]
    index = LexicalIndex.build(chunks)
    assert {i for i, _ in index.search("exports", k=5)} == {0, 1}
    assert [i for i, _ in index.search("exports", k=5, allowed=[False, True])] == [1]


def test_unknown_terms_empty_query_and_empty_index() -> None:
    index = LexicalIndex.build([chunk(0, "exports grew")])
    assert index.search("zebra", k=5) == []
    assert index.search("the of and", k=5) == []
    assert LexicalIndex.build([]).search("exports", k=5) == []


def test_chinese_query_finds_chinese_passage() -> None:
    chunks = [
        chunk(0, "印控克什米尔地区一座印度教寺庙发生踩踏事故，造成12人死亡。"),
        chunk(1, "2022年卡塔尔世界杯于11月20日开幕。"),
        chunk(2, "Wind capacity reached 12.4 gigawatts."),
    ]
    index = LexicalIndex.build(chunks)
    assert index.search("印控克什米尔地区寺庙踩踏事故死亡人数", k=3)[0][0] == 0
    assert index.search("世界杯开幕时间", k=3)[0][0] == 1
