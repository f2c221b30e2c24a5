"""The reader: how likely each candidate sentence is to answer the question.

Two signals, one fitted logistic layer per language on top (``models/reader.json``):

- **a pair model** (English): all-MiniLM-L6-v2 fine-tuned as a cross-encoder on
  question / answer-sentence data (``bench/train_reader.py``), run with onnxruntime as
  int8 on the few best candidates only (``models/reader-pair.int8.onnx``). It reads the
  question and the sentence together, so it can tell "answers this" from "on topic" and
  matches other words for the same thing;
- **overlap features** that work in any language: the question's terms (words; for
  Chinese, characters and character pairs, since the pair model's vocabulary has few
  Chinese characters) found in the sentence and its neighbours, weighted by how rare they
  are among the candidates; the longest run shared with the question; the gap to the best
  candidate; whether the sentence holds the kind of answer asked for; what it says beyond
  the question.

``bench/fit_reader.py`` fits the layer and calibrates each language's refusal threshold
on development splits; the held-out splits it reports on are never fitted on.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bot.aliases import canonical
from bot.answer_types import AnswerType, answer_type, has_answer_type
from ingest.terms import tokenize
from ingest.vocabulary import CJK_CHARS, CJK_RE

MODELS = Path(__file__).with_name("models")
READER_JSON = MODELS / "reader.json"
PAIR_ONNX = MODELS / "reader-pair.int8.onnx"
# all-MiniLM-L6-v2's word-piece tokenizer, which the pair model was fine-tuned with
PAIR_TOKENIZER = MODELS / "reader-tokenizer.json"
PAIR_MAX_TOKENS = 96  # question + sentence, as trained
PAIR_TOP = 5  # candidates the pair model reads, best by the cheap features first (its cost)

Array = npt.NDArray[np.float64]

FEATURES = (
    "cover",  # rare-weighted share of the question's terms in the sentence
    "cover_pairs",  # the same for adjacent term pairs (Chinese: character pairs)
    "context_cover",  # over the sentence, its neighbours and the passage title
    "cover_gap",  # best candidate's cover minus this one's
    "run",  # longest run of the question found in the sentence, share of the question
    "typed",  # holds the kind of answer asked for (an amount for "how much", ...)
    "novelty",  # min(1, new terms / 4): says something beyond the question
    "pair",  # the pair model's logit (0 where it was not run)
    "pair_gap",  # best pair logit minus this one's
    "similarity",  # cosine(question, sentence) from the embedding model, when known
    "slot_left",  # the question's words just before its asking word, found in the sentence
    "slot_right",  # ... and just after it ("生命数耗完即算为什么" → "即算为" + answer)
    "in_order",  # longest common subsequence with the question, share of the question
)

# Words that ask rather than say: never evidence that a sentence answers.
_ASKING_ZH = re.compile(
    r"什么|哪[里个些一位儿年天国]?|谁|多少|几[个年月天次]?|何[时地人种]?|怎么|怎样|如何|为什么|是否|吗|呢"
)
_ASKING_EN = re.compile(
    r"\b(?:what|which|who|whom|whose|when|where|why|how(?: much| many| long| old)?)\b", re.I
)
_STOP_ZH = frozenset("的了是在和与及为之其这那有也就都而于以或等被把将对从由到中上下个一")
_CJK_RUN = re.compile(f"[{CJK_CHARS}]+")


def language(text: str) -> str:
    return "zh" if CJK_RE.search(text) else "en"


def _zh_terms(text: str) -> tuple[list[str], list[str]]:
    """Characters and character pairs of the Chinese runs (pairs holding a function
    character such as 的 or 是 say little), plus the other words."""
    text = _ASKING_ZH.sub(" ", text)
    chars: list[str] = []
    pairs: list[str] = []
    for run in _CJK_RUN.findall(text):
        chars.extend(c for c in run if c not in _STOP_ZH)
        pairs.extend(
            run[i : i + 2]
            for i in range(len(run) - 1)
            if run[i] not in _STOP_ZH and run[i + 1] not in _STOP_ZH
        )
    latin = tokenize(_CJK_RUN.sub(" ", text))
    return chars + latin, pairs + latin


def _en_terms(text: str) -> tuple[list[str], list[str]]:
    words = tokenize(text)
    return words, [f"{a} {b}" for a, b in itertools.pairwise(words)]


def terms(text: str, lang: str) -> tuple[list[str], list[str]]:
    """(single terms, adjacent pairs) of ``text`` as the reader counts them; other names of a
    measure count as the same term ("GDP", "gross domestic product", 地区生产总值)."""
    text = canonical(text)
    return _zh_terms(text) if lang == "zh" else _en_terms(text)


def _shared_runs(question: Sequence[str], sentence: Sequence[str]) -> tuple[int, int]:
    """(longest common contiguous run, longest common subsequence) of two short unit
    lists, by dynamic programming."""
    best = 0
    run_prev = [0] * (len(sentence) + 1)
    seq_prev = [0] * (len(sentence) + 1)
    for a in question:
        run = [0] * (len(sentence) + 1)
        seq = [0] * (len(sentence) + 1)
        for j, b in enumerate(sentence, 1):
            if a == b:
                run[j] = run_prev[j - 1] + 1
                best = max(best, run[j])
                seq[j] = seq_prev[j - 1] + 1
            else:
                seq[j] = max(seq_prev[j], seq[j - 1])
        run_prev, seq_prev = run, seq
    return best, seq_prev[-1]


SLOT = 4  # units of the question on each side of its asking word


def _slots(question: str, lang: str) -> tuple[list[str], list[str]]:
    """The question's units just before and just after its asking word (Chinese: content
    characters; otherwise lower-cased words)."""
    asking = (_ASKING_ZH if lang == "zh" else _ASKING_EN).search(question)
    if asking is None:
        return [], []
    before, after = question[: asking.start()], question[asking.end() :]
    if lang == "zh":
        keep = [c for c in before if (CJK_RE.match(c) or c.isalnum()) and c not in _STOP_ZH]
        rest = [c for c in after if (CJK_RE.match(c) or c.isalnum()) and c not in _STOP_ZH]
        return keep[-SLOT:], rest[:SLOT]
    return re.findall(r"\w+", before.lower())[-SLOT:], re.findall(r"\w+", after.lower())[:SLOT]


def _slot_match(slot: list[str], units: list[str], *, left: bool) -> float:
    """How much of ``slot`` next to the asking word is found in ``units``, as a share of
    ``SLOT``: the longest run anywhere for Chinese characters; for words, the longest part
    of it that touches the asking word (its end for the left slot, its start for the
    right), since a shared "is the" alone says nothing."""
    if not slot:
        return 0.0
    if all(len(u) == 1 for u in slot):
        run, _ = _shared_runs(slot, units)
        return run / SLOT
    text = " " + " ".join(units) + " "
    for k in range(len(slot), 0, -1):
        piece = slot[-k:] if left else slot[:k]
        if f" {' '.join(piece)} " in text:
            return k / SLOT
    return 0.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One sentence to read, with what stands around it."""

    text: str
    context: str = ""  # its neighbouring sentences and the passage title
    similarity: float | None = None  # cosine to the question, when the index stored it


def overlap_features(question: str, cands: Sequence[Candidate], lang: str | None = None) -> Array:
    """The language-independent columns of ``FEATURES`` (pair columns left at 0)."""
    lang = lang or language(question)
    kind = answer_type(question)
    q_single, q_pairs = terms(question, lang)
    q_run = (
        [c for c in _ASKING_ZH.sub("？", question) if CJK_RE.match(c) or c.isalnum()]
        if lang == "zh"
        else tokenize(question)
    )
    singles = [terms(c.text, lang) for c in cands]
    contexts = [terms(c.context, lang) for c in cands]
    n = len(cands)
    x = np.zeros((n, len(FEATURES)))
    if not n:
        return x

    def weights(qt: list[str], sets: list[set[str]]) -> dict[str, float]:
        out = {}
        for t in set(qt):
            df = sum(1 for s in sets if t in s)
            out[t] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        return out

    left, right = _slots(question, lang)
    s_sets = [set(s) for s, _ in singles]
    p_sets = [set(p) for _, p in singles]
    c_sets = [set(s) | set(c) for (s, _), (c, _) in zip(singles, contexts, strict=True)]
    w1 = weights(q_single, s_sets)
    w2 = weights(q_pairs, p_sets)
    t1 = sum(w1.values()) or 1.0
    t2 = sum(w2.values()) or 1.0
    q_set = set(q_single)
    for i, c in enumerate(cands):
        x[i, 0] = sum(w for t, w in w1.items() if t in s_sets[i]) / t1
        x[i, 1] = sum(w for t, w in w2.items() if t in p_sets[i]) / t2
        x[i, 2] = sum(w for t, w in w1.items() if t in c_sets[i]) / t1
        own = (
            [ch for ch in c.text if CJK_RE.match(ch) or ch.isalnum()]
            if lang == "zh"
            else tokenize(c.text)
        )
        run, ordered = _shared_runs(q_run, own)
        x[i, 4] = run / max(1, len(q_run))
        x[i, 12] = ordered / max(1, len(q_run))
        x[i, 5] = 1.0 if kind is AnswerType.ANY or has_answer_type(c.text, kind, question) else 0.0
        x[i, 6] = min(1.0, len(s_sets[i] - q_set) / 4)
        x[i, 9] = c.similarity if c.similarity is not None else 0.0
        flat = list(c.text) if lang == "zh" else re.findall(r"\w+", c.text.lower())
        x[i, 10] = _slot_match(left, flat, left=True)
        x[i, 11] = _slot_match(right, flat, left=False)
    x[:, 3] = x[:, 0].max() - x[:, 0]
    return x


class PairModel:
    """The fine-tuned cross-encoder, int8 ONNX on onnxruntime (loaded once)."""

    def __init__(self, onnx_path: Path, tokenizer_json: Path, threads: int = 2) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # no INFO lines about fused nodes
        self.session = ort.InferenceSession(
            str(onnx_path), opts, providers=["CPUExecutionProvider"]
        )
        tok = Tokenizer.from_file(str(tokenizer_json))
        tok.enable_truncation(PAIR_MAX_TOKENS, strategy="longest_first")
        tok.no_padding()
        self.tokenizer = tok

    def logits(self, question: str, sentences: Sequence[str]) -> Array:
        if not sentences:
            return np.zeros(0)
        enc = self.tokenizer.encode_batch([(question, s) for s in sentences])
        width = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        types = np.zeros_like(ids)
        for r, e in enumerate(enc):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
            types[r, : len(e.ids)] = e.type_ids
        (out,) = self.session.run(
            ["logits"], {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        )
        return np.asarray(out, dtype=np.float64).reshape(-1)


@dataclass(frozen=True, slots=True)
class LanguageLayer:
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float  # refuse below this when the reader decides alone
    uses_pair: bool
    sure: float = 1.0  # its probability at a low false-answer rate: answers beside another model

    def probabilities(self, x: Array) -> Array:
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        out: Array = 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "mean": list(self.mean),
            "scale": list(self.scale),
            "weights": list(self.weights),
            "bias": self.bias,
            "threshold": self.threshold,
            "uses_pair": self.uses_pair,
            "sure": self.sure,
        }


@dataclass(frozen=True, slots=True)
class ReaderModel:
    layers: dict[str, LanguageLayer]

    def layer(self, lang: str) -> LanguageLayer:
        return self.layers.get(lang) or self.layers["en"]


@lru_cache(maxsize=1)
def load_pair() -> PairModel | None:
    """The shipped pair model, loaded once per process (None if it is not shipped)."""
    if not PAIR_ONNX.exists():
        return None
    return PairModel(PAIR_ONNX, PAIR_TOKENIZER)


@lru_cache(maxsize=4)
def load_reader(path: Path = READER_JSON) -> ReaderModel:
    data = json.loads(path.read_text(encoding="utf-8"))
    if tuple(data["features"]) != FEATURES:
        raise ValueError(f"{path}: fitted on other features; re-run bench/fit_reader.py")
    return ReaderModel(
        {
            lang: LanguageLayer(
                tuple(d["mean"]),
                tuple(d["scale"]),
                tuple(d["weights"]),
                float(d["bias"]),
                float(d["threshold"]),
                bool(d["uses_pair"]),
                float(d.get("sure", 1.0)),
            )
            for lang, d in data["languages"].items()
        }
    )


def add_pair_columns(
    x: Array, question: str, cands: Sequence[Candidate], pair: PairModel | None
) -> None:
    """Run the pair model on the ``PAIR_TOP`` best candidates by the cheap columns; the
    others get the lowest logit seen (they are not read, so they cannot be best)."""
    if pair is None or not len(cands):
        return
    cheap = x[:, 0] + x[:, 1] + 0.5 * x[:, 2] + x[:, 9]
    top = np.argsort(-cheap, kind="stable")[:PAIR_TOP]
    logits = pair.logits(question, [cands[i].text for i in top])
    x[:, 7] = float(logits.min()) - 1.0
    x[top, 7] = logits
    x[:, 8] = x[:, 7].max() - x[:, 7]


def threshold(question: str) -> float:
    """The calibrated refusal threshold for the question's language."""
    return load_reader().layer(language(question)).threshold


def read(question: str, cands: Sequence[Candidate]) -> tuple[Array, float]:
    """Each candidate's probability of answering ``question``, and the language's "sure"
    level (the probability at a low false-answer rate, see ``LanguageLayer``)."""
    lang = language(question)
    layer = load_reader().layer(lang)
    x = overlap_features(question, cands, lang)
    if layer.uses_pair:
        add_pair_columns(x, question, cands, load_pair())
    return layer.probabilities(x), layer.sure
