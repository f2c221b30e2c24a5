"""Train the reader's pair model: all-MiniLM-L6-v2 fine-tuned as a cross-encoder.

    pip install -e '.[train]'            # torch + opencc, training only
    python bench/train_reader.py         # → bot/reader/pair.int8.onnx (+ card figures)

Input ``[CLS] question [SEP] sentence [SEP]``; the [CLS] state through one linear layer is
the logit of "this sentence answers this question". Fitted on WikiQA train + TrecQA TRAIN
(``reader_data.english_train``), checked on WikiQA dev after each epoch; WikiQA test is
never read here. The weights start from the installed model package (no download); the
ONNX graph is assembled by ``ingest.onnx_graph`` from the fitted weights plus the head,
then quantised to int8 (``bot.reader`` runs it with onnxruntime, torch-free).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import reader_data as data
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer

from ingest.onnx_export import default_source_dir

MAX_LEN = 96
SEED = 17


class Layer(nn.Module):
    def __init__(self, h: int, heads: int, inter: int) -> None:
        super().__init__()
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.o, self.ln1 = nn.Linear(h, h), nn.LayerNorm(h, eps=1e-12)
        self.i, self.out, self.ln2 = (
            nn.Linear(h, inter),
            nn.Linear(inter, h),
            nn.LayerNorm(h, eps=1e-12),
        )
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, n, h = x.shape
        d = h // self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, n, self.heads, d).transpose(1, 2)

        att = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / math.sqrt(d) + bias
        ctx = (self.drop(att.softmax(-1)) @ split(self.v(x))).transpose(1, 2).reshape(b, n, h)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.out(nn.functional.gelu(self.i(x)))))


class CrossEncoder(nn.Module):
    def __init__(self, cfg: dict[str, int]) -> None:
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], h)
        self.typ = nn.Embedding(cfg["type_vocab_size"], h)
        self.ln = nn.LayerNorm(h, eps=1e-12)
        self.layers = nn.ModuleList(
            Layer(h, cfg["num_attention_heads"], cfg["intermediate_size"])
            for _ in range(cfg["num_hidden_layers"])
        )
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(h, 1)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, types: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1]).unsqueeze(0)
        x = self.drop(self.ln(self.word(ids) + self.pos(pos) + self.typ(types)))
        bias = (1.0 - mask[:, None, None, :].float()) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return self.head(self.drop(x[:, 0])).squeeze(-1)


# Our module names → the BERT checkpoint's (the names ingest.onnx_graph reads).
def _names(n_layers: int) -> dict[str, str]:
    m = {
        "word.weight": "embeddings.word_embeddings.weight",
        "pos.weight": "embeddings.position_embeddings.weight",
        "typ.weight": "embeddings.token_type_embeddings.weight",
        "ln.weight": "embeddings.LayerNorm.weight",
        "ln.bias": "embeddings.LayerNorm.bias",
    }
    parts = {
        "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "ln1": "attention.output.LayerNorm",
        "i": "intermediate.dense", "out": "output.dense", "ln2": "output.LayerNorm",
    }  # fmt: skip
    for li in range(n_layers):
        for ours, theirs in parts.items():
            for p in ("weight", "bias"):
                m[f"layers.{li}.{ours}.{p}"] = f"encoder.layer.{li}.{theirs}.{p}"
    return m


def encode(tok: Tokenizer, batch: list[tuple[str, str, int]]) -> tuple[torch.Tensor, ...]:
    enc = tok.encode_batch([(q, s) for q, s, _ in batch])
    n = max(len(e.ids) for e in enc)
    ids = torch.zeros(len(enc), n, dtype=torch.long)
    mask = torch.zeros_like(ids)
    types = torch.zeros_like(ids)
    for r, e in enumerate(enc):
        ids[r, : len(e.ids)] = torch.tensor(e.ids)
        mask[r, : len(e.ids)] = 1
        types[r, : len(e.ids)] = torch.tensor(e.type_ids)
    y = torch.tensor([float(lab) for _, _, lab in batch])
    return ids, mask, types, y


def tokenizer(source: Path) -> Tokenizer:
    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.enable_truncation(MAX_LEN, strategy="longest_first")
    tok.no_padding()
    return tok


def scores(model: CrossEncoder, tok: Tokenizer, sets: list[data.QuestionSet]) -> list[list[float]]:
    model.eval()
    out: list[list[float]] = []
    with torch.no_grad():
        for q in sets:
            batch = [(q.question, s, 0) for s in q.sentences]
            ids, mask, types, _ = encode(tok, batch)
            out.append(model(ids, mask, types).tolist())
    model.train()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=4e-5)
    ap.add_argument("--limit", type=int, default=None, help="train pairs (smoke test)")
    ap.add_argument("--out", type=Path, default=Path("build/reader"))
    ap.add_argument("--init", type=Path, help="start from these pair weights (continue)")
    ap.add_argument("--base-share", type=float, default=0.3, help="with --init")
    args = ap.parse_args()
    torch.manual_seed(SEED)
    random.seed(SEED)
    torch.set_num_threads(2)
    source = default_source_dir()
    cfg = json.loads((source / "config.json").read_text())
    model = CrossEncoder(cfg)
    names = _names(cfg["num_hidden_layers"])
    if args.init:
        weights = load_file(str(args.init))
        model.load_state_dict({o: weights[names.get(o, o)] for o in model.state_dict()})
    else:
        weights = load_file(str(source / "model.safetensors"))
        missing = model.load_state_dict({o: weights[t] for o, t in names.items()}, strict=False)
        assert set(missing.missing_keys) == {"head.weight", "head.bias"}, missing
    tok = tokenizer(source)
    if args.init:
        # Continuing: the annual-report questions twice, beside a share of the rest, so the
        # model learns figures in reports without forgetting what it knew.
        base = list(data.pairs(data.wikiqa("train") + data.trecqa("TRAIN")))
        random.shuffle(base)
        reports = list(data.pairs(data.tatqa_train()))
        train = reports * 2 + base[: int(len(base) * args.base_share)]
    else:
        train = list(data.pairs(data.english_train()))
    random.shuffle(train)
    train = train[: args.limit] if args.limit else train
    dev = data.wikiqa("dev")
    steps = args.epochs * math.ceil(len(train) / args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, s / (0.1 * steps)) * max(0.0, (steps - s) / (0.9 * steps))
    )
    loss_fn = nn.BCEWithLogitsLoss()
    print(f"{len(train)} pairs, {steps} steps", flush=True)
    step, t0, best = 0, time.time(), -1.0
    args.out.mkdir(parents=True, exist_ok=True)
    for epoch in range(args.epochs):
        # Batches of similar length: less padding, same data.
        order = sorted(range(len(train)), key=lambda i: len(train[i][0]) + len(train[i][1]))
        batches = [order[i : i + args.batch] for i in range(0, len(order), args.batch)]
        random.shuffle(batches)
        for b in batches:
            ids, mask, types, y = encode(tok, [train[i] for i in b])
            loss = loss_fn(model(ids, mask, types), y)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(
                    f"step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s",
                    flush=True,
                )
        dev_map = data.mean_ap(dev, scores(model, tok, dev))
        print(f"epoch {epoch + 1}: WikiQA dev MAP {dev_map:.3f}", flush=True)
        if dev_map > best:
            best = dev_map
            state = {names.get(k, k): v.contiguous() for k, v in model.state_dict().items()}
            save_file(state, str(args.out / "pair.safetensors"))
    (args.out / "train.json").write_text(
        json.dumps({"dev_map": best, "pairs": len(train), **vars(args)}, default=str)
    )
    print(f"best dev MAP {best:.3f}; weights in {args.out}", flush=True)


if __name__ == "__main__":
    main()
