"""Reference outputs from onnxruntime's own Python API, for kaiyuan-verifier's real-world corpus.

    reference_outputs.py CASE...

Each CASE folder holds `model.txt` (the model's path) and `input_K.pb` (TensorProto files named
after the model's inputs). The model runs on the CPU provider; each output that is a tensor is
written to `output_K.pb` (K its position), and `outputs.txt` lists the names written.
"""

import glob
import os
import sys

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, numpy_helper


def run(case):
    with open(os.path.join(case, "model.txt")) as f:
        model = f.read().strip()
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    feed = {}
    for path in sorted(glob.glob(os.path.join(case, "input_*.pb"))):
        t = TensorProto()
        with open(path, "rb") as f:
            t.ParseFromString(f.read())
        feed[t.name] = numpy_helper.to_array(t)
    names = [o.name for o in session.get_outputs()]
    written = []
    for k, (name, value) in enumerate(zip(names, session.run(names, feed))):
        if isinstance(value, np.ndarray):
            t = numpy_helper.from_array(value, name)
            with open(os.path.join(case, f"output_{k}.pb"), "wb") as f:
                f.write(t.SerializeToString())
            written.append(name)
    with open(os.path.join(case, "outputs.txt"), "w") as f:
        f.write("\n".join(written))


if __name__ == "__main__":
    for case in sys.argv[1:]:
        run(case)
