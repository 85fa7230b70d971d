"""The tones a workspace can rewrite into: the built-in ones (prompts/tones.yaml) plus its own, kept in its settings.

Apart from the rewrite task so that listing or editing tones loads no model, guard or language library.
"""

from __future__ import annotations

import re
from functools import lru_cache

import yaml

from copilot.errors import InvalidInput
from copilot.prompting import prompts_dir
from copilot.store import Repo


@lru_cache(maxsize=1)
def builtin_tones() -> dict[str, str]:
    return yaml.safe_load((prompts_dir() / "tones.yaml").read_text(encoding="utf-8"))


def workspace_tones(repo: Repo | None) -> dict[str, str]:
    custom = (repo.workspace.settings or {}).get("tones", {}) if repo is not None else {}
    return {**builtin_tones(), **custom}


def set_custom_tone(repo: Repo, name: str, instruction: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_-]{1,39}", name):
        raise InvalidInput("tone name: use 2-40 lower-case letters, digits, '-' or '_'")
    if not instruction.strip():
        raise InvalidInput("tone instruction: must not be empty")
    settings = dict(repo.workspace.settings or {})
    settings["tones"] = {**settings.get("tones", {}), name: instruction.strip()}
    repo.workspace.settings = settings


def reset_tones(repo: Repo) -> None:
    settings = dict(repo.workspace.settings or {})
    settings.pop("tones", None)
    repo.workspace.settings = settings
