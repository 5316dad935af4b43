"""A plain PyTorch BERT encoder (sentence-transformers style: mean pooling + L2
normalisation) for the benchmark peers of bench/encoder.

transformers is not installed here, so this module is written out by hand. Its
structure deliberately follows Hugging Face's BertModel (separate query/key/value
Linears, additive -10000 attention mask, erf GELU, post-LayerNorm residuals): that is
the graph ONNX Runtime's BERT fusions (Attention, SkipLayerNormalization, BiasGelu)
were written for, so the ONNX peer gets the same export a Hugging Face user would.

Weights come from a Hugging Face model folder: config.json + model.safetensors (read
here with numpy; the safetensors package is not installed either).
"""
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_DTYPES = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16, "I64": np.int64}


def read_safetensors(path):
    """name -> float32 numpy array for every float tensor of a .safetensors file,
    with the optional "bert." prefix stripped."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + hlen])
    base = 8 + hlen
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] not in ("F32", "F16", "BF16"):
            continue
        start, end = info["data_offsets"]
        raw = np.frombuffer(blob, dtype=_DTYPES[info["dtype"]], count=(end - start) //
                            np.dtype(_DTYPES[info["dtype"]]).itemsize, offset=base + start)
        if info["dtype"] == "BF16":
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            arr = raw.astype(np.float32)
        key = name[5:] if name.startswith("bert.") else name
        out[key] = arr.reshape(info["shape"])
    return out


class Layer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, i = cfg["hidden_size"], cfg["intermediate_size"]
        self.heads = cfg["num_attention_heads"]
        self.head_dim = h // self.heads
        eps = cfg.get("layer_norm_eps", 1e-12)
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.attn_out = nn.Linear(h, h)
        self.ln1 = nn.LayerNorm(h, eps=eps)
        self.inter = nn.Linear(h, i)
        self.out = nn.Linear(i, h)
        self.ln2 = nn.LayerNorm(h, eps=eps)
        act = cfg.get("hidden_act", "gelu")
        if act == "gelu":
            self.act = nn.GELU()
        elif act in ("gelu_new", "gelu_pytorch_tanh"):
            self.act = nn.GELU(approximate="tanh")
        elif act == "relu":
            self.act = nn.ReLU()
        else:
            raise ValueError(f"config.json: unsupported hidden_act {act!r}")

    def split_heads(self, x):
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).permute(0, 2, 1, 3)

    def forward(self, x, ext_mask):
        q = self.split_heads(self.query(x))
        k = self.split_heads(self.key(x))
        v = self.split_heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = torch.softmax(scores + ext_mask, dim=-1)
        ctx = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous()
        ctx = ctx.view(ctx.shape[0], ctx.shape[1], -1)
        x = self.ln1(self.attn_out(ctx) + x)
        return self.ln2(self.out(self.act(self.inter(x))) + x)


class SentenceBert(nn.Module):
    """input_ids [B,S] int64, attention_mask [B,S] int64 -> [B,H] unit vectors."""

    def __init__(self, cfg):
        super().__init__()
        h = cfg["hidden_size"]
        self.word = nn.Embedding(cfg["vocab_size"], h)
        self.pos = nn.Embedding(cfg["max_position_embeddings"], h)
        self.tok_type = nn.Embedding(cfg.get("type_vocab_size", 2), h)
        self.ln = nn.LayerNorm(h, eps=cfg.get("layer_norm_eps", 1e-12))
        self.layers = nn.ModuleList(Layer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.register_buffer("position_ids",
                             torch.arange(cfg["max_position_embeddings"]).unsqueeze(0),
                             persistent=False)

    def forward(self, input_ids, attention_mask):
        seq = input_ids.shape[1]
        x = self.word(input_ids) + self.pos(self.position_ids[:, :seq]) + self.tok_type.weight[0]
        x = self.ln(x)
        # Hugging Face's order (unsqueeze, cast, (1 - m) * -10000): the pattern ORT's
        # AttentionFusion matches.
        ext = attention_mask[:, None, None, :].to(x.dtype)
        ext = (1.0 - ext) * -10000.0
        mask = attention_mask.to(x.dtype)
        for layer in self.layers:
            x = layer(x, ext)
        summed = (x * mask.unsqueeze(-1)).sum(1)
        pooled = summed / mask.sum(1, keepdim=True).clamp(min=1e-9)
        return F.normalize(pooled, p=2.0, dim=1)


_NAMES = {
    "query": "attention.self.query", "key": "attention.self.key",
    "value": "attention.self.value", "attn_out": "attention.output.dense",
    "ln1": "attention.output.LayerNorm", "inter": "intermediate.dense",
    "out": "output.dense", "ln2": "output.LayerNorm",
}


def load(model_dir):
    """The SentenceBert of a model folder, weights loaded, in eval mode."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    w = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    m = SentenceBert(cfg)

    def put(param, name):
        if name not in w:
            raise KeyError(f"{model_dir}/model.safetensors: tensor {name!r} missing")
        arr = w[name]
        if tuple(arr.shape) != tuple(param.shape):
            raise ValueError(f"tensor {name!r} has shape {arr.shape}, want {tuple(param.shape)}")
        param.data.copy_(torch.from_numpy(arr.copy()))

    put(m.word.weight, "embeddings.word_embeddings.weight")
    put(m.pos.weight, "embeddings.position_embeddings.weight")
    put(m.tok_type.weight, "embeddings.token_type_embeddings.weight")
    put(m.ln.weight, "embeddings.LayerNorm.weight")
    put(m.ln.bias, "embeddings.LayerNorm.bias")
    for li, layer in enumerate(m.layers):
        for attr, hf in _NAMES.items():
            mod = getattr(layer, attr)
            put(mod.weight, f"encoder.layer.{li}.{hf}.weight")
            put(mod.bias, f"encoder.layer.{li}.{hf}.bias")
    return m.eval()


def pad_batch(seqs, pad_id=0):
    """Right-pads a list of id lists to the longest: (input_ids, attention_mask) int64."""
    longest = max(len(s) for s in seqs)
    ids = np.full((len(seqs), longest), pad_id, dtype=np.int64)
    mask = np.zeros((len(seqs), longest), dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, :len(s)] = s
        mask[r, :len(s)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)
