"""Payloads shared by the cross-language test: edge values plus real GitHub webhooks."""
import json
import os

EDGE = {
    "int64_max": 2**63 - 1,
    "int64_min": -(2**63),
    "small": -1,
    "float": 3.25,
    "tiny": 1e-300,
    "flag": True,
    "off": False,
    "nothing": None,
    "text": "héllo wörld ✓ 日本",
    "nested": {"list": [1, "two", [3.5, {"four": None}]], "empty_list": [], "empty_map": {}},
}


def payloads(limit):
    """Return EDGE followed by up to limit - 1 webhook payloads."""
    out = [EDGE]
    path = os.environ.get("HIVENT_WEBHOOKS_JSON")
    if path and os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for group in json.load(f):
                out.extend(group["examples"])
    return out[:limit]
