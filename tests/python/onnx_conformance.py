"""The ONNX conformance corpus, for kaiyuan's verification tests and benchmark.

    onnx_conformance.py prepare OUT   copy the models with reference data that the `onnx`
                                      package ships into OUT/<suite>/<case>/, plus perturbed
                                      copies under OUT/perturbed/
    onnx_conformance.py check OUT     run every case with onnxruntime's own Python API and print
                                      one JSON object {case: {"passed", "error", "seconds"}}

Cases follow the ONNX convention: `model.onnx` with `test_data_set_N/input_K.pb` and
`output_K.pb` beside it. The `light` models ship only a reference output; their input is made the
way the ONNX backend runner makes it (`arange(n) / n` in float32, unknown dimensions 1), so that
the shipped output applies. Comparison follows `onnx.backend.test.runner`: rtol 1e-3, atol 1e-7,
NaN equal to NaN, dtypes and shapes equal, non-numeric values compared exactly.
"""

import glob
import json
import os
import shutil
import sys
import time

import numpy as np
import onnx
from onnx import numpy_helper

SUITES = ["simple", "pytorch-converted", "pytorch-operator", "light"]
RTOL, ATOL = 1e-3, 1e-7


def data_dir():
    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")


def light_input(model):
    inits = {i.name for i in model.graph.initializer}
    feeds = []
    for x in model.graph.input:
        if x.name in inits:
            continue
        shape = tuple(
            d.dim_value if d.HasField("dim_value") else 1
            for d in x.type.tensor_type.shape.dim
        )
        n = int(np.prod(shape))
        feeds.append((np.arange(n).reshape(shape) / n).astype(np.float32))
    return feeds


def prepare(out):
    src = data_dir()
    for suite in SUITES:
        if suite == "light":
            for path in sorted(glob.glob(os.path.join(src, "light", "light_*.onnx"))):
                name = os.path.basename(path)[: -len(".onnx")]
                case = os.path.join(out, suite, name)
                data = os.path.join(case, "test_data_set_0")
                os.makedirs(data, exist_ok=True)
                shutil.copy(path, os.path.join(case, "model.onnx"))
                model = onnx.load(path)
                for k, value in enumerate(light_input(model)):
                    with open(os.path.join(data, f"input_{k}.pb"), "wb") as f:
                        f.write(numpy_helper.from_array(value).SerializeToString())
                shutil.copy(path[: -len(".onnx")] + "_output_0.pb", os.path.join(data, "output_0.pb"))
            continue
        for case_dir in sorted(glob.glob(os.path.join(src, suite, "*"))):
            if os.path.exists(os.path.join(case_dir, "model.onnx")):
                shutil.copytree(case_dir, os.path.join(out, suite, os.path.basename(case_dir)), dirs_exist_ok=True)
    for case in cases(out):
        perturb(out, case)


def perturb(out, case):
    """A copy of `case` whose first float reference output is off by far more than the
    tolerance; cases without a non-empty float tensor output get none."""
    data = os.path.join(out, case, "test_data_set_0")
    for path in sorted(glob.glob(os.path.join(data, "output_*.pb"))):
        tensor = onnx.TensorProto()
        with open(path, "rb") as f:
            try:
                tensor.ParseFromString(f.read())
            except Exception:
                continue
        if not tensor.dims and not tensor.raw_data and not tensor.float_data:
            continue
        value = numpy_helper.to_array(tensor)
        if value.dtype.kind != "f" or value.size == 0:
            continue
        value = value.copy()
        value.flat[value.size // 2] += 1.0 + abs(float(value.flat[value.size // 2]))
        target = os.path.join(out, "perturbed", case.replace("/", "__"))
        shutil.copytree(os.path.join(out, case), target, dirs_exist_ok=True)
        with open(os.path.join(target, "test_data_set_0", os.path.basename(path)), "wb") as f:
            f.write(numpy_helper.from_array(value, tensor.name).SerializeToString())
        return


def cases(out):
    found = []
    for model in sorted(glob.glob(os.path.join(out, "*", "*", "model.onnx"))):
        rel = os.path.relpath(os.path.dirname(model), out)
        if not rel.startswith("perturbed"):
            found.append(rel)
    return found


def load_value(path):
    """A TensorProto or SequenceProto file as a numpy array or list of arrays."""
    with open(path, "rb") as f:
        raw = f.read()
    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(raw)
        if tensor.data_type != 0:
            return numpy_helper.to_array(tensor)
    except Exception:
        pass
    seq = onnx.SequenceProto()
    seq.ParseFromString(raw)
    return numpy_helper.to_list(seq)


def similar(expected, actual):
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            raise AssertionError("sequence length differs")
        for e, a in zip(expected, actual):
            similar(e, a)
        return
    actual = np.asarray(actual)
    if not np.issubdtype(expected.dtype, np.number):
        if expected.tolist() != actual.tolist():
            raise AssertionError(f"{expected} != {actual}")
        return
    np.testing.assert_equal(actual.dtype, expected.dtype)
    np.testing.assert_array_equal(actual.shape, expected.shape)
    np.testing.assert_allclose(actual, expected, rtol=RTOL, atol=ATOL)


def check_case(case_dir):
    import onnxruntime as ort

    start = time.perf_counter()
    session = ort.InferenceSession(os.path.join(case_dir, "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    for data in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
        inputs = [load_value(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")), key=index)]
        expected = [load_value(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")), key=index)]
        outputs = session.run(None, dict(zip(names, inputs)))
        if len(outputs) != len(expected):
            raise AssertionError("output count differs")
        for e, a in zip(expected, outputs):
            similar(e, a)
    return time.perf_counter() - start


def index(path):
    return int(os.path.basename(path).split("_")[1].split(".")[0])


def check(out):
    results = {}
    for case in cases(out) + [os.path.relpath(p, out) for p in sorted(glob.glob(os.path.join(out, "perturbed", "*")))]:
        try:
            seconds = check_case(os.path.join(out, case))
            results[case] = {"passed": True, "error": None, "seconds": seconds}
        except Exception as e:  # noqa: BLE001 - every failure is a result here
            results[case] = {"passed": False, "error": str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__, "seconds": None}
    json.dump(results, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("prepare", "check"):
        sys.exit(__doc__)
    {"prepare": prepare, "check": check}[sys.argv[1]](sys.argv[2])
