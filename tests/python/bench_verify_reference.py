"""The peer of `kaiyuan verify --runs 1` for scripts/bench-verify.sh: for every case of a
conformance corpus (tests/python/onnx_conformance.py), create an onnxruntime.InferenceSession
and run the model three times on its reference inputs (kaiyuan runs it three times: smoke run,
timed run compared for determinism, test vectors), comparing with the reference outputs.

Prints one JSON object {case: milliseconds}; timing starts after the imports, so the
interpreter's own start and `import onnxruntime` are not counted.
"""

import glob
import json
import os
import sys
import time

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.dirname(__file__))
from onnx_conformance import cases, index, load_value, similar  # noqa: E402


def main(root):
    times = {}
    for case in cases(root):
        start = time.perf_counter()
        try:
            session = ort.InferenceSession(os.path.join(root, case, "model.onnx"), providers=["CPUExecutionProvider"])
            names = [i.name for i in session.get_inputs()]
            data = sorted(glob.glob(os.path.join(root, case, "test_data_set_*")))[0]
            feed = dict(zip(names, [load_value(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")), key=index)]))
            expected = [load_value(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")), key=index)]
            for _ in range(3):
                outputs = session.run(None, feed)
            for e, a in zip(expected, outputs):
                similar(e, a)
        except Exception:  # noqa: BLE001 - a failing case still costs its time
            pass
        times[case] = (time.perf_counter() - start) * 1000
    json.dump(times, sys.stdout)
    print()


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(sys.argv[1])
