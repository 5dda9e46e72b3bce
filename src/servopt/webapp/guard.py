"""What the web app refuses before the configuration loader sees a request.

The CLI trusts its user: a model may be a ``config.json`` path and a profile a YAML file. A browser
is not trusted: only registry model names and shipped profile names are accepted (no file is opened
or even probed on a request's behalf), and YAML that would expand or enumerate without bound
(thousands of experiments, huge parallel lists) is refused with a problem at its line, the same
shape as the loader's own problems. Limits the CLI applies too (file size, alias expansion, nesting,
name length) are the loader's, in ``servopt.limits``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

from servopt.config import DefaultCatalog, Problem
from servopt.config.profiles import looks_like_path
from servopt.config.source import Document, parse_yaml
from servopt.errors import UnknownNameError
from servopt.models.arch import ModelArch

# Experiments in one YAML text.
MAX_EXPERIMENTS = 16
# Items in one YAML list (num_gpu_per_replica for 4096 GPUs in steps of 8 has 512).
MAX_LIST_ITEMS = 512
# tp x pp x dp x moe_tp x moe_ep (x cp) distinct combinations in one worker config; the seed's example has 64,
# the peer's widest default about 600.
MAX_LAYOUT_COMBINATIONS = 4096
PARALLEL_LISTS = ("tp_list", "pp_list", "dp_list", "moe_tp_list", "moe_ep_list")
EXPS_KEY = "exps"
WEB_SOURCE = "registry model names only (no file paths)"
# The shipped calibration profile or the raw model; no profile file is opened for a browser.
WEB_CALIBRATIONS = ("default", "none")


@cache
def _model_index() -> dict[str, str]:
    """Case-insensitive name, alias and HF id -> canonical registry name."""
    from servopt.models.registry import list_models

    index: dict[str, str] = {}
    for model in list_models():
        if model.source == "config_json":
            continue
        for key in (model.name, model.hf_id, *model.aliases):
            if key:
                index.setdefault(key.casefold(), model.name)
    return index


def web_model_names() -> list[str]:
    return sorted(set(_model_index().values()))


class WebCatalog(DefaultCatalog):
    """The real catalog, except that a model must be a registry name, alias or HF id."""

    def resolve_model(self, name: str) -> ModelArch:
        canonical = _model_index().get(str(name).strip().casefold())
        if canonical is None:
            raise UnknownNameError(
                "model_name", name, f"unknown model; the web app accepts {WEB_SOURCE}", web_model_names()
            )
        return super().resolve_model(canonical)


def _walk_lists(doc: Document, node: object, path: tuple, problems: list[Problem]) -> None:
    if isinstance(node, dict):
        lists = [node.get(k) for k in PARALLEL_LISTS]
        if all(isinstance(v, list) for v in lists):
            combos = math.prod(len({repr(x) for x in v}) for v in lists)
            cps = node.get("cp_list")  # optional: absent means [1]
            combos *= len({repr(x) for x in cps}) if isinstance(cps, list) else 1
            if combos > MAX_LAYOUT_COMBINATIONS:
                problems.append(
                    doc.problem(
                        path,
                        f"the parallel lists give {combos} combinations; the web "
                        f"app allows at most {MAX_LAYOUT_COMBINATIONS}",
                    )
                )
        for k, v in node.items():
            _walk_lists(doc, v, (*path, k), problems)
    elif isinstance(node, list):
        if len(node) > MAX_LIST_ITEMS:
            problems.append(
                doc.problem(path, f"a list of {len(node)} items; the web app allows at most {MAX_LIST_ITEMS}")
            )
            return
        for i, v in enumerate(node):
            _walk_lists(doc, v, (*path, i), problems)


def _experiment_problems(doc: Document, name: object, body: object) -> list[Problem]:
    if not isinstance(body, dict):
        return []
    # Model names need no check here: WebCatalog refuses anything but registry names, and the
    # loader reports that at the model_name line.
    problems: list[Problem] = []
    profiles = body.get("profiles")
    if isinstance(profiles, list):
        for i, ref in enumerate(profiles):
            if isinstance(ref, str) and looks_like_path(ref):
                problems.append(
                    doc.problem(
                        (name, "profiles", i),
                        "profile files are not read from the web; use a shipped profile",
                        value=ref,
                        allowed=_shipped_profiles(),
                    )
                )
    calibration = body.get("calibration")
    if isinstance(calibration, str) and calibration not in WEB_CALIBRATIONS:
        problems.append(
            doc.problem(
                (name, "calibration"),
                "calibration profile files are not read from the web; use default or none",
                value=calibration,
                allowed=WEB_CALIBRATIONS,
            )
        )
    return problems


def _shipped_profiles() -> Sequence[str]:
    from servopt.config.profiles import shipped_profile_names

    return shipped_profile_names()


def yaml_problems(text: str, name: str) -> list[Problem]:
    """Problems that make a YAML text unfit for the web app; empty when the loader may take it."""
    doc, _ = parse_yaml(text, name)
    if doc is None or not isinstance(doc.data, dict):
        return []  # syntax, size and shape errors are the loader's to report
    experiments = [k for k in doc.data if k != EXPS_KEY]
    if len(experiments) > MAX_EXPERIMENTS:
        return [
            doc.problem(
                (experiments[MAX_EXPERIMENTS],),
                f"{len(experiments)} experiments; the web app runs at most {MAX_EXPERIMENTS} at once",
                key=True,
            )
        ]
    problems: list[Problem] = []
    _walk_lists(doc, doc.data, (), problems)
    for key in experiments:
        problems.extend(_experiment_problems(doc, key, doc.data[key]))
    return problems
