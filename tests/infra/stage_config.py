"""Stages from a modified copy of .chalice/config.json, for tests of what the template refuses or renders."""
from __future__ import annotations

import json


def stage_with(tmp_path, stage="prod", **changes):
    """Load `stage` with some keys changed: lower-case names are stage keys (api_gateway_endpoint_type),
    upper-case ones environment variables; None removes the key."""
    from infra.stage import CONFIG, load

    config = json.loads(CONFIG.read_text())
    for key, value in changes.items():
        target = config["stages"][stage] if key.islower() else config["stages"][stage]["environment_variables"]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return load(stage, path)
