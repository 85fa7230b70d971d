"""What a model can do, declared rather than guessed from its name.

``small``: short constrained outputs only (labels, JSON under a grammar, a name, a one-line compression).
``capable``: usable free text (instruct models that write a reply or a summary an agent can send or trust).
Tasks pick their default strategy per profile; the table in the README says which, from measured evals.
"""

from __future__ import annotations

import enum
import fnmatch


class Profile(str, enum.Enum):
    small = "small"
    capable = "capable"


# Hosted and served models whose profile is known. Local GGUF files get theirs from the catalog (by name or sha256);
# a model matching none of these is taken as capable: set COPILOT_MODEL_PROFILE=small for a tiny one.
KNOWN_PROFILES: tuple[tuple[str, Profile], ...] = (
    ("local/smollm2-*", Profile.small),
    ("*smollm*-135m*", Profile.small),
    ("*smollm*-360m*", Profile.small),
    ("*qwen2.5*-0.5b*", Profile.capable),
    ("openai/gpt-4*", Profile.capable),
    ("openai/gpt-5*", Profile.capable),
    ("openai/o*", Profile.capable),
    ("gpt-4*", Profile.capable),
    ("anthropic/claude-*", Profile.capable),
    ("claude-*", Profile.capable),
    ("gemini/*", Profile.capable),
    ("mistral/*", Profile.capable),
    ("fake/*", Profile.capable),
)


def profile_from_table(model: str) -> Profile | None:
    lowered = model.lower()
    return next((profile for pattern, profile in KNOWN_PROFILES if fnmatch.fnmatch(lowered, pattern)), None)
