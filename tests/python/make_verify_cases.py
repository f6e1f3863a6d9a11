"""Models that exercise kaiyuan's verification, written with the real `onnx` package.

    make_verify_cases.py OUT

OUT/ok/            Add+Relu with a symbolic batch dimension and safetensors test vectors
OUT/ok_wrong/      the same model with a reference output that is off
OUT/types/         string, bool and integer-id inputs (smoke run only)
OUT/external/      an initializer stored in external data beside the model
OUT/escape/        an initializer whose external data points outside the model's folder
OUT/hang/          a Loop that never ends
OUT/memory/        a ConstantOfShape of 4 GiB
OUT/nondet/        RandomNormal without a seed (runs differ)
OUT/garbage/       bytes that are not an ONNX model
OUT/rejected/      a well-formed model with an operator no runtime implements
OUT/zipmap/        a classifier-style output: a sequence of maps (scikit-learn's ZipMap)
"""

import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

OPSET = [helper.make_opsetid("", 17)]


def save(model, folder, name="model.onnx"):
    os.makedirs(folder, exist_ok=True)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(folder, name))


def add_relu():
    graph = helper.make_graph(
        [helper.make_node("Add", ["X", "B"], ["S"]), helper.make_node("Relu", ["S"], ["Y"])],
        "add_relu",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(np.array([0.5, -1.0, 2.0, -3.0], np.float32), "B")],
    )
    return helper.make_model(graph, opset_imports=OPSET, producer_name="kaiyuan-tests")


def main(out):
    x = np.array([[1.0, 2.0, -3.0, 4.0], [0.25, 0.5, 0.75, 1.0]], np.float32)
    y = np.maximum(x + np.array([0.5, -1.0, 2.0, -3.0], np.float32), 0)
    for name, ref in (("ok", y), ("ok_wrong", y + np.array([[0, 0, 0, 0], [0, 0.5, 0, 0]], np.float32))):
        save(add_relu(), os.path.join(out, name))
        save_file({"input.X": x, "output.Y": ref}, os.path.join(out, name, "model.test_vectors.safetensors"))

    graph = helper.make_graph(
        [
            helper.make_node("Identity", ["S"], ["S_out"]),
            helper.make_node("Not", ["B"], ["B_out"]),
            helper.make_node("Gather", ["E", "ids"], ["emb"]),
        ],
        "types",
        [
            helper.make_tensor_value_info("S", TensorProto.STRING, [2]),
            helper.make_tensor_value_info("B", TensorProto.BOOL, [3]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"]),
        ],
        [
            helper.make_tensor_value_info("S_out", TensorProto.STRING, [2]),
            helper.make_tensor_value_info("B_out", TensorProto.BOOL, [3]),
            helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["batch", "sequence", 2]),
        ],
        [numpy_helper.from_array(np.arange(32, dtype=np.float32).reshape(16, 2), "E")],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "types"))

    model = add_relu()
    model.ir_version = 8  # newer onnx releases default to an IR version ONNX Runtime may not read yet
    folder = os.path.join(out, "external")
    os.makedirs(folder, exist_ok=True)
    # onnx looks for an existing data file relative to the working directory
    here = os.getcwd()
    os.chdir(folder)
    try:
        onnx.save(model, "model.onnx", save_as_external_data=True,
                  all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
    finally:
        os.chdir(here)

    model = add_relu()
    model.ir_version = 8
    init = model.graph.initializer[0]
    raw = init.raw_data
    init.ClearField("raw_data")
    init.data_location = TensorProto.EXTERNAL
    for k, v in (("location", "../secret.bin"), ("offset", "0"), ("length", str(len(raw)))):
        entry = init.external_data.add()
        entry.key, entry.value = k, v
    folder = os.path.join(out, "escape")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(out, "secret.bin"), "wb") as f:
        f.write(raw)
    onnx.save(model, os.path.join(folder, "model.onnx"))

    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array([1.0], np.float32), "one")],
    )
    graph = helper.make_graph(
        [helper.make_node("Loop", ["M", "cond", "V"], ["V_final"], body=body)],
        "hang",
        [helper.make_tensor_value_info("V", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("V_final", TensorProto.FLOAT, [1])],
        [numpy_helper.from_array(np.array(2**62, np.int64), "M"), numpy_helper.from_array(np.array(True), "cond")],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "hang"))

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["X", "shape"], ["shape2"]),
            helper.make_node("ConstantOfShape", ["shape2"], ["Y"], value=numpy_helper.from_array(np.array([1.0], np.float32))),
        ],
        "memory",
        [helper.make_tensor_value_info("X", TensorProto.INT64, [2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["rows", "cols"])],
        [numpy_helper.from_array(np.array([32768, 32768], np.int64), "shape")],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "memory"))

    graph = helper.make_graph(
        [helper.make_node("RandomNormal", [], ["R"], shape=[1000], dtype=TensorProto.FLOAT), helper.make_node("Add", ["R", "X"], ["Y"])],
        "nondet",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1000])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1000])],
    )
    save(helper.make_model(graph, opset_imports=OPSET), os.path.join(out, "nondet"))

    graph = helper.make_graph(
        [helper.make_node("NotAnOperator", ["X"], ["Y"])],
        "rejected",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=OPSET)
    model.ir_version = 8
    os.makedirs(os.path.join(out, "rejected"), exist_ok=True)
    onnx.save(model, os.path.join(out, "rejected", "model.onnx"))  # not checked: it is invalid on purpose

    graph = helper.make_graph(
        [helper.make_node("ZipMap", ["X"], ["Z"], domain="ai.onnx.ml", classlabels_int64s=[0, 1])],
        "zipmap",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
        [helper.make_value_info("Z", helper.make_sequence_type_proto(helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))],
    )
    model = helper.make_model(graph, opset_imports=OPSET + [helper.make_opsetid("ai.onnx.ml", 3)])
    save(model, os.path.join(out, "zipmap"))

    os.makedirs(os.path.join(out, "garbage"), exist_ok=True)
    with open(os.path.join(out, "garbage", "model.onnx"), "wb") as f:
        f.write(b"\x0a\xff\xff\xff\xff\x0fnot a model")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
