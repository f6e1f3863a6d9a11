"""Writes the models the file viewer test looks at into the directory given as argument 1:
`model.gguf` written with the `gguf` package as llama.cpp's converters write it, and
`model.onnx` built with `onnx.helper` (a symbolic batch dimension, two opset domains, metadata
props, an initializer also listed as an input as IR < 4 models do, and a sequence output).
"""
import os
import sys

import gguf
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(21)

w = gguf.GGUFWriter(os.path.join(out, "model.gguf"), "llama")
w.add_name("viewer-tiny")
w.add_license("apache-2.0")
w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
w.add_context_length(4096)
w.add_block_count(1)
w.add_token_list([f"tok{i}" for i in range(3000)])
w.add_token_scores([0.0] * 3000)
w.add_tensor("token_embd.weight", rng.standard_normal((3000, 16)).astype(np.float16))
w.add_tensor("output_norm.weight", np.ones(16, dtype=np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

W = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W")
B = numpy_helper.from_array(np.zeros(4, dtype=np.float32), "B")
graph = helper.make_graph(
    [
        helper.make_node("Gemm", ["features", "W", "B"], ["scores"]),
        helper.make_node("SequenceConstruct", ["scores"], ["history"]),
    ],
    "viewer",
    [
        helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 8]),
        helper.make_tensor_value_info("W", TensorProto.FLOAT, [8, 4]),
    ],
    [
        helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", 4]),
        helper.make_tensor_sequence_value_info("history", TensorProto.FLOAT, None),
    ],
    initializer=[W, B],
)
model = helper.make_model(
    graph,
    opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    producer_name="kaiyuan-viewer-test",
    producer_version="1.2",
)
helper.set_model_props(model, {"author": "kaiyuan tests", "licence": "apache-2.0"})
onnx.save_model(model, os.path.join(out, "model.onnx"))
