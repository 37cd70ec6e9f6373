"""onnxruntime on the same model files and inputs as bench/embedding.rs (the ratio's baseline).

Single thread, as the gateway's embedding runs on one core. Median of N runs after warm-up.
Usage: python3 bench/embedding_ort.py [MODELS_DIR]   (pip install onnxruntime tokenizers numpy)
"""
import os
import statistics
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "models", "minilm")
TEXT = open(os.path.join(HERE, "embedding_input.txt")).read()


def main():
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    for file in ["model-int8.onnx", "model-f32.onnx"]:
        t = time.perf_counter()
        s = ort.InferenceSession(os.path.join(MODELS, file), opts, providers=["CPUExecutionProvider"])
        load_ms = (time.perf_counter() - t) * 1e3
        print(f"onnxruntime {ort.__version__} {file}: session load {load_ms:.1f} ms")
        for n in [16, 128]:
            tok = Tokenizer.from_file(os.path.join(MODELS, "tokenizer.json"))
            tok.no_padding()
            tok.enable_truncation(n)
            ids = tok.encode(TEXT).ids
            assert len(ids) == n, len(ids)
            feed = {"input_ids": np.array([ids], dtype=np.int64),
                    "attention_mask": np.ones((1, n), dtype=np.int64),
                    "token_type_ids": np.zeros((1, n), dtype=np.int64)}
            for _ in range(20):
                s.run(None, feed)
            times = []
            for _ in range(200):
                t = time.perf_counter()
                enc = tok.encode(TEXT)  # tokenisation is part of the Rust figure too
                feed["input_ids"] = np.array([enc.ids], dtype=np.int64)
                (h,) = s.run(None, feed)
                v = h[0].mean(axis=0)
                v /= np.linalg.norm(v)
                times.append((time.perf_counter() - t) * 1e3)
            print(f"  {n:4d} tokens: median {statistics.median(times):.2f} ms  p90 {sorted(times)[int(len(times) * 0.9)]:.2f} ms")


if __name__ == "__main__":
    main()
