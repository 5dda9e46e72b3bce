import csv
import json
import subprocess

import jsonschema
import yaml
from k8s_schema import schema_for

from servopt.config import load_experiments
from servopt.report.document import result_document
from servopt.report.save import save_run
from servopt.report.schema import ResultDoc


def test_save_dir_files_open(qwen8_result, tmp_path):
    experiments, result = qwen8_result
    doc = result_document(result)
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
        # The resolved config reproduces the experiment, with the backend version it used written in.
        (reloaded,) = load_experiments(folder / "config.yaml")
        assert exp.backend_version is None and reloaded.backend_version == run.versions[exp.roles[0]]
        assert reloaded.model_dump(exclude={"name"}) == exp.model_copy(
            update={"backend_version": reloaded.backend_version}
        ).model_dump(exclude={"name"})
        top1 = folder / "top1"
        for doc in yaml.safe_load_all((top1 / "k8s_deploy.yaml").read_text()):
            jsonschema.validate(doc, schema_for(doc))
        subprocess.run(["bash", "-n", str(top1 / "run.sh")], check=True)


def test_second_save_gets_its_own_folder(qwen8_result, tmp_path):
    _, result = qwen8_result
    doc = result_document(result)
    a = save_run(result, doc, tmp_path, top_n=1)
    b = save_run(result, doc, tmp_path, top_n=1)
    assert a != b and a.parent == b.parent


def test_saved_config_reruns_to_the_same_answer(qwen8_result, tmp_path):
    """The run folder's config.yaml pins every resolved value; running it again gives the same
    document (winner, verdict, tables, frontier) as the run that wrote it."""
    from servopt.pipeline import run_experiments

    _, result = qwen8_result
    doc = result_document(result)
    root = save_run(result, doc, tmp_path, top_n=5)
    text = (root / "config.yaml").read_text()
    assert "backend_version: null" not in text and "--max_replica_types 2" in text
    reloaded = load_experiments(root / "config.yaml")
    assert [e.name for e in reloaded] == [r.name for r in result.runs]
    again = result_document(run_experiments(reloaded))
    assert json.dumps(again, sort_keys=True, default=str) == json.dumps(doc, sort_keys=True, default=str)
