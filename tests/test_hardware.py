"""System specs: every shipped YAML validates, agrees with the peer's own system YAML, and bad files
give one clear error."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from servopt import hardware as systems
from servopt.errors import ServoptError, UnknownNameError
from servopt.hardware import SystemSpec, load_system, system_names

REQUIRED = {"h100_sxm", "h200_sxm", "b200_sxm", "gb200", "a100_sxm", "l40s"}
# The peer's flops keys -> our compute dtypes.
PEER_FLOPS = {
    "bfloat16_tc_flops": "bf16",
    "fp8_tc_flops": "fp8",
    "int8_tc_flops": "int8",
    "fp4_tc_flops": "fp4",
}


def _peer_systems_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("aiconfigurator_core")
    except ImportError:
        return None
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "systems"


def _peer_yaml(name: str) -> dict:
    folder = _peer_systems_dir()
    if folder is None:
        pytest.skip("aiconfigurator-core (the peer) is not installed")
    path = folder / f"{name}.yaml"
    if not path.is_file():
        pytest.skip(f"the peer has no {name}.yaml")
    return yaml.safe_load(path.read_text())


def test_required_systems_are_shipped():
    assert set(system_names()) >= REQUIRED


@pytest.mark.parametrize("name", system_names())
def test_shipped_spec_loads_and_is_coherent(name):
    spec = load_system(name)
    assert isinstance(spec, SystemSpec)
    assert spec.name == name
    assert spec.sources and all(s.strip() for s in spec.sources)
    flops = spec.gpu.peak_flops_per_s
    assert "bf16" in flops
    # Lower precision never runs slower than bf16 on tensor cores (B300/GB300 int8 is the exception:
    # Blackwell Ultra cut its int8 rate).
    if "fp8" in flops:
        assert flops["fp8"] >= flops["bf16"]
    if "fp4" in flops:
        assert flops["fp4"] >= flops["fp8"]
    assert spec.node.gpus_per_nvlink_domain >= spec.node.gpus_per_node
    assert set(spec.empirical.nccl_mem_bytes) == {1, 2, 4, 8}


def test_gb200_is_an_nvl72_rack_of_four_gpu_trays():
    spec = load_system("gb200")
    assert (spec.node.gpus_per_node, spec.node.gpus_per_nvlink_domain) == (4, 72)
    # Inside the rack collectives stay on NVLink; beyond it they fall to the network.
    assert spec.collective_bw_bytes_per_s(72) == spec.node.nvlink_bw_bytes_per_s
    assert spec.collective_bw_bytes_per_s(144) == spec.node.network_bw_bytes_per_s
    assert spec.inter_node_bw_bytes_per_s == spec.node.nvlink_bw_bytes_per_s


def test_hgx_inter_node_traffic_uses_the_network():
    spec = load_system("h200_sxm")
    assert spec.collective_bw_bytes_per_s(8) == spec.node.nvlink_bw_bytes_per_s
    assert spec.collective_bw_bytes_per_s(16) == spec.node.network_bw_bytes_per_s
    assert spec.inter_node_bw_bytes_per_s == spec.node.network_bw_bytes_per_s


def test_missing_dtype_names_what_the_system_has():
    with pytest.raises(UnknownNameError, match="a100_sxm has no fp8") as err:
        load_system("a100_sxm").flops_per_s("fp8")
    assert "bf16" in str(err.value)


def test_unknown_system_suggests_the_closest():
    with pytest.raises(UnknownNameError, match="did you mean h200_sxm"):
        load_system("h200_sx")


# ----------------------------------------------------------------------------- broken files


@pytest.fixture
def tmp_systems(tmp_path, monkeypatch):
    monkeypatch.setattr(systems, "systems_dir", lambda: tmp_path)
    load_system.cache_clear()
    yield tmp_path
    load_system.cache_clear()


def _good_spec() -> dict:
    return yaml.safe_load((systems.data_root() / "systems" / "h200_sxm.yaml").read_text())


def test_broken_yaml_syntax_is_one_clear_error(tmp_systems):
    (tmp_systems / "bad.yaml").write_text("gpu: [unclosed\n")
    with pytest.raises(ServoptError, match=r"system: 'bad': invalid spec .*bad\.yaml"):
        load_system("bad")


def test_missing_field_is_named(tmp_systems):
    raw = _good_spec()
    del raw["gpu"]["mem_bw_bytes_per_s"]
    (tmp_systems / "nobw.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ServoptError, match="mem_bw_bytes_per_s"):
        load_system("nobw")


def test_out_of_range_and_unknown_keys_are_rejected(tmp_systems):
    raw = _good_spec()
    raw["empirical"]["mem_bw_efficiency"] = 1.5
    (tmp_systems / "eff.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ServoptError, match="mem_bw_efficiency"):
        load_system("eff")
    raw = _good_spec()
    raw["gpu"]["tflops"] = 1
    (tmp_systems / "extra.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ServoptError, match="tflops"):
        load_system("extra")


def test_unknown_dtype_key_is_rejected(tmp_systems):
    raw = _good_spec()
    raw["gpu"]["peak_flops_per_s"]["fp6"] = 1e15
    (tmp_systems / "fp6.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ServoptError, match="fp6"):
        load_system("fp6")


# ----------------------------------------------------------------------------- the peer's numbers


def _shared_systems() -> list[str]:
    folder = _peer_systems_dir()
    if folder is None:
        return sorted(REQUIRED)  # the tests skip with a reason
    return [n for n in system_names() if (folder / f"{n}.yaml").is_file()]


@pytest.mark.peer
@pytest.mark.parametrize("name", _shared_systems())
def test_spec_equals_the_peer_yaml(name):
    """Same constants as the peer's system YAML, so predictions compare like for like."""
    peer = _peer_yaml(name)
    ours = load_system(name)
    gpu, node, misc = peer["gpu"], peer["node"], peer["misc"]
    assert ours.gpu.mem_bw_bytes_per_s == pytest.approx(gpu["mem_bw"], rel=1e-12)
    assert ours.gpu.mem_capacity_bytes == gpu["mem_capacity"]
    assert ours.gpu.sm_version == gpu["sm_version"]
    assert ours.gpu.power_w == gpu["power"]
    expected_flops = {ours_key: gpu[key] for key, ours_key in PEER_FLOPS.items() if key in gpu}
    assert ours.gpu.peak_flops_per_s == pytest.approx(expected_flops, rel=1e-12)
    assert ours.empirical.mem_bw_efficiency == gpu["mem_bw_empirical_scaling_factor"]
    assert ours.empirical.mem_op_constant_latency_s == pytest.approx(gpu["mem_empirical_constant_latency"])
    assert ours.node.gpus_per_node == node["num_gpus_per_node"]
    assert ours.node.gpus_per_nvlink_domain == node.get("num_gpus_per_rack", node["num_gpus_per_node"])
    assert ours.node.nvlink_bw_bytes_per_s == node["intra_node_bw"]
    assert ours.inter_node_bw_bytes_per_s == node["inter_node_bw"]
    assert ours.node.network_bw_bytes_per_s == node.get("inter_rack_bw", node["inter_node_bw"])
    assert ours.node.pcie_bw_bytes_per_s == node["pcie_bw"]
    assert ours.empirical.p2p_latency_s == pytest.approx(node["p2p_latency"])
    assert ours.empirical.nccl_mem_bytes == {int(k): v for k, v in misc["nccl_mem"].items()}
    assert ours.empirical.other_mem_bytes == misc["other_mem"]
    assert ours.empirical.nccl_version == str(misc["nccl_version"])


@pytest.mark.peer
@pytest.mark.parametrize("name", _shared_systems())
def test_collective_bandwidth_matches_the_peer_topology(name):
    """Our node/NVLink-domain split reproduces the peer's intra-node / rack / inter-rack choice."""
    system_spec = pytest.importorskip("aiconfigurator_core.sdk.system_spec")
    peer = system_spec.SystemSpec(_peer_yaml(name))
    ours = load_system(name)
    for num_gpus in (1, 2, 4, 8, 16, 32, 64, 72, 128, 144, 512, 4096):
        assert ours.collective_bw_bytes_per_s(num_gpus) == peer.get_p2p_bandwidth(num_gpus), num_gpus


@pytest.mark.peer
@pytest.mark.parametrize("name", system_names())
def test_measured_data_names_a_peer_folder_with_tables(name):
    folder = _peer_systems_dir()
    if folder is None:
        pytest.skip("aiconfigurator-core (the peer) is not installed")
    data = folder / "data" / name
    has_tables = data.is_dir() and any(data.rglob("*.parquet"))
    spec = load_system(name)
    if spec.measured_data is None:
        assert not has_tables, f"{name} has measured grids in {data}; set measured_data"
    else:
        assert spec.measured_data == name
        assert has_tables, f"{data} holds no parquet tables"
