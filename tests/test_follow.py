"""Followed topics: the SQLite store, and matching topics against a run's new documents."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.follow import find_matches
from bot.settings import Settings
from bot.subscriptions import MAX_PER_CHAT, SubscriptionError, SubscriptionStore
from ingest.embeddings import LocalEmbeddings
from ingest.manifest import Manifest
from ingest.store import open_index

QINGDAO = "qingdao-trade-2020-09-04.md"
SHANGHAI = "shanghai-economy-2022-03-16.md"


def test_store_adds_lists_removes_and_persists(tmp_path: Path) -> None:
    path = tmp_path / "subscriptions.sqlite"
    store = SubscriptionStore(path)
    store.add(10, "  Qingdao   trade ", created_by=1)
    store.add(10, "port dredging")
    store.add(-20, "Qingdao trade")  # another chat may follow the same topic
    with pytest.raises(SubscriptionError, match="already"):
        store.add(10, "Qingdao trade")
    with pytest.raises(SubscriptionError, match="Say what to follow"):
        store.add(10, "   ")
    assert [s.topic for s in store.of_chat(10)] == ["Qingdao trade", "port dredging"]
    store.close()

    reopened = SubscriptionStore(path)  # a restart
    assert [s.topic for s in reopened.of_chat(10)] == ["Qingdao trade", "port dredging"]
    assert reopened.remove(10, 3) is None
    removed = reopened.remove(10, 1)
    assert removed is not None and removed.topic == "Qingdao trade"
    assert [s.topic for s in reopened.of_chat(10)] == ["port dredging"]
    assert [(s.chat_id, s.topic) for s in reopened.all()] == [
        (-20, "Qingdao trade"),
        (10, "port dredging"),
    ]
    assert reopened.remove_chat(-20) == 1
    for i in range(MAX_PER_CHAT - 1):
        reopened.add(10, f"topic {i}")
    with pytest.raises(SubscriptionError, match="unfollow"):
        reopened.add(10, "one too many")

    # Which documents are new: before the first mark nothing is (the corpus is history).
    def told(current: list[str], store: SubscriptionStore = reopened) -> list[str]:
        new = store.unseen(current)
        store.mark_seen(current)
        return new

    assert not reopened.ledger_started()
    assert told(["a", "b"]) == []
    assert reopened.ledger_started()
    assert told(["a", "b", "c"]) == ["c"]  # added (or updated: new hash)
    assert told(["b", "c"]) == []  # removed or renamed: nothing new
    assert told(["b", "c", "a"]) == ["a"]  # dropped again later: new again
    assert reopened.unseen(["b", "c", "a", "e"]) == ["e"]  # not marked (digest not sent)...
    assert reopened.unseen(["b", "c", "a", "e"]) == ["e"]  # ...so still new next time
    reopened.set_meta("k", "1")
    reopened.close()
    again = SubscriptionStore(path)
    assert told(["b", "c", "a", "d"], again) == ["d"]  # restart
    assert again.meta("k") == "1" and again.meta("missing") is None


def doc_id_of(settings: Settings, path: str) -> str:
    manifest = Manifest(settings.manifest_path)
    try:
        (doc,) = [d for d in manifest.docs() if d.path == path]
    finally:
        manifest.close()
    return doc.doc_id


def test_a_topic_matches_only_the_new_documents_that_answer_it(
    examples_settings: Settings, model_dir: Path, tmp_path: Path
) -> None:
    embeddings = LocalEmbeddings(model_dir)
    store = open_index(examples_settings, embeddings)
    subs = SubscriptionStore(tmp_path / "subscriptions.sqlite")
    subs.add(1, "qingdao trade")
    subs.add(2, "Qingdao exports")
    subs.add(2, "qingdao trade")
    subs.add(3, "reservoir water supply")

    def matches(*paths: str) -> dict[int, list[tuple[str, str, list[str]]]]:
        """The matches if ``paths`` were the new documents (the index holds them all)."""
        found = find_matches(
            [doc_id_of(examples_settings, p) for p in paths],
            subs.all(),
            store=store,
            embeddings=embeddings,
            manifest_path=examples_settings.manifest_path,
            min_evidence=examples_settings.refusal_threshold,
        )
        return {
            chat: [(m.citation.hit.path, m.citation.quote, m.topics) for m in docs]
            for chat, docs in found.items()
        }

    found = matches(QINGDAO)
    assert set(found) == {1, 2}  # chat 3 follows something else
    ((path, quote, topics),) = found[1]
    assert (path, topics) == (QINGDAO, ["qingdao trade"])
    assert any(quote in c.text for c in store.all_chunks() if c.path == QINGDAO)  # verbatim
    assert "Qingdao" in quote
    assert found[2][0][2] == ["Qingdao exports", "qingdao trade"]  # one entry, two topics

    assert matches(SHANGHAI) == {}  # an unrelated release: nothing
    assert matches() == {}
