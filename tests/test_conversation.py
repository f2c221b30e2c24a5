"""Follow-up questions and per-conversation history (pure parts)."""

from __future__ import annotations

from bot.followup import condense_offline, is_follow_up
from bot.history import History


def test_follow_up_borrows_the_subject_not_the_attribute() -> None:
    history = ["What was Qingdao's trade total in January to July?"]
    standalone = condense_offline("and exports?", history)
    assert "Qingdao" in standalone
    assert "exports" in standalone
    assert "total" not in standalone


def test_follow_up_without_a_new_attribute_keeps_everything() -> None:
    standalone = condense_offline("and in 2019?", ["What was Qingdao's trade total?"])
    assert "Qingdao" in standalone and "trade" in standalone and "2019" in standalone


def test_a_new_standalone_question_is_left_alone() -> None:
    question = "What did the water policy update say about reservoir storage capacity?"
    assert not is_follow_up(question)
    assert condense_offline(question, ["What was Qingdao's trade total?"]) == question
    assert condense_offline("and exports?", []) == "and exports?"


def test_history_is_bounded_and_expires() -> None:
    now = [0.0]
    history = History(turns=2, ttl_s=10, max_conversations=2, clock=lambda: now[0])
    for q in ("q1", "q2", "q3"):
        history.add("chat", q)
    assert history.get("chat") == ["q2", "q3"]
    now[0] = 11
    assert history.get("chat") == []
    history.add("a", "x")
    history.add("b", "y")
    history.add("c", "z")  # evicts the least recently used conversation
    assert history.get("a") == []
    assert history.get("c") == ["z"]
    history.forget("c")
    assert history.get("c") == []
    assert history.get(None) == []
