"""``gemmap import onnx``: small graphs built here with onnx.helper, imported op by op."""

from __future__ import annotations

import sys

import numpy as np
import onnx  # in the test extra: a missing package fails here rather than skipping
import pytest
from onnx import TensorProto, helper, numpy_helper

from gemmap.cli import main
from gemmap.errors import GemmapError
from gemmap.interop.onnx_graph import import_onnx, workload_from_model
from gemmap.workload import load_workload


def _init(name: str, shape: tuple[int, ...], dtype=np.float32):
    return numpy_helper.from_array(np.zeros(shape, dtype=dtype), name)


def _model(nodes, inputs, inits, opset: int = 20):
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def mlp(batch: int | str = 4):
    """Two linear layers with GELU between and a bias, then a ReLU (not costed)."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="fc1"),
        helper.make_node("Gelu", ["h1"], ["g1"], name="gelu"),
        helper.make_node("MatMul", ["g1", "w2"], ["h2"], name="fc2"),
        helper.make_node("Add", ["h2", "b2"], ["y"], name="bias"),
        helper.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    return _model(nodes, [("x", [batch, 64])], [_init("w1", (64, 128)), _init("w2", (128, 32)), _init("b2", (32,))])


def attention():
    """Scores of 4 heads (batched MatMul), Softmax, ·V, heads merged, output projection, LayerNorm."""
    nodes = [
        helper.make_node("MatMul", ["q", "kt"], ["scores"], name="qk"),
        helper.make_node("Softmax", ["scores"], ["probs"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["probs", "v"], ["ctx"], name="av"),
        helper.make_node("Transpose", ["ctx"], ["ctx_t"], name="merge_t", perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["ctx_t", "shape"], ["ctx2"], name="merge"),
        helper.make_node("MatMul", ["ctx2", "wo"], ["o"], name="out_proj"),
        helper.make_node("LayerNormalization", ["o", "gamma", "beta"], ["ln"], name="ln", axis=-1),
    ]
    inputs = [("q", [1, 4, 16, 8]), ("kt", [1, 4, 8, 16]), ("v", [1, 4, 16, 8])]
    inits = [
        numpy_helper.from_array(np.array([1, 16, 32], dtype=np.int64), "shape"),
        _init("wo", (32, 32)),
        _init("gamma", (32,)),
        _init("beta", (32,)),
    ]
    return _model(nodes, inputs, inits)


def convs():
    """A 3x3 stride-2 conv, a depthwise (grouped) conv, an asymmetric-padding conv, ReLU and a pool."""
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], name="conv", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["y"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "dw"], ["d"], name="dw", group=8, pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "w2"], ["e"], name="odd", pads=[0, 0, 1, 1]),
        helper.make_node("MaxPool", ["e"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
    ]
    inits = [_init("w", (8, 3, 3, 3)), _init("dw", (8, 1, 3, 3)), _init("w2", (8, 8, 2, 2))]
    return _model(nodes, [("x", [1, 3, 32, 32])], inits)


def test_mlp_with_gelu():
    result = workload_from_model(mlp(), "mlp", "mlp.onnx")
    assert result.spec == {
        "name": "mlp",
        "ops": [
            {"name": "fc1", "op": "matmul", "M": 4, "K": 64, "N": 128, "repeat": 1},
            {"name": "gelu", "op": "gelu", "rows": 4, "row_len": 128, "repeat": 1, "after": "fc1"},
            {"name": "fc2", "op": "matmul", "M": 4, "K": 128, "N": 32, "repeat": 1},
            {"name": "bias", "op": "add", "rows": 4, "row_len": 32, "repeat": 1, "after": "fc2"},
        ],
    }
    assert result.skipped == (("Relu", 1),)


def test_attention_block():
    result = workload_from_model(attention(), "attn", "attn.onnx")
    assert result.spec["ops"] == [
        {"name": "qk", "op": "matmul", "M": 16, "K": 8, "N": 16, "repeat": 4},
        {"name": "softmax", "op": "softmax", "rows": 16, "row_len": 16, "repeat": 4, "after": "qk"},
        {"name": "av", "op": "matmul", "M": 16, "K": 16, "N": 8, "repeat": 4},
        {"name": "out_proj", "op": "matmul", "M": 16, "K": 32, "N": 32, "repeat": 1},
        {"name": "ln", "op": "layernorm", "rows": 16, "row_len": 32, "repeat": 1, "after": "out_proj"},
    ]
    assert dict(result.skipped) == {"Transpose": 1, "Reshape": 1}


def test_convs():
    result = workload_from_model(convs(), "cnn", "cnn.onnx")
    common = {"B": 1, "stride": 1, "padding": 1, "dilation": 1}
    assert result.spec["ops"] == [
        {"name": "conv", "op": "conv", "B": 1, "C": 3, "K": 8, "P": 16, "Q": 16, "R": 3, "S": 3, "stride": 2,
         "padding": 1, "dilation": 1, "H": 32, "W": 32, "repeat": 1},
        {"name": "dw", "op": "conv", "C": 1, "K": 1, "P": 16, "Q": 16, "R": 3, "S": 3, "H": 16, "W": 16,
         "repeat": 8, **common},
    ]  # fmt: skip
    assert dict(result.skipped) == {"Relu": 1, "Conv (asymmetric padding)": 1, "MaxPool": 1}


def test_gemm_transposes_and_batched_broadcast():
    nodes = [
        helper.make_node("Gemm", ["a", "b", "c"], ["y"], name="gemm", transA=1, transB=1),
        helper.make_node("MatMul", ["y3", "batched"], ["z"], name="bmm"),
    ]
    inputs = [("a", [64, 8]), ("y3", [2, 1, 8, 16])]
    model = _model(nodes, inputs, [_init("b", (32, 64)), _init("c", (32,)), _init("batched", (3, 16, 5))])
    ops = workload_from_model(model, "g", "g.onnx").spec["ops"]
    assert ops == [
        {"name": "gemm", "op": "matmul", "M": 8, "K": 64, "N": 32, "repeat": 1},
        {"name": "bmm", "op": "matmul", "M": 8, "K": 16, "N": 5, "repeat": 6},
    ]


def test_dynamic_shapes_are_one_line_and_fixable():
    with pytest.raises(GemmapError) as exc:
        workload_from_model(mlp("batch"), "mlp", "mlp.onnx")
    msg = str(exc.value)
    assert msg == ("mlp.onnx: node 'fc1' (MatMul): tensor 'x' has a dynamic shape [batch, 64]; "
                   "fix it with --dim batch=SIZE")  # fmt: skip
    ops = workload_from_model(mlp("batch"), "mlp", "mlp.onnx", {"batch": 2}).spec["ops"]
    assert ops[0]["M"] == 2


def test_unknown_shape_after_a_vendor_operator_is_one_line():
    """ONNX cannot infer through a vendor operator; the op that needs that shape says so."""
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("FastGelu", ["y"], ["z"], name="fast_gelu", domain="com.microsoft"),
        helper.make_node("MatMul", ["z", "w2"], ["o"], name="mm2"),
    ]
    model = _model(nodes, [("x", [4, 16])], [_init("w", (16, 32)), _init("w2", (32, 8))])
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    with pytest.raises(GemmapError) as exc:
        workload_from_model(model, "m", "m.onnx")
    assert str(exc.value) == (
        "m.onnx: node 'mm2' (MatMul): tensor 'z' has an unknown shape; gemmap needs static shapes "
        "(export with fixed sizes)"
    )


def test_quantized_operators():
    """int8 graphs (Gemmini's datatype): QLinearMatMul's operands are inputs 0 and 3, ConvInteger's 0 and 1."""
    u8, i8 = np.uint8, np.int8
    scale = numpy_helper.from_array(np.array(0.5, dtype=np.float32), "s")
    nodes = [
        helper.make_node("ConvInteger", ["x", "w"], ["c"], name="qconv", pads=[1, 1, 1, 1]),
        helper.make_node("QLinearMatMul", ["a", "s", "za", "b", "s", "zb", "s", "zy"], ["y"], name="qmm"),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 4, 8, 8]),
        helper.make_tensor_value_info("a", TensorProto.UINT8, [6, 32]),
    ]
    inits = [
        _init("w", (8, 4, 3, 3), i8), _init("b", (32, 16), u8), scale,
        _init("za", (), u8), _init("zb", (), u8), _init("zy", (), u8),
    ]  # fmt: skip
    graph = helper.make_graph(nodes, "q", inputs, [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])
    assert workload_from_model(model, "q", "q.onnx").spec["ops"] == [
        {"name": "qconv", "op": "conv", "B": 1, "C": 4, "K": 8, "P": 8, "Q": 8, "R": 3, "S": 3, "stride": 1,
         "padding": 1, "dilation": 1, "H": 8, "W": 8, "repeat": 1},
        {"name": "qmm", "op": "matmul", "M": 6, "K": 32, "N": 16, "repeat": 1},
    ]  # fmt: skip


def test_rmsnorm_of_opset_23():
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["y"], name="mm"),
        helper.make_node("RMSNormalization", ["y", "g"], ["z"], name="rms", axis=-1),
    ]
    model = _model(nodes, [("x", [2, 8, 16])], [_init("w", (16, 32)), _init("g", (32,))], opset=23)
    assert workload_from_model(model, "m", "m.onnx").spec["ops"] == [
        {"name": "mm", "op": "matmul", "M": 16, "K": 16, "N": 32, "repeat": 1},
        {"name": "rms", "op": "rmsnorm", "rows": 16, "row_len": 32, "repeat": 1, "after": "mm"},
    ]


def test_no_matmul_is_an_error():
    model = _model([helper.make_node("Relu", ["x"], ["y"], name="r")], [("x", [4])], [])
    with pytest.raises(GemmapError, match=r"no MatMul, Gemm or 2-D Conv to map \(skipped: Relu x1\)"):
        workload_from_model(model, "m", "m.onnx")


def test_cli_writes_a_workload_that_maps(tmp_path, capsys):
    path = tmp_path / "attn.onnx"
    onnx.save(attention(), str(path))
    out = tmp_path / "attn.yaml"
    assert main(["import", "onnx", str(path), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "skipped, not costed: Transpose x1, Reshape x1" in printed
    text = out.read_text()
    assert "# Skipped (not costed, in no total): Transpose x1, Reshape x1." in text
    workload = load_workload(out)
    assert workload.layer_names == ["qk", "av", "out_proj"]
    assert [op.after for op in workload.nonlinear] == ["qk", "out_proj"]
    assert main(["map", str(out), "--search", "heuristic"]) == 0


def test_cli_errors(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00 not a model")
    assert main(["import", "onnx", str(bad), "-o", str(tmp_path / "x.yaml")]) == 2
    assert capsys.readouterr().err == f"gemmap: error: {bad}: not an ONNX model (the file does not parse as one)\n"
    with pytest.raises(SystemExit) as exc:
        main(["import", "onnx", str(bad), "--dim", "batch", "-o", str(tmp_path / "x.yaml")])
    assert exc.value.code == 2
    assert "expected NAME=SIZE" in capsys.readouterr().err


def test_without_the_onnx_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    with pytest.raises(GemmapError, match=r"pip install 'gemmap\[onnx\]'"):
        import_onnx(tmp_path / "m.onnx")
    assert main(["import", "onnx", str(tmp_path / "m.onnx"), "-o", str(tmp_path / "m.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "needs the 'onnx' package" in err
