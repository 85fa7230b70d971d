"""copilot: narrow AI tasks over a CRM record store, with human review."""

import os

# Set before anything imports litellm, transformers or chromadb: litellm fetches its price map over the network (and
# retries for ~10 s offline), the hub libraries look for model updates, chromadb phones home. Nothing may go out.
for _name, _value in (
    ("LITELLM_LOCAL_MODEL_COST_MAP", "True"),
    ("HF_HUB_OFFLINE", "1"),
    ("TRANSFORMERS_OFFLINE", "1"),
    ("ANONYMIZED_TELEMETRY", "False"),
):
    os.environ.setdefault(_name, _value)

__version__ = "0.1.0"
