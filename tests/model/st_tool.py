#!/usr/bin/python3
"""Independent safetensors reader/writer (numpy + torch, no astembed code) for
test_model_python.

  st_tool.py check DIR32 DIR16 DIRBF16   verify init-random's files: layout, values
                                         ~ N(0, 0.02), F16/BF16 = rounded F32
  st_tool.py rewrite SRC DST             rewrite SRC/model.safetensors as another
                                         writer might: sorted keys, reversed data
                                         order, "bert." prefix, no padding, every
                                         other tensor in F16
"""
import json, struct, sys
import numpy as np
import torch

DT = {"F32": np.float32, "F16": np.float16, "I64": np.int64}


def read(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    hdr = json.loads(b[8:8 + n])
    data = b[8 + n:]
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        s, e = v["data_offsets"]
        raw = data[s:e]
        if v["dtype"] == "BF16":
            a = np.frombuffer(raw, dtype=np.uint16).reshape(v["shape"])
        else:
            a = np.frombuffer(raw, dtype=DT[v["dtype"]]).reshape(v["shape"])
        out[k] = (v["dtype"], a)
    return n, hdr, data, out


def check(d32, d16, dbf):
    n, hdr, data, t32 = read(d32 + "/model.safetensors")
    assert n % 8 == 0, "header not padded to 8 bytes"
    assert hdr["__metadata__"] == {"format": "pt"}
    ends = sorted((v["data_offsets"][0], v["data_offsets"][1]) for k, v in hdr.items() if k != "__metadata__")
    pos = 0
    for s, e in ends:
        assert s == pos, "data not contiguous"
        pos = e
    assert pos == len(data), "trailing bytes"
    _, _, _, t16 = read(d16 + "/model.safetensors")
    _, _, _, tbf = read(dbf + "/model.safetensors")
    assert sorted(t32) == sorted(t16) == sorted(tbf)
    assert np.array_equal(t32["embeddings.position_ids"][1][0], np.arange(t32["embeddings.position_ids"][1].shape[1]))
    for k, (dt, a) in t32.items():
        if dt != "F32":
            continue
        assert t16[k][0] == "F16" and np.array_equal(a.astype(np.float16), t16[k][1]), k
        bf = torch.from_numpy(a.copy()).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        assert tbf[k][0] == "BF16" and np.array_equal(bf, tbf[k][1]), k
        if "LayerNorm.weight" in k:
            assert abs(a.mean() - 1) < 0.05 and 0.02 < a.std() < 0.08, (k, a.mean(), a.std())
        elif a.size > 1000:
            assert abs(a.mean()) < 0.005 and 0.018 < a.std() < 0.022, (k, a.mean(), a.std())
    print("check ok:", len(t32), "tensors")


def rewrite(src, dst):
    _, _, _, t = read(src + "/model.safetensors")
    names = sorted(t)
    hdr, chunks, off = {}, [], 0
    for i, k in enumerate(reversed(names)):
        dt, a = t[k]
        if dt == "F32" and i % 2 == 0:
            dt, a = "F16", a.astype(np.float16)
        raw = a.tobytes()
        hdr["bert." + k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    h = json.dumps(hdr, sort_keys=True).encode()
    if len(h) % 4 == 0:
        h += b" "  # make the data region misaligned for F32
    with open(dst + "/model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(chunks))
    print("rewrite ok")


if __name__ == "__main__":
    {"check": check, "rewrite": rewrite}[sys.argv[1]](*sys.argv[2:])
