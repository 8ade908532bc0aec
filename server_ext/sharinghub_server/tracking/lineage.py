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


def dataset_inputs(tags: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """``runs/log-inputs`` datasets for a run created with these tags (none if no manifest)."""
    value = next((t.get("value") for t in tags or [] if t.get("key") == DATASETS_TAG), None)
    if not value:
        return []
    try:
        manifests = json.loads(value)
    except ValueError:
        return []
    out = []
    for m in manifests if isinstance(manifests, list) else []:
        if not isinstance(m, dict) or not m.get("item"):
            continue
        for output in m.get("outputs") or []:
            source = {"item": m["item"], "rev": m.get("rev"), "commit": m.get("commit"),
                      "path": output.get("path")}
            out.append({
                "dataset": {"name": str(m["item"]),
                            "digest": str(output.get("md5") or m.get("commit") or "")[
                                :_DIGEST_MAX],
                            "source_type": DATASET_SOURCE_TYPE,
                            "source": json.dumps(source, separators=(",", ":"))},
                "tags": [{"key": "mlflow.data.context", "value": "training"},
                         {"key": "sharinghub.rev", "value": str(m.get("rev") or "")},
                         {"key": "sharinghub.path", "value": str(output.get("path") or "")}]})
    return out
