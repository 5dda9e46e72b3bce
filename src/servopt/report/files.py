"""Deployment files of a run: a top configuration's, or the packed deployment's.

Engine configs, Kubernetes manifests (Dynamo; plain when the deployment runs without Dynamo) and
``run.sh``, as ``{relative path: text}``; ``--save_dir`` writes them, the web app serves them.
"""

from __future__ import annotations

from servopt.errors import ServoptError
from servopt.report import deploy, k8s
from servopt.report.rows import deployment_name, deployment_plan, deployment_row, packed_plans
from servopt.run_result import RunResult


def deployment_files(
    result: RunResult, experiment_name: str, rank: int = 1, image: str | None = None
) -> dict:
    """Engine configs, Kubernetes manifests (Dynamo; plain when it can run without Dynamo) and run.sh
    for one top configuration."""
    run = result.run(experiment_name)
    if not run.top or not 1 <= rank <= len(run.top):
        raise ServoptError(
            "rank", rank, f"experiment {experiment_name} has {len(run.top)} top configurations"
        )
    plan = deployment_plan(run, deployment_row(run, run.top[rank - 1]))
    files = deploy.engine_files(plan)
    files["k8s_deploy.yaml"] = k8s.dynamo_yaml(plan, image=image)
    plain = k8s.plain_yaml(plan)
    if plain is not None:
        files["k8s_plain.yaml"] = plain
    files["run.sh"] = deploy.run_script(plan)
    return files


def packed_deployment_files(result: RunResult, experiment_name: str, image: str | None = None) -> dict:
    """The packed deployment of an experiment (its replica shapes side by side): each shape's
    engine configs and run script under ``g<i>/``, and one Kubernetes graph for all of them."""
    run = result.run(experiment_name)
    if run.mode is None:
        raise ServoptError("experiment", experiment_name, "has no feasible deployment")
    row = deployment_row(run, run.mode.packed)
    plans = packed_plans(run, row)
    files = {}
    for i, plan in enumerate(plans, start=1):
        files.update({f"g{i}/{name}": text for name, text in deploy.engine_files(plan).items()})
        files[f"g{i}/run.sh"] = deploy.run_script(plan)
    name = deployment_name(run.experiment.name, row["mode"])
    files["k8s_deploy.yaml"] = k8s.packed_yaml(name, plans, image)
    return files
