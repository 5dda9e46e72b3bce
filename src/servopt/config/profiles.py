"""Profiles: named presets of config values that an experiment inherits before its own patch.

A profile is a YAML file with a ``description``, optional ``aliases``, optional ``enable_wide_ep``
and a ``config:`` block in the experiment's own schema (every key optional). Profiles are applied in
the order an experiment lists them, after the defaults and before the experiment's ``config``; later
ones win. A profile may carry sections of both serving modes; an experiment takes only the sections
of its own mode. The shipped profiles live next to this module (``profiles/*.yaml``, documented in
docs/profiles.md); an entry that looks like a path (``./my_profile.yaml``) is read from a file,
relative to the experiment file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from servopt.config.problems import Problem
from servopt.config.schema import SECTIONS_BY_MODE, ProfileInput
from servopt.config.source import Document, read_yaml_file
from servopt.config.validation import validate

PROFILE_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Profile:
    name: str  # as the experiment refers to it
    doc: Document  # the profile file, for error positions
    spec: ProfileInput

    def config_for(self, serving_mode: str) -> dict[str, Any]:
        """The profile's config values that apply to an experiment of ``serving_mode`` (a copy)."""
        raw = self.doc.get(("config",)) or {}
        keep = {"nextn", "nextn_accept_rates", *SECTIONS_BY_MODE[serving_mode]}
        return {k: copy.deepcopy(v) for k, v in raw.items() if k in keep and v is not None}


def shipped_dir() -> Path:
    return Path(__file__).parent / "profiles"


@cache
def shipped_profiles() -> dict[str, Path]:
    """Every shipped profile name and alias -> its file."""
    index: dict[str, Path] = {}
    for path in sorted(shipped_dir().glob("*.yaml")):
        index[path.stem] = path
        profile, _ = _load_shipped(path, path.stem)
        if profile is not None:
            for alias in profile.spec.aliases:
                index.setdefault(alias, path)
    return index


def shipped_profile_names() -> list[str]:
    """Canonical shipped profile names (file stems), without aliases."""
    return sorted(p.stem for p in shipped_dir().glob("*.yaml"))


def looks_like_path(ref: str) -> bool:
    return ref.endswith(PROFILE_SUFFIXES) or "/" in ref or "\\" in ref


def _load_file(path: Path, name: str) -> tuple[Profile | None, tuple[Problem, ...]]:
    doc, problems = read_yaml_file(path)
    if doc is None:
        return None, tuple(problems)
    spec = validate(ProfileInput, doc.data, doc, (), problems)
    if spec is None or problems:
        return None, tuple(problems)
    return Profile(name=name, doc=doc, spec=spec), ()


@cache
def _load_shipped(path: Path, name: str) -> tuple[Profile | None, tuple[Problem, ...]]:
    # Shipped files do not change while servopt runs; user files may, so only these are cached.
    return _load_file(path, name)


def load_profile(ref: str, folder: Path | None) -> tuple[Profile | None, tuple[Problem, ...], str | None]:
    """Find and validate one profile.

    Returns (profile, problems inside the profile file, or why the reference itself is wrong).
    """
    if looks_like_path(ref):
        path = Path(ref).expanduser()
        if not path.is_absolute() and folder is not None:
            path = folder / path
        if not path.is_file():
            return None, (), f"no profile file at {path}"
        profile, problems = _load_file(path.resolve(), ref)
        return profile, problems, None
    path = shipped_profiles().get(ref)
    if path is None:
        return None, (), "unknown profile"
    profile, problems = _load_shipped(path, ref)
    return profile, problems, None
