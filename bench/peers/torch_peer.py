"""PyTorch peer of bench/encoder: runs the benchmark workloads with Debian's torch
(fp32, TorchScript trace + freeze, inference_mode) and prints one JSON object.

usage: /usr/bin/python3 torch_peer.py MODEL_DIR WORK.json

WORK.json (written by bench_encoder) holds the token ids made by astembed's tokenizer
and the run parameters; see bench/README.md for its fields. Only the encoder is timed:
padded input tensors are built before the clock starts. Timings are per repetition
(one pass over the workload's batches), after the warm-up passes.
"""
import json
import resource
import sys
import time

import torch

import bert


def batches(seqs, size):
    """Fixed batches of `size` in the given order, each padded to its longest."""
    return [bert.pad_batch(seqs[i:i + size]) for i in range(0, len(seqs), size)]


def length_sorted(seqs):
    """sentence-transformers' encode order: longest first (stable)."""
    return sorted(seqs, key=lambda s: -len(s))


def time_pass(model, prepared):
    t0 = time.perf_counter()
    for ids, mask in prepared:
        model(ids, mask)
    return time.perf_counter() - t0


def run_workload(model, name, seqs, work, warmup_batches, reps):
    """Warms up on the first warmup_batches batches, then times reps passes."""
    prepared = batches(seqs, work["batch"])
    for ids, mask in prepared[:warmup_batches]:
        model(ids, mask)
    times = [time_pass(model, prepared) for _ in range(reps)]
    return {"workload": name, "times_s": times, "items": len(seqs),
            "real_tokens": sum(len(s) for s in seqs),
            "padded_tokens": sum(int(ids.numel()) for ids, _ in prepared),
            "batches": len(prepared)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: torch_peer.py MODEL_DIR WORK.json")
    with open(sys.argv[2]) as f:
        work = json.load(f)
    torch.set_num_threads(work["threads"])
    torch.set_num_interop_threads(1)
    eager = bert.load(sys.argv[1])
    example = bert.pad_batch([[101] + [2000] * 126 + [102]] * 2)
    with torch.no_grad():
        model = torch.jit.freeze(torch.jit.trace(eager, example))
    out = {"system": "pytorch", "version": torch.__version__, "threads": work["threads"],
           "results": []}
    with torch.inference_mode():
        if work.get("sample"):
            ids, mask = bert.pad_batch(work["sample"])
            out["sample_vectors"] = model(ids, mask).tolist()
        if work.get("fixed"):
            out["results"].append(run_workload(model, "fixed", work["fixed"], work,
                                               work["warmup_batches"], work["reps_fixed"]))
        ann = work.get("annotations")
        if ann:
            wb = work["warmup_batches"]
            out["results"].append(run_workload(model, "naive", ann, work, wb,
                                               work["reps_ann"]))
            out["results"].append(run_workload(model, "sorted", length_sorted(ann), work,
                                               wb, work["reps_ann"]))
    out["maxrss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
