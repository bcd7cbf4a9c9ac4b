"""The TensorRT plugin library: CMake/nvcc build, the C++ field round trip (ctest), its exported symbols and
link dependencies, and registration in the real TensorRT 11 lean runtime from PyPI (no GPU needed)."""

import ctypes
import subprocess

import onnx
import pytest
from onnx import helper

from export_models import small_model
from vadedge.export.backend import DOMAIN, PLUGIN_LIBRARY
from vadedge.export.onnx_export import export_onnx
from vadedge.export.plugin_library import EXPECTED_CREATORS, check_creators


def test_ctest_field_round_trip(plugin_build):
    proc = subprocess.run(["ctest", "--test-dir", str(plugin_build), "--output-on-failure", "-V"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "VadMemoryRead k survives build -> runtime (5)" in proc.stdout and "0 failure(s)" in proc.stdout


def test_library_exports_only_the_entry_points_and_needs_no_libnvinfer(plugin_build):
    lib = plugin_build / PLUGIN_LIBRARY
    handle = ctypes.CDLL(str(lib))
    assert handle.getCreators and handle.setLoggerFinder
    with pytest.raises(AttributeError):
        handle.launchMemoryRead  # kernels stay internal (version script)
    ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
    assert "nvinfer" not in ldd and "libcudart.so" not in ldd  # cudart is linked statically


@pytest.fixture(scope="module")
def lean():
    trt = pytest.importorskip("tensorrt_lean", reason="TensorRT lean runtime not installed (pip install tensorrt-lean-cu13)")
    return trt


def test_lean_runtime_registers_every_creator(plugin_build, lean):
    checks = check_creators(lean, plugin_build / PLUGIN_LIBRARY)
    assert [c.name for c in checks] == list(EXPECTED_CREATORS)
    for c in checks:
        assert c.ok, c
    # Loading the same creators twice is refused by TensorRT; load_into_registry makes it a no-op.
    assert lean.get_plugin_registry().load_library(str(plugin_build / PLUGIN_LIBRARY)) is None


def test_every_custom_node_of_an_export_has_a_creator_taking_its_attributes(plugin_build, lean, tmp_path):
    proto = onnx.load(str(export_onnx(small_model("mome"), tmp_path / "m.onnx").path))
    nodes = [n for n in proto.graph.node if n.domain == DOMAIN]
    fields, keys = {}, set()
    for n in nodes:
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        keys.add((n.op_type, attrs.pop("plugin_version").decode(), attrs.pop("plugin_namespace").decode()))
        fields[n.op_type] = attrs
    checks = check_creators(lean, plugin_build / PLUGIN_LIBRARY, sample_fields=fields)  # loads the library
    assert all(c.ok for c in checks)
    for op_type, version, namespace in keys:  # what the ONNX parser will look up for each node
        assert lean.get_plugin_registry().get_creator(op_type, version, namespace) is not None
    for op, attrs in fields.items():
        assert set(attrs) == set(EXPECTED_CREATORS[op])  # the parser passes exactly the declared fields
