"""Resolve one experiment: check what was written, then defaults -> profiles -> patch -> checks.

Order of precedence for the ``config:`` block, lowest first:

1. defaults (``defaults.default_config``: the model's quant modes, the peer's search lists);
2. profiles, in the order listed;
3. the experiment's own ``config:`` -- deep-merged into the above in ``mode: patch``; taken as the
   whole block in ``mode: replace``, which therefore must set every key of its serving mode (a
   missing key is an error, never a silent default: replace means "exactly this").

Top-level keys (isl, osl, ...) are never part of the block; absent ones take the seed's defaults, and
``enable_wide_ep`` may also come from a profile.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from servopt.config import checks
from servopt.config.catalog import Catalog
from servopt.config.defaults import (
    CALIBRATION_NAMES,
    DEFAULT_CALIBRATION,
    WIDE_EP_BACKENDS,
    default_config,
    top_level_defaults,
)
from servopt.config.problems import NO_VALUE, Problem
from servopt.config.profiles import Profile, load_profile, shipped_profile_names
from servopt.config.schema import (
    BACKENDS,
    ROLE_SECTION,
    SECTIONS_BY_MODE,
    ConfigBlock,
    Experiment,
    ExperimentInput,
)
from servopt.config.source import Document, Path_
from servopt.config.validation import model_at, validate
from servopt.errors import ServoptError
from servopt.models.arch import ModelArch

_ALL_SECTIONS = tuple(dict.fromkeys(s for mode in SECTIONS_BY_MODE.values() for s in mode))


class _Resolver:
    """Resolution state of one experiment; every finding goes to ``problems``."""

    def __init__(self, doc: Document, path: Path_, catalog: Catalog, problems: list[Problem]):
        self.doc, self.path, self.catalog, self.problems = doc, path, catalog, problems
        self.name = str(path[-1])
        self.raw: dict[str, Any] = doc.get(path)
        self.profiles: list[tuple[int, Profile]] = []

    # -- reporting -------------------------------------------------------------------------------

    def at(self, key: str | int, *rest: str | int) -> Path_:
        return (*self.path, key, *rest)

    def add(
        self, path: Path_, message: str, value: object = NO_VALUE, allowed=None, *, key: bool = False
    ) -> None:
        self.problems.append(self.doc.problem(path, message, value=value, allowed=allowed, key=key))

    def report_config(self, cfg_path: Path_, message: str, value: object, allowed) -> None:
        """A problem with a merged config value, placed where that value was written."""
        field = self.doc.field(self.at("config", *cfg_path))
        user_path = self.at("config", *cfg_path)
        if self.doc.has(user_path):
            self.problems.append(
                self.doc.problem(user_path, message, value=value, allowed=allowed, field=field)
            )
            return
        for _, profile in reversed(self.profiles):
            if profile.doc.has(("config", *cfg_path)):
                self.problems.append(
                    profile.doc.problem(
                        ("config", *cfg_path),
                        f"{message} (set by profile {profile.name})",
                        value=value,
                        allowed=allowed,
                        field=field,
                    )
                )
                return
        # A default: placed at the experiment's name, still naming the field.
        self.problems.append(
            self.doc.problem(
                self.path, f"{message} (default value)", value=value, allowed=allowed, key=True, field=field
            )
        )

    def report_top(self, key: str, message: str, value: object) -> None:
        where = self.at(key) if key in self.raw else self.path
        self.problems.append(
            self.doc.problem(
                where, message, value=value, key=key not in self.raw, field=self.doc.field(self.at(key))
            )
        )

    # -- names -----------------------------------------------------------------------------------

    def model(self) -> ModelArch | None:
        name = self.raw.get("model_name")
        if not isinstance(name, str) or not name:
            return None
        if name.startswith(("./", "../")) and self.doc.folder is not None:
            local = self.doc.folder / name
            if local.exists():
                name = str(local.resolve())
                self.raw = {**self.raw, "model_name": name}
        try:
            return self.catalog.resolve_model(name)
        except ServoptError as err:
            self.add(self.at("model_name"), err.message, name, err.allowed)
            return None

    def systems(self) -> list[str]:
        """The valid system names of this experiment (prefill first)."""
        known = list(self.catalog.system_names())
        found = []
        for key in ("system_name", "decode_system_name"):
            value = self.raw.get(key)
            if not isinstance(value, str) or not value:
                continue
            if value not in known:
                self.add(self.at(key), "unknown system", value, known)
            else:
                found.append(value)
        return found

    def backend(self, systems: list[str]) -> None:
        backend = self.raw.get("backend_name", top_level_defaults()["backend_name"])
        version = self.raw.get("backend_version")
        if backend not in BACKENDS or (version is not None and not isinstance(version, str)):
            return  # the schema already reported it
        backend_at = self.at("backend_name") if "backend_name" in self.raw else self.at("system_name")
        for system in dict.fromkeys(systems):
            try:
                versions = self.catalog.backend_versions(system, with_next=version is not None)
            except ServoptError as err:
                self.add(self.at("system_name"), err.message, system, err.allowed)
                continue
            if versions is None:
                if version is not None:
                    self.add(
                        self.at("backend_version"),
                        f"system {system} has no measured data (roofline only): leave backend_version unset",
                        version,
                    )
            elif backend not in versions:
                self.add(
                    backend_at,
                    f"system {system} has no measured data for backend {backend}",
                    backend,
                    versions,
                )
            elif version is not None and version not in versions[backend]:
                self.add(
                    self.at("backend_version"),
                    f"not a {backend} version on {system}",
                    version,
                    versions[backend],
                )

    def load_profiles(self) -> None:
        refs = self.raw.get("profiles")
        if not isinstance(refs, list):
            return
        for i, ref in enumerate(refs):
            if not isinstance(ref, str) or not ref:
                continue
            profile, file_problems, why = load_profile(ref, self.doc.folder)
            self.problems.extend(file_problems)
            if why is not None:
                allowed = shipped_profile_names() if why == "unknown profile" else None
                self.add(self.at("profiles", i), why, ref, allowed)
            elif profile is not None:
                self.profiles.append((i, profile))

    def calibration(self) -> str:
        """``calibration``: default, none, or a profile file (made absolute, so that a saved
        config.yaml reruns from anywhere). The file's content is validated when the run loads it."""
        value = self.raw.get("calibration")
        if not isinstance(value, str) or value in CALIBRATION_NAMES:
            return value if isinstance(value, str) else DEFAULT_CALIBRATION
        path = Path(value).expanduser()
        if not path.is_absolute() and self.doc.folder is not None:
            path = self.doc.folder / path
        if not path.is_file():
            self.add(
                self.at("calibration"),
                "not default, none or a calibration profile file (servopt calibrate --out)",
                value,
                CALIBRATION_NAMES,
            )
            return DEFAULT_CALIBRATION
        return str(path.resolve())

    def sections_fit_mode(self, serving_mode: str) -> None:
        other = "disagg" if serving_mode == "agg" else "agg"
        if serving_mode == "agg" and "decode_system_name" in self.raw:
            self.add(self.at("decode_system_name"), "only for serving_mode disagg", key=True)
        config = self.raw.get("config")
        if isinstance(config, dict):
            for key in config:
                if key in _ALL_SECTIONS and key not in SECTIONS_BY_MODE[serving_mode]:
                    self.add(self.at("config", key), f"only for serving_mode {other}", key=True)

    # -- merge -----------------------------------------------------------------------------------

    def wide_ep(self, inp: ExperimentInput, arch: ModelArch, backend: str) -> bool:
        where: Path_ = self.at("enable_wide_ep")
        value = inp.enable_wide_ep if "enable_wide_ep" in self.raw else None
        shown: object = True
        if value is None:
            for i, profile in reversed(self.profiles):
                if profile.spec.enable_wide_ep is not None:
                    value, where, shown = profile.spec.enable_wide_ep, self.at("profiles", i), profile.name
                    break
        if not value:
            return False
        if not arch.is_moe:
            self.add(where, f"wide expert parallelism needs a MoE model ({arch.name} is dense)", shown)
        elif backend not in WIDE_EP_BACKENDS:
            self.add(where, f"backend {backend} has no wide-EP search lists", backend, WIDE_EP_BACKENDS)
        return True

    def complete_replace(self, user: dict[str, Any], serving_mode: str) -> None:
        """In replace mode the block is taken as given: every key of the mode must be there."""
        cfg = self.at("config")
        required = {
            "nextn": None,
            "nextn_accept_rates": None,
            **dict.fromkeys(SECTIONS_BY_MODE[serving_mode]),
        }
        for key in required:
            if user.get(key) is None:
                self.add(
                    (*cfg, key),
                    "mode replace takes the config section as given, so it must set this key",
                    key=True,
                )
                continue
            section_model = model_at(ConfigBlock, (key,))
            if isinstance(user[key], dict) and section_model is not None:
                # Keys with a default (cp_list) may be left out: configs written before them load.
                fields = section_model.model_fields
                missing = [k for k in fields if k not in user[key] and fields[k].is_required()]
                if missing:
                    self.add(
                        (*cfg, key),
                        "mode replace takes the section as given, so it must set every key; missing: "
                        + ", ".join(missing),
                        key=True,
                    )

    def resolve(self) -> Experiment | None:
        start = len(self.problems)
        inp = validate(ExperimentInput, self.raw, self.doc, self.path, self.problems)
        arch = self.model()
        systems = self.systems()
        self.backend(systems)
        self.load_profiles()
        calibration = self.calibration()
        if self.raw.get("robust") is True and calibration == "none":
            self.add(self.at("robust"), "needs a calibration's error bands; calibration is none", True)
        # Checks that need only what was written run even when other keys are wrong, so that a
        # file's problems come out together.
        serving_mode = self.raw.get("serving_mode")
        if isinstance(serving_mode, str) and serving_mode in SECTIONS_BY_MODE:
            self.sections_fit_mode(serving_mode)
            user = self.raw.get("config")
            if self.raw.get("mode") == "replace" and (user is None or isinstance(user, dict)):
                self.complete_replace(user or {}, serving_mode)
        if inp is None or arch is None or len(self.problems) > start:
            return None
        top = top_level_defaults()
        top.update({k: getattr(inp, k) for k in top if k in self.raw and k != "enable_wide_ep"})
        top["enable_wide_ep"] = self.wide_ep(inp, arch, top["backend_name"])
        disagg = inp.serving_mode == "disagg"
        decode_system = (inp.decode_system_name or inp.system_name) if disagg else None

        merged = default_config(
            serving_mode=inp.serving_mode,
            arch=arch,
            backend=top["backend_name"],
            system=inp.system_name,
            decode_system=decode_system,
            enable_wide_ep=top["enable_wide_ep"],
            large_ep=None
            if top["enable_wide_ep"]
            else self.catalog.large_ep_eps(
                arch, top["backend_name"], inp.system_name, decode_system, top["backend_version"]
            ),
        )
        for _, profile in self.profiles:
            _overlay(merged, profile.config_for(inp.serving_mode))
        user = self.raw.get("config") or {}
        if inp.mode == "patch":
            _overlay(merged, user)
        else:
            merged = copy.deepcopy(user)
        if len(self.problems) > start:
            return None
        block = validate(ConfigBlock, merged, self.doc, self.at("config"), self.problems)
        if block is None:
            return None
        block = self.check(block, arch, inp, top["backend_name"], decode_system)
        if block is None:
            return None
        return Experiment(
            name=self.name,
            serving_mode=inp.serving_mode,
            model_name=self.raw["model_name"],
            total_gpus=inp.total_gpus,
            system_name=inp.system_name,
            decode_system_name=decode_system,
            profiles=tuple(self.raw.get("profiles") or ()),
            config=block,
            workload=inp.workload,
            calibration=calibration,
            **top,
        )

    def check(
        self,
        block: ConfigBlock,
        arch: ModelArch,
        inp: ExperimentInput,
        backend: str,
        decode_system: str | None,
    ) -> ConfigBlock | None:
        """Cross-field checks; returns the block with worker sizes clipped to the GPU budget."""
        start = len(self.problems)
        total = inp.total_gpus
        checks.check_nextn(block, self.report_config)
        roles = ("agg",) if inp.serving_mode == "agg" else ("prefill", "decode")
        found: dict[str, checks.RoleLayouts] = {}
        for role in roles:
            section = ROLE_SECTION[role]
            worker = getattr(block, section)
            system = decode_system if role == "decode" and decode_system else inp.system_name
            try:
                dtypes = self.catalog.compute_dtypes(system)
            except ServoptError as err:
                self.add(self.at("system_name"), err.message, system, err.allowed)
                continue
            checks.check_quant(
                worker,
                section,
                arch=arch,
                backend=backend,
                dtypes=dtypes,
                system=system,
                report=self.report_config,
            )
            layouts = checks.layouts_of(
                role, worker, arch=arch, backend=backend, catalog=self.catalog, report=self.report_config
            )
            if layouts is not None:
                found[role] = layouts
        if "agg" in found:
            checks.check_agg_budget(found["agg"], total, self.report_top)
        if "prefill" in found and "decode" in found:
            checks.check_disagg_budget(
                found["prefill"], found["decode"], block, total, self.report_config, self.report_top
            )
        if len(self.problems) > start:
            return None
        update: dict[str, Any] = {}
        for role in roles:
            section = ROLE_SECTION[role]
            worker = getattr(block, section)
            clipped = tuple(g for g in worker.num_gpu_per_worker if g <= total)
            update[section] = worker.model_copy(update={"num_gpu_per_worker": clipped})
        if block.replica_config is not None:
            cap = min(block.replica_config.max_gpu_per_replica or total, total)
            update["replica_config"] = block.replica_config.model_copy(update={"max_gpu_per_replica": cap})
        return block.model_copy(update=update)


def _overlay(base: dict[str, Any], patch: dict[str, Any]) -> None:
    """Deep-merge ``patch`` into ``base``: mappings merge key by key, everything else replaces.

    A section given as null is an empty patch; a null leaf is kept (it means something, e.g. a
    replica size list of null = any size)."""
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _overlay(base[key], value)
        elif value is None and isinstance(base.get(key), dict):
            continue
        else:
            base[key] = copy.deepcopy(value)


def resolve_experiment(
    doc: Document, path: Path_, catalog: Catalog, problems: list[Problem]
) -> Experiment | None:
    """The resolved experiment at ``path`` of ``doc``, or None after appending its problems."""
    if not isinstance(doc.get(path), dict):
        problems.append(
            doc.problem(
                path,
                "an experiment must be a mapping of keys (mode, serving_mode, model_name, ...)",
                value=doc.get(path),
            )
        )
        return None
    return _Resolver(doc, path, catalog, problems).resolve()
