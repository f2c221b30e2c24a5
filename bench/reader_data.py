"""Question / candidate-sentence data for training and measuring the reader (no torch).

Each loader returns ``QuestionSet``s: one question, its candidate sentences, and which of
them answer it. The splits are fixed here, before any fitting, and every script reads
them from here:

- English: WikiQA train + TrecQA TRAIN fit the pair model; WikiQA dev tunes and
  calibrates; **WikiQA test is held out** (reported, never read for errors).
- Chinese: DRCD dev + test (Traditional, converted to Simplified with OpenCC) fit the
  Chinese features; **CMRC 2018 trial is held out**.

A question is made unanswerable the way users meet it: its answering sentences are cut
from the candidates (the article stays, so the subject is still known).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
TRAIN = SHARED / "train"
CUT_SHARE = 0.25  # questions whose answering sentences are cut, in the Chinese held-out set
SEED = 17


@dataclass
class QuestionSet:
    question: str
    sentences: list[str]
    labels: list[int]
    lang: str = "en"
    context: list[str] = field(default_factory=list)  # the whole article, for Chinese features
    answer: str = ""

    @property
    def answerable(self) -> bool:
        return any(self.labels)

    def cut(self) -> QuestionSet:
        """The same question with its answering sentences removed."""
        keep = [i for i, y in enumerate(self.labels) if not y]
        gone = {s for s, y in zip(self.sentences, self.labels, strict=True) if y}
        return QuestionSet(
            self.question,
            [self.sentences[i] for i in keep],
            [0] * len(keep),
            self.lang,
            [s for s in self.context if s not in gone],
            self.answer,
        )


def wikiqa(split: str) -> list[QuestionSet]:
    """WikiQA as processed by castorini/data: line-aligned questions, sentences, labels."""
    folder = TRAIN / "wikiqa" / split
    lines = {
        name: (folder / f"{name}").read_text(encoding="utf-8").splitlines()
        for name in ("a.toks", "b.toks", "sim.txt", "id.txt")
    }
    by_id: dict[str, QuestionSet] = {}
    for q, s, y, qid in zip(
        lines["a.toks"], lines["b.toks"], lines["sim.txt"], lines["id.txt"], strict=True
    ):
        qs = by_id.setdefault(qid, QuestionSet(_detok(q), [], []))
        qs.sentences.append(_detok(s))
        qs.labels.append(int(y))
    return list(by_id.values())


def trecqa(split: str) -> list[QuestionSet]:
    """TrecQA's XML: the first line of each block is its tokens."""
    text = (TRAIN / "trecqa" / f"{split}.xml").read_text(encoding="utf-8", errors="replace")
    out: list[QuestionSet] = []
    for block in re.findall(r"<QApairs[^>]*>(.*?)</QApairs>", text, re.S):
        q = re.search(r"<question>\s*\n?(.*?)\n", block, re.S)
        if q is None:
            continue
        qs = QuestionSet(_detok(q.group(1).replace("\t", " ")), [], [])
        for tag, body in re.findall(r"<(positive|negative)>\s*\n?(.*?)\n", block, re.S):
            qs.sentences.append(_detok(body.replace("\t", " ")))
            qs.labels.append(1 if tag == "positive" else 0)
        if qs.sentences:
            out.append(qs)
    return out


_DETOK = [
    (re.compile(r" ([.,;:?!%)\]'])"), r"\1"),
    (re.compile(r"([(\[$]) "), r"\1"),
    (re.compile(r" (n't|'s|'re|'ve|'ll|'d|'m)\b"), r"\1"),
    (re.compile(r"-lrb- ?", re.I), "("),
    (re.compile(r" ?-rrb-", re.I), ")"),
    (re.compile(r"`` ?| ?''"), '"'),
]


def _detok(text: str) -> str:
    """Undo the sets' tokenisation so training text looks like document text."""
    text = " ".join(text.split())
    for pattern, repl in _DETOK:
        text = pattern.sub(repl, text)
    return text


_ZH_SENT = re.compile(r"[^。！？!?；;\n]+[。！？!?；;]?[”」』）)]*")


def zh_sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _ZH_SENT.finditer(text) if m.group().strip()]


def _converter() -> object:
    import opencc  # training-only extra: converts DRCD's Traditional Chinese

    return opencc.OpenCC("t2s")


def squad_zh(path: Path, *, convert: bool) -> list[QuestionSet]:
    """SQuAD-format Chinese reading comprehension → sentence selection.

    The candidates are the sentences of the question's paragraph and of the article's
    other paragraphs (retrieval brings neighbouring passages too); a sentence answers when
    it holds the answer span.
    """
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    conv = _converter() if convert else None

    def zh(text: str) -> str:
        return conv.convert(text) if conv is not None else text  # type: ignore[attr-defined]

    out: list[QuestionSet] = []
    for article in data:
        paragraphs = [zh(p["context"]) for p in article["paragraphs"]]
        spans = [zh_sentences(p) for p in paragraphs]
        for pi, para in enumerate(article["paragraphs"]):
            text = paragraphs[pi]
            others = [
                paragraphs[j][s:e] for j in range(len(paragraphs)) if j != pi for s, e in spans[j]
            ]
            for qa in para["qas"]:
                if not qa.get("answers"):
                    continue
                ans = qa["answers"][0]
                start = int(ans["answer_start"])
                end = start + len(ans["text"])
                sentences, labels = [], []
                for s, e in spans[pi]:
                    sentences.append(text[s:e])
                    labels.append(1 if s <= start < e or (s < end <= e) else 0)
                if not any(labels):
                    continue
                rng = random.Random(qa["id"])
                extra = rng.sample(others, min(len(others), 8))
                out.append(
                    QuestionSet(
                        zh(qa["question"]),
                        sentences + extra,
                        labels + [0] * len(extra),
                        "zh",
                        [text[s:e] for s, e in spans[pi]],
                        zh(ans["text"]),
                    )
                )
    return out


def drcd_train() -> list[QuestionSet]:
    return [
        q
        for name in ("DRCD_dev.json", "DRCD_test.json")
        for q in squad_zh(TRAIN / "drcd" / name, convert=True)
    ]


def cmrc_held_out() -> list[QuestionSet]:
    return squad_zh(TRAIN / "cmrc2018" / "cmrc2018_trial.json", convert=False)


def with_cuts(sets: list[QuestionSet], share: float = CUT_SHARE) -> list[QuestionSet]:
    """A fixed ``share`` of the questions (seeded) with their answering sentences cut."""
    rng = random.Random(SEED)
    return [q.cut() if rng.random() < share else q for q in sets]


TATQA_HELD_OUT = 139  # TAT-QA dev contexts 0-138 are bench/eval.py's; 139-277 may be fitted


def tatqa_train() -> list[QuestionSet]:
    """TAT-QA span questions answered in an annual report's text (contexts 139-277): the
    sentences of the context's paragraphs, answering when they hold an answer span."""
    from ingest.sentences import split_sentences

    contexts = json.loads(
        (SHARED / "eval" / "tatqa" / "tatqa_dataset_dev.json").read_text(encoding="utf-8")
    )
    out: list[QuestionSet] = []
    for c in contexts[TATQA_HELD_OUT:]:
        paragraphs = sorted(c["paragraphs"], key=lambda p: p["order"])
        sentences = [s for p in paragraphs for s in split_sentences(p["text"])]
        for q in c["questions"]:
            if q["answer_type"] not in ("span", "multi-span") or q["answer_from"] == "table":
                continue
            answers = q["answer"] if isinstance(q["answer"], list) else [q["answer"]]
            gold = [str(a) for a in answers]
            labels = [1 if any(g in s for g in gold) else 0 for s in sentences]
            if any(labels):
                out.append(QuestionSet(q["question"], list(sentences), labels))
    return out


def english_train() -> list[QuestionSet]:
    """The first stage's data; the second stage adds ``tatqa_train`` (train_reader --init)."""
    return wikiqa("train") + trecqa("TRAIN")


def mean_ap(sets: list[QuestionSet], scores: Sequence[Sequence[float]]) -> float:
    """Mean average precision of ``scores`` (one list per question set) over the
    answerable questions."""
    aps = []
    for q, sc in zip(sets, scores, strict=True):
        if not q.answerable:
            continue
        order = sorted(range(len(sc)), key=lambda i: -sc[i])  # stable, like the sets' order
        hits, total = 0, 0.0
        for rank, i in enumerate(order, 1):
            if q.labels[i]:
                hits += 1
                total += hits / rank
        aps.append(total / hits)
    return sum(aps) / len(aps)


def pairs(sets: list[QuestionSet]) -> Iterator[tuple[str, str, int]]:
    for q in sets:
        for s, y in zip(q.sentences, q.labels, strict=True):
            yield q.question, s, y
