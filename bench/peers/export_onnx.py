"""Exports the benchmark model folder to ONNX for the ONNX Runtime peer.

usage: /usr/bin/python3 export_onnx.py MODEL_DIR OUT.onnx

The graph is torch.onnx.export of the same SentenceBert module the PyTorch peer runs
(bert.py), opset 14, batch and sequence axes dynamic; inputs input_ids and
attention_mask (int64 [batch, seq]), output embedding (float32 [batch, hidden], mean
pooled and L2-normalised). Debian's torch 1.13 serialises the ONNX protobuf in C++, so
the onnx Python package is not needed.
"""
import sys
import warnings

import torch

import bert


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: export_onnx.py MODEL_DIR OUT.onnx")
    model = bert.load(sys.argv[1])
    example = bert.pad_batch([[101] + [2000] * 30 + [102], [101, 2001, 102]])
    dyn = {"batch": 0, "seq": 1}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, example, sys.argv[2], opset_version=14, do_constant_folding=True,
            input_names=["input_ids", "attention_mask"], output_names=["embedding"],
            dynamic_axes={"input_ids": {0: "batch", 1: "seq"},
                          "attention_mask": {0: "batch", 1: "seq"},
                          "embedding": {0: "batch"}})


if __name__ == "__main__":
    main()
