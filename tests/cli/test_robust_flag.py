"""``--robust`` on the search commands (and the YAML's ``robust:``): plans at the pessimistic end
of the calibration's 80% band, is written back to the saved config.yaml, and is refused (exit 2,
one line naming it) without bands or with a load."""

import json
import subprocess
import sys

import pytest
import yaml

BASE = ["--model", "QWEN3_32B", "--total_gpus", "8", "--system", "h200_sxm"]


def servopt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "servopt", *args], capture_output=True, text=True, timeout=600
    )


def test_robust_text_json_and_saved_config(tmp_path):
    out = servopt("cli", "default", *BASE, "--robust", "--top_n", "1", "--save_dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "robust: planned at the pessimistic end; nominal: same plan" in out.stdout
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    saved = json.loads((run_dir / "result.json").read_text())
    assert saved["robustness"]["planned_at"] == "pessimistic" and saved["robustness"]["holds"] is True
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["agg"]["robust"] is True and config["disagg"]["robust"] is True
    # The saved config reruns the same plan.
    again = servopt("cli", "exp", "--yaml_path", str(run_dir / "config.yaml"), "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["best"] == saved["best"]


def test_a_nominal_run_saves_no_robust_key(tmp_path):
    out = servopt("cli", "default", *BASE, "--json", "--save_dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    assert "robust" not in yaml.safe_load((run_dir / "config.yaml").read_text())["agg"]


def test_exp_flag_and_yaml_key_agree(tmp_path):
    spec = {
        "agg": {"mode": "patch", "serving_mode": "agg", "model_name": "QWEN3_32B", "total_gpus": 8,
                "system_name": "h200_sxm", "robust": True},
    }  # fmt: skip
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(spec))
    by_key = servopt("cli", "exp", "--yaml_path", str(path), "--json")
    spec["agg"].pop("robust")
    path.write_text(yaml.safe_dump(spec))
    by_flag = servopt("cli", "exp", "--yaml_path", str(path), "--robust", "--json")
    assert by_key.returncode == 0 and by_flag.returncode == 0, by_key.stderr + by_flag.stderr
    assert json.loads(by_key.stdout)["best"] == json.loads(by_flag.stdout)["best"]
    assert json.loads(by_key.stdout)["robustness"]["planned_at"] == "pessimistic"


@pytest.mark.parametrize(
    ("args", "yaml_value"),
    [
        (["--robust", "--calibration", "none"], None),
        (["--robust", "--request_rate", "4"], None),
        (["--robust", "--concurrency", "8"], None),
        ([], "yes"),
        ([], True),  # with calibration: none
    ],
)
def test_bad_robust_is_one_line_exit_2(tmp_path, args, yaml_value):
    if yaml_value is None:
        out = servopt("cli", "default", *BASE, *args)
    else:
        spec = {"agg": {"mode": "patch", "serving_mode": "agg", "model_name": "QWEN3_32B", "total_gpus": 8,
                        "system_name": "h200_sxm", "robust": yaml_value, "calibration": "none"}}  # fmt: skip
        path = tmp_path / "exp.yaml"
        path.write_text(yaml.safe_dump(spec))
        out = servopt("cli", "exp", "--yaml_path", str(path))
    assert out.returncode == 2, out.stdout + out.stderr
    assert "robust" in out.stderr and "Traceback" not in out.stderr
