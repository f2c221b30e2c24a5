"""Allowlists, admins, the per-user rate limit and question clipping."""

from __future__ import annotations

from bot.telegram.access import AccessPolicy, SlidingWindowLimiter, Verdict
from bot.telegram.questions import clip_question, question_from_mention

GROUP = -100


def test_empty_allowlists_serve_everyone_everywhere() -> None:
    policy = AccessPolicy()
    assert policy.decide(7, 7, private=True) is Verdict.ALLOW
    assert policy.decide(7, GROUP, private=False) is Verdict.ALLOW
    assert not policy.is_admin(7)
    assert not policy.is_admin(None)


def test_user_allowlist_refuses_in_private_and_ignores_in_groups() -> None:
    policy = AccessPolicy(admin_ids=frozenset({1}), allowed_user_ids=frozenset({2}))
    assert policy.decide(2, 2, private=True) is Verdict.ALLOW
    assert policy.decide(1, 1, private=True) is Verdict.ALLOW  # admins always may ask
    assert policy.decide(3, 3, private=True) is Verdict.REFUSE
    assert policy.decide(3, GROUP, private=False) is Verdict.IGNORE
    assert policy.decide(None, GROUP, private=False) is Verdict.IGNORE
    assert policy.decide(2, GROUP, private=False) is Verdict.ALLOW


def test_chat_allowlist_serves_all_members_of_listed_groups_only() -> None:
    policy = AccessPolicy(
        admin_ids=frozenset({1}),
        allowed_user_ids=frozenset({2}),
        allowed_chat_ids=frozenset({GROUP}),
    )
    assert policy.decide(3, GROUP, private=False) is Verdict.ALLOW
    assert policy.decide(3, -200, private=False) is Verdict.IGNORE
    assert policy.decide(2, -200, private=False) is Verdict.ALLOW
    assert policy.decide(1, -200, private=False) is Verdict.ALLOW
    # Only groups listed, no user list: private chats stay open to everyone.
    groups_only = AccessPolicy(allowed_chat_ids=frozenset({GROUP}))
    assert groups_only.decide(3, 3, private=True) is Verdict.ALLOW
    assert groups_only.decide(3, -200, private=False) is Verdict.IGNORE


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sliding_window_allows_limit_per_window_per_user() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(limit=3, window_s=60, clock=clock)
    assert [limiter.hit(1) for _ in range(3)] == [None, None, None]
    assert limiter.hit(1) == 60  # blocked: the oldest event expires in 60 s
    assert limiter.hit(2) is None  # other users are unaffected
    clock.now += 30
    assert limiter.hit(1) == 30
    clock.now += 30  # the first three events leave the window together
    assert limiter.hit(1) is None
    clock.now += 59
    assert limiter.hit(1) is None  # 2 in window
    assert limiter.hit(1) is None  # 3
    assert limiter.hit(1) == 1  # the event at t+60 expires at t+120


def test_refused_attempts_do_not_extend_the_wait() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(limit=1, window_s=10, clock=clock)
    assert limiter.hit(1) is None
    for _ in range(5):
        clock.now += 1
        assert limiter.hit(1) is not None
    clock.now += 5
    assert limiter.hit(1) is None


def test_limiter_forgets_idle_users() -> None:
    clock = Clock()
    limiter = SlidingWindowLimiter(limit=1, window_s=10, clock=clock)
    for user in range(2000):
        limiter.hit(user)
    clock.now += 11
    limiter.hit(5000)
    assert len(limiter._events) < 1100


def test_zero_limit_disables_rate_limiting() -> None:
    limiter = SlidingWindowLimiter(limit=0)
    assert all(limiter.hit(1) is None for _ in range(100))


def test_clip_question_cuts_at_a_word_boundary() -> None:
    assert clip_question("  short?  ", 100) == ("short?", False)
    text = "word " * 50
    clipped, cut = clip_question(text, 102)
    assert cut
    assert len(clipped) <= 102
    assert clipped.endswith("word")
    long_word = "x" * 300
    assert clip_question(long_word, 100) == ("x" * 100, True)


def test_mention_is_removed_from_the_question() -> None:
    assert question_from_mention("@Brief_Bot what is X?", "brief_bot") == "what is X?"
    assert question_from_mention("what is X, @brief_bot?", "brief_bot") == "what is X, ?"
    assert question_from_mention("no mention", "brief_bot") == "no mention"
