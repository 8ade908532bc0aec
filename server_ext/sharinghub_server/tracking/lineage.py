"""Lineage: a run started in a workspace holding pulled datasets names them.

The kernel side (``sharinghub_lab.lineage``, an MLflow run-context provider) tags each new run
with the pull manifests it finds (tag :data:`DATASETS_TAG`, JSON). A run-context provider can
only add tags, so the server, seeing the ``runs/create`` pass through ``sharinghub/mlflow/``,
logs each pulled output as an MLflow dataset input of the new run: name = item id, digest =
DVC md5, source = the item, rev and commit (source type :data:`DATASET_SOURCE_TYPE`).
"""

from __future__ import annotations

import json
from typing import Any

DATASETS_TAG = "sharinghub.datasets"
DATASET_SOURCE_TYPE = "sharinghub"
#: MLflow's limit on a dataset digest
_DIGEST_MAX = 36


def parse_manifests(value: Any) -> list[dict[str, Any]]:
    """The manifests of a :data:`DATASETS_TAG` value, each ``{item, rev, commit, outputs:
    [{path, md5}]}`` with strings only; whatever is malformed is left out (the tag is the
    client's text)."""
    if not isinstance(value, str) or not value:
        return []
    try:
        data = json.loads(value)
    except ValueError:
        return []
    out = []
    for m in data if isinstance(data, list) else []:
        if not isinstance(m, dict) or not isinstance(m.get("item"), str) or not m["item"]:
            continue
        outputs = m.get("outputs") if isinstance(m.get("outputs"), list) else []
        out.append({
            "item": m["item"], "rev": _text(m.get("rev")), "commit": _text(m.get("commit")),
            "outputs": [{"path": _text(o.get("path")), "md5": _text(o.get("md5"))}
                        for o in outputs if isinstance(o, dict)]})
    return out


def dataset_inputs(tags: Any) -> list[dict[str, Any]]:
    """``runs/log-inputs`` datasets for a run created with these tags (none if no manifest)."""
    value = next((t.get("value") for t in tags if isinstance(t, dict)
                  and t.get("key") == DATASETS_TAG), None) if isinstance(tags, list) else None
    out = []
    for m in parse_manifests(value):
        for output in m["outputs"]:
            source = {"item": m["item"], "rev": m["rev"], "commit": m["commit"],
                      "path": output["path"]}
            out.append({
                "dataset": {"name": m["item"],
                            "digest": (output["md5"] or m["commit"])[:_DIGEST_MAX],
                            "source_type": DATASET_SOURCE_TYPE,
                            "source": json.dumps(source, separators=(",", ":"))},
                "tags": [{"key": "mlflow.data.context", "value": "training"},
                         {"key": "sharinghub.rev", "value": m["rev"]},
                         {"key": "sharinghub.path", "value": output["path"]}]})
    return out


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
