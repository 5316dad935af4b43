#!/usr/bin/python3
"""Independent float64 reference of a BERT-family sentence encoder.

Reads an unmodified Hugging Face model folder (config.json, model.safetensors,
modules.json, 1_Pooling/config.json) and embeds token id sequences with plain torch
ops in float64, one sequence at a time and without padding, following the
definitions of transformers' BertModel and sentence-transformers' Pooling/Normalize.
It shares no code or structure with astembed's C forward pass; tests compare the two.

usage: /usr/bin/python3 tools/reference.py MODEL_DIR IN.jsonl OUT.jsonl
  IN:  one {"ids": [...]} per line (special tokens included)
  OUT: one {"embedding": [...]} per line, same order
"""
import json
import math
import os
import sys

import numpy as np
import torch


def read_safetensors(path):
    """Parses safetensors with numpy: u64 header length, JSON header, raw data."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = np.frombuffer(blob[:8], dtype="<u8")
    header = json.loads(blob[8:8 + int(hlen)])
    base = 8 + int(hlen)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        raw = blob[base + a:base + b]
        dt = info["dtype"]
        if dt == "F32":
            arr = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        elif dt == "F16":
            arr = np.frombuffer(raw, dtype="<f2").astype(np.float64)
        elif dt == "BF16":
            u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            arr = u.view(np.float32).astype(np.float64)
        else:
            continue  # position_ids (I64) and the like are not weights
        key = name[5:] if name.startswith("bert.") else name
        out[key] = torch.from_numpy(arr.reshape(info["shape"]).copy())
    return out


def load(model_dir):
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    pooling, normalize = "mean", False
    mpath = os.path.join(model_dir, "modules.json")
    if os.path.exists(mpath):
        with open(mpath) as f:
            modules = json.load(f)
        for mod in modules:
            if mod["type"].endswith("Normalize"):
                normalize = True
            if mod["type"].endswith("Pooling"):
                with open(os.path.join(model_dir, mod["path"], "config.json")) as f:
                    pc = json.load(f)
                for key, name in (("pooling_mode_cls_token", "cls"),
                                  ("pooling_mode_max_tokens", "max"),
                                  ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
                                  ("pooling_mode_mean_tokens", "mean")):
                    if pc.get(key):
                        pooling = name
                        break
    return cfg, w, pooling, normalize


def activation(name):
    if name == "gelu":
        return lambda t: 0.5 * t * (1.0 + torch.erf(t / math.sqrt(2.0)))
    if name in ("gelu_new", "gelu_pytorch_tanh"):
        return lambda t: 0.5 * t * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (t + 0.044715 * t ** 3)))
    if name == "relu":
        return torch.relu
    raise SystemExit("reference.py: unsupported hidden_act %r" % name)


def embed(cfg, w, pooling, normalize, ids):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    dh = H // nh
    eps = cfg.get("layer_norm_eps", 1e-12)
    act = activation(cfg.get("hidden_act", "gelu"))
    ln = lambda t, p: torch.nn.functional.layer_norm(t, (H,), w[p + ".weight"], w[p + ".bias"], eps)
    lin = lambda t, p: torch.nn.functional.linear(t, w[p + ".weight"], w[p + ".bias"])

    idx = torch.tensor(ids, dtype=torch.long)
    L = idx.shape[0]
    h = (w["embeddings.word_embeddings.weight"][idx]
         + w["embeddings.position_embeddings.weight"][torch.arange(L)]
         + w["embeddings.token_type_embeddings.weight"][torch.zeros(L, dtype=torch.long)])
    h = ln(h, "embeddings.LayerNorm")
    for i in range(cfg["num_hidden_layers"]):
        p = "encoder.layer.%d." % i
        heads = lambda t: t.view(L, nh, dh).permute(1, 0, 2)
        q = heads(lin(h, p + "attention.self.query"))
        k = heads(lin(h, p + "attention.self.key"))
        v = heads(lin(h, p + "attention.self.value"))
        att = torch.softmax(torch.matmul(q, k.transpose(1, 2)) / math.sqrt(dh), dim=-1)
        ctx = torch.matmul(att, v).permute(1, 0, 2).reshape(L, H)
        h = ln(lin(ctx, p + "attention.output.dense") + h, p + "attention.output.LayerNorm")
        inter = act(lin(h, p + "intermediate.dense"))
        h = ln(lin(inter, p + "output.dense") + h, p + "output.LayerNorm")
    if pooling == "cls":
        e = h[0]
    elif pooling == "max":
        e = h.max(dim=0).values
    elif pooling == "mean_sqrt_len":
        e = h.sum(dim=0) / math.sqrt(L)
    else:
        e = h.mean(dim=0)
    if normalize:
        e = torch.nn.functional.normalize(e, p=2.0, dim=0)
    return e


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    # one thread: the models are small and extra OpenMP threads mostly spin
    torch.set_num_threads(int(os.environ.get("AE_REF_THREADS", "1")))
    cfg, w, pooling, normalize = load(sys.argv[1])
    with open(sys.argv[2]) as fin, open(sys.argv[3], "w") as fout:
        for line in fin:
            if not line.strip():
                continue
            ids = json.loads(line)["ids"]
            with torch.no_grad():
                e = embed(cfg, w, pooling, normalize, ids)
            fout.write(json.dumps({"embedding": [float(x) for x in e]}) + "\n")


if __name__ == "__main__":
    main()
