"""Writes clean model files with the real libraries that produce them in the wild, plus a few
hostile twins, into the directory given as argument 1; prints one line per file:
`<expected verdict> <relative path>`. The scanner must agree with every line.
"""
import json
import os
import pickle
import sys
import zlib
import gzip

import gguf
import h5py
import joblib
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import save_file

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
lines = []


def path(name):
    p = os.path.join(out, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    return p


def expect(verdict, name):
    lines.append(f"{verdict} {name}")


# NumPy: plain, structured, object arrays of plain values, npz plain and compressed.
np.save(path("numpy/float.npy"), rng.standard_normal((16, 8), dtype=np.float32))
expect("clean", "numpy/float.npy")
np.save(path("numpy/structured.npy"), np.zeros(4, dtype=[("x", "<f4"), ("y", "<i8")]))
expect("clean", "numpy/structured.npy")
np.save(path("numpy/objects.npy"), np.array([1, "two", 3.0, None], dtype=object), allow_pickle=True)
expect("clean", "numpy/objects.npy")
np.savez(path("numpy/arrays.npz"), a=np.arange(100), b=np.ones((3, 3)))
expect("clean", "numpy/arrays.npz")
np.savez_compressed(path("numpy/compressed.npz"), a=np.arange(100000), b=rng.standard_normal(1000))
expect("clean", "numpy/compressed.npz")

# joblib: plain, compressed (zlib, gzip), and a hostile pickle compressed the same way.
model = {"coef": rng.standard_normal((4, 3)), "intercept": np.zeros(3), "classes": ["a", "b", "c"], "meta": {"alpha": 0.1}}
joblib.dump(model, path("joblib/model.joblib"))
expect("clean", "joblib/model.joblib")
joblib.dump(model, path("joblib/model_z.joblib"), compress=3)
expect("clean", "joblib/model_z.joblib")
joblib.dump(model, path("joblib/model.joblib.gz"), compress=("gzip", 3))
expect("clean", "joblib/model.joblib.gz")


class Exploit:
    def __reduce__(self):
        return (os.system, ("id",))


evil = pickle.dumps(Exploit(), protocol=4)
with open(path("joblib/evil_z.joblib"), "wb") as f:
    f.write(zlib.compress(evil))
expect("malicious", "joblib/evil_z.joblib")
with open(path("joblib/evil.pkl.gz"), "wb") as f:
    f.write(gzip.compress(evil))
expect("malicious", "joblib/evil.pkl.gz")

# safetensors with metadata, many tensors of several dtypes.
tensors = {f"layers.{i}.weight": rng.standard_normal((8, 8)).astype(np.float16 if i % 2 else np.float32) for i in range(12)}
tensors["embed.int"] = np.arange(10, dtype=np.int64)
tensors["mask"] = np.array([True, False, True])
save_file(tensors, path("safetensors/model.safetensors"), metadata={"format": "pt", "note": "generated"})
expect("clean", "safetensors/model.safetensors")

# ONNX: MatMul + If with subgraphs, external data in a sub-folder, a local function.
W = numpy_helper.from_array(rng.standard_normal((64, 64)).astype(np.float32), name="W")
then_graph = helper.make_graph([helper.make_node("Identity", ["y"], ["z"])], "then", [], [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 64])])
else_graph = helper.make_graph([helper.make_node("Neg", ["y"], ["z2"])], "else", [], [helper.make_tensor_value_info("z2", TensorProto.FLOAT, [1, 64])])
graph = helper.make_graph(
    [
        helper.make_node("MatMul", ["x", "W"], ["y"]),
        helper.make_node("Gelu", ["y"], ["g"], domain="local.fn"),
        helper.make_node("If", ["cond"], ["out"], then_branch=then_graph, else_branch=else_graph),
    ],
    "main",
    [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64]), helper.make_tensor_value_info("cond", TensorProto.BOOL, [])],
    [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 64])],
    initializer=[W],
)
gelu = helper.make_function("local.fn", "Gelu", ["X"], ["Y"], [helper.make_node("Relu", ["X"], ["Y"])], [helper.make_opsetid("", 17)])
m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("local.fn", 1)], functions=[gelu])
os.makedirs(path("onnx/weights/x").rsplit("/", 1)[0], exist_ok=True)
onnx.save_model(m, path("onnx/model.onnx"), save_as_external_data=True, all_tensors_to_one_file=True, location="weights/model.onnx.data", size_threshold=0)
expect("clean", "onnx/model.onnx")
expect("clean", "onnx/weights/model.onnx.data")
# The same model with its external data pointing outside the folder.
for t in m.graph.initializer:
    for entry in t.external_data:
        if entry.key == "location":
            entry.value = "../../../etc/passwd"
onnx.save_model(m, path("onnx/escape.onnx"))
expect("malicious", "onnx/escape.onnx")

# GGUF with many metadata keys, a tokenizer vocabulary and an ordinary chat template.
w = gguf.GGUFWriter(path("gguf/model.gguf"), "llama")
w.add_name("tiny")
w.add_context_length(2048)
w.add_block_count(2)
for i in range(300):
    w.add_uint32(f"custom.counter_{i}", i)
    w.add_string(f"custom.text_{i}", f"value {i}")
w.add_token_list([f"tok{i}" for i in range(2000)])
w.add_token_scores([0.0] * 2000)
w.add_chat_template("{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] }}{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
w.add_tensor("token_embd.weight", rng.standard_normal((2000, 16)).astype(np.float32))
w.add_tensor("output_norm.weight", np.ones(16, dtype=np.float16))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
expect("clean", "gguf/model.gguf")

# HDF5 with a Keras-style model_config attribute (Dense only) and weights.
config = {"class_name": "Sequential", "config": {"name": "seq", "layers": [{"module": "keras.layers", "class_name": "Dense", "config": {"units": 4}}]}}
with h5py.File(path("keras/model.h5"), "w") as f:
    f.attrs["model_config"] = json.dumps(config)
    f.attrs["keras_version"] = "2.15.0"
    f.create_dataset("model_weights/dense/kernel", data=rng.standard_normal((256, 256)).astype(np.float32))
expect("clean", "keras/model.h5")
config["config"]["layers"].append({"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAAAAAAAAEAAAACAAAAQwAAAHMIAAAAfABkARcAUwApAk4p", None, None]}})
with h5py.File(path("keras/lambda.h5"), "w") as f:
    f.create_dataset("model_weights/dense/kernel", data=rng.standard_normal((512, 512)).astype(np.float32))
    f.attrs["model_config"] = json.dumps(config)
expect("malicious", "keras/lambda.h5")

print("\n".join(lines))
