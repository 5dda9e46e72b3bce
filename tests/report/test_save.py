import csv
import json
import subprocess

import yaml

from servopt.config import load_experiments
from servopt.report.save import save_run
from servopt.report.schema import ResultDoc


def test_save_dir_files_open(qwen8_result, tmp_path):
    experiments, result = qwen8_result
    doc = result.to_json()
    root = save_run(result, doc, tmp_path, top_n=2)
    ResultDoc.model_validate(json.loads((root / "result.json").read_text()))
    assert (root / "pareto_frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (root / "pareto_frontier.html").read_text()
    assert "<svg" in html and html.count("data-tip=") == len(doc["pareto"])
    for run, exp in zip(result.runs, experiments, strict=True):
        folder = root / run.name
        with (folder / "best_configs.csv").open() as fh:
            rows = list(csv.DictReader(fh))
        assert float(rows[0]["tokens_per_s_per_gpu"]) > 0 and rows[0]["rank"] == "1"
        with (folder / "pareto.csv").open() as fh:
            assert len(list(csv.DictReader(fh))) == len(run.mode.frontier)
        # The resolved config reproduces the experiment.
        (reloaded,) = load_experiments(folder / "config.yaml")
        assert reloaded.model_dump(exclude={"name"}) == exp.model_dump(exclude={"name"})
        top1 = folder / "top1"
        yaml.safe_load((top1 / "k8s_deploy.yaml").read_text())
        subprocess.run(["bash", "-n", str(top1 / "run.sh")], check=True)


def test_second_save_gets_its_own_folder(qwen8_result, tmp_path):
    _, result = qwen8_result
    doc = result.to_json()
    a = save_run(result, doc, tmp_path, top_n=1)
    b = save_run(result, doc, tmp_path, top_n=1)
    assert a != b and a.parent == b.parent
