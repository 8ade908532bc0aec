"""Example projects for the demo (and the tests of the embedded default): a small
flood-detection dataset under DVC with a local remote, and a flood model."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import zlib
from pathlib import Path

DATASET_README = """---
title: Sen1Floods11 sample
topics: [sharinghub:dataset, flood, sentinel-1]
license: CC-BY-4.0
extent:
  spatial: [-5.5, 41.0, 9.8, 51.3]
  temporal: [2019-01-01, 2019-12-31]
providers:
  - name: Cloud to Street
    roles: [producer, licensor]
    url: https://www.cloudtostreet.ai
assets:
  - glob: "*.geojson"
    type-as: geojson
    title: "Footprint {path}"
---
# Sen1Floods11 sample

A tiny slice of a flood-mapping dataset: Sentinel-1 chips and hand-labelled water masks,
versioned with DVC (`data/` on the local DVC remote).

See [DOI: Bonafilia et al. 2020](https://doi.org/10.1109/CVPRW50498.2020.00113).
"""

MODEL_README = """---
title: Flood detection model
topics: [sharinghub:aimodel, flood, segmentation]
license: Apache-2.0
extent:
  spatial: [-5.5, 41.0, 9.8, 51.3]
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: flood-detection-model
  architecture: UNet
  tasks: [semantic-segmentation]
  framework: PyTorch
  framework_version: "2.7"
  input: []
  output: []
related:
  dataset: local/sen1floods11-sample
assets:
  - "*.onnx"
---
# Flood detection model

![preview](preview.png)

A UNet that maps open water in Sentinel-1 backscatter.
"""

def _png(width: int = 64, height: int = 64) -> bytes:
    """A small valid PNG (water blue), so the preview renders."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes([30, 110, 200]) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


def _run(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "demo", "GIT_AUTHOR_EMAIL": "demo@example.org",
           "GIT_COMMITTER_NAME": "demo", "GIT_COMMITTER_EMAIL": "demo@example.org"}
    subprocess.run(args, cwd=cwd, check=True, capture_output=True, env=env)


def _dvc_track(project: Path, remote: Path, rel: str, content: bytes) -> None:
    """Track one file the way ``dvc add`` + ``dvc push`` leave it (DVC 3 layout)."""
    md5 = hashlib.md5(content).hexdigest()
    target = remote / "files" / "md5" / md5[:2] / md5[2:]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(content)
    path = project / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    name = path.name
    (path.parent / f"{name}.dvc").write_text(
        f"outs:\n- md5: {md5}\n  size: {len(content)}\n  hash: md5\n  path: {name}\n")
    gitignore = path.parent / ".gitignore"
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    gitignore.write_text("\n".join([*lines, f"/{name}"]) + "\n")


def make_examples(folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Create (or keep) ``<folder>/projects/local/...`` and ``<folder>/dvc-remote``; returns
    (the local projects folder, the DVC remote). Idempotent."""
    root = Path(folder)
    projects = root / "projects" / "local"
    remote = root / "dvc-remote"
    dataset = projects / "sen1floods11-sample"
    model = projects / "flood-model"
    if not dataset.exists():
        dataset.mkdir(parents=True)
        (dataset / "README.md").write_text(DATASET_README)
        (dataset / "footprint.geojson").write_text(json.dumps({
            "type": "Feature", "properties": {},
            "geometry": {"type": "Polygon", "coordinates": [
                [[-5.5, 41.0], [9.8, 41.0], [9.8, 51.3], [-5.5, 51.3], [-5.5, 41.0]]]}}))
        (dataset / ".dvc").mkdir()
        (dataset / ".dvc" / "config").write_text(
            f"[core]\n    remote = local\n['remote \"local\"']\n    url = {remote.resolve()}\n")
        (dataset / ".dvc" / ".gitignore").write_text("/config.local\n/tmp\n/cache\n")
        for i in range(3):
            _dvc_track(dataset, remote, f"data/chip_{i}.tif", bytes([i]) * (1024 * (i + 1)))
        _run(dataset, "git", "init", "-q", "-b", "main")
        _run(dataset, "git", "add", "-A")
        _run(dataset, "git", "commit", "-q", "-m", "Sen1Floods11 sample, first version")
        _run(dataset, "git", "tag", "v1.0")
    if not model.exists():
        model.mkdir(parents=True)
        (model / "README.md").write_text(MODEL_README)
        (model / "preview.png").write_bytes(_png())
        (model / "flood-unet.onnx").write_bytes(b"\x08\x07onnx-demo-weights")
        _run(model, "git", "init", "-q", "-b", "main")
        _run(model, "git", "add", "-A")
        _run(model, "git", "commit", "-q", "-m", "Flood model card")
    return projects, remote
