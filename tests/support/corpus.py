"""Fixture projects covering every front-matter key the catalog maps, plus the awkward cases
(broken YAML, no front matter, no README, untagged, private, >100 files, WKT, DVC files, the
EOEPCA flood-model card verbatim). Plain data: the GitLab test server serves it, and
:func:`record_of` turns an entry into the record a source would produce."""

from __future__ import annotations

import hashlib
from typing import Any

from sharinghub_server.catalog.dvc_outputs import is_dvc_file
from sharinghub_server.sources.records import ProjectRecord, Release

HOST = "https://gitlab.example.com"

FLOOD_MODEL_CARD = """---
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
  dataset: https://gitlab.develop.eoepca.org/sharinghub-test/sen1floods11-dataset
---
# Flood detection model

UNet trained on Sen1Floods11.
"""

DATASET_README = """---
title: Sen1Floods11 dataset
license: CC-BY-4.0
license-url: https://creativecommons.org/licenses/by/4.0/legalcode
extent:
  spatial: [-10.5, 35.0, 30.25, 60.0]
  temporal: ["2019-01-01T00:00:00Z", "2020-12-31"]
providers:
  - name: Cloud to Street
    roles: [producer, licensor]
    url: https://www.cloudtostreet.ai
assets:
  - glob: "*.geojson"
    type-as: geojson
    title: "Footprint {path}"
    description: "Asset {key}"
  - glob: "docs/*.txt"
    key: "doc:{path}"
    roles: [metadata]
    type: text/plain
---
# Sen1Floods11

Hand-labelled flood events from Sentinel-1. Cite [DOI: Bonafilia et al. 2020](https://doi.org/10.1109/CVPRW50498.2020.00113)
and see also [the follow-up](https://doi.org/10.5281/zenodo.1234567).
"""

DVC_CONFIG = """[core]
    remote = s3store
['remote "s3store"']
    url = s3://eo-datasets/sen1floods11
['remote "backup"']
    url = /mnt/backup/dvc
"""

WKT_README = """---
title: Alps footprint processor
extent:
  spatial: "POLYGON ((5.9 45.8, 10.5 45.8, 10.5 47.8, 5.9 47.8, 5.9 45.8))"
extensions:
  eo: https://stac-extensions.github.io/eo/v1.1.0/schema.json
eo:
  cloud_cover: 12.5
links:
  - rel: documentation
    href: https://example.org/docs
    title: Docs
  - rel: related
    href: docs/guide.md
sharinghub:
  map-viewer: enable
  stars: 99
gsd: 10
platform: sentinel-2a
custom_field: {nested: [1, 2]}
---
# Alps processor

![Preview](img/alps.png)
"""

TILES = {f"tiles/2023/{i:03d}/tile.tif": b"II*\x00" for i in range(130)}


def _dvc_file(md5: str, size: int, path: str, *, nfiles: int | None = None,
              hash_md5: bool = True, remote: str | None = None) -> str:
    lines = [f"outs:\n- md5: {md5}\n  size: {size}\n"]
    if nfiles is not None:
        lines.append(f"  nfiles: {nfiles}\n")
    if hash_md5:
        lines.append("  hash: md5\n")
    if remote:
        lines.append(f"  remote: {remote}\n")
    lines.append(f"  path: {path}\n")
    return "".join(lines)


LABELS_MD5 = hashlib.md5(b"labels").hexdigest()
DATA_DIR_MD5 = hashlib.md5(b"data-dir").hexdigest() + ".dir"
LEGACY_MD5 = hashlib.md5(b"legacy").hexdigest()

PROJECTS: list[dict[str, Any]] = [
    {
        "path": "sharinghub-test/flood-model",
        "topics": ["sharinghub:aimodel", "flood", "pytorch"],
        "readme": FLOOD_MODEL_CARD,
        "files": {"train.py": "print('train')\n"},
    },
    {
        "path": "sharinghub-test/sen1floods11-dataset",
        "topics": ["sharinghub:dataset", "flood", "sentinel-1"],
        "readme": DATASET_README,
        "star_count": 7,
        "files": {
            "footprint.geojson": '{"type": "FeatureCollection", "features": []}',
            "docs/notes.txt": "notes",
            "preview.png": b"\x89PNG\r\n\x1a\n",
            ".dvc/config": DVC_CONFIG,
            ".dvc/.gitignore": "/cache\n",
            "data.dvc": _dvc_file(DATA_DIR_MD5, 4096, "data", nfiles=3),
            "labels/labels.csv.dvc": _dvc_file(LABELS_MD5, 6, "labels.csv"),
            "legacy.bin.dvc": _dvc_file(LEGACY_MD5, 6, "legacy.bin", hash_md5=False,
                                        remote="backup"),
        },
        "releases": [
            {"tag_name": "v1.0", "name": "First", "description": "first cut",
             "released_at": "2024-01-10T00:00:00Z"},
            {"tag_name": "v1.1", "name": "Second", "description": "more labels",
             "released_at": "2024-03-10T00:00:00Z"},
        ],
    },
    {
        "path": "geo/alps/footprint-processor",
        "topics": ["sharinghub:processor", "alps"],
        "readme": WKT_README,
        "files": {"img/alps.png": b"\x89PNG", "docs/guide.md": "guide"},
    },
    {
        "path": "broken/bad-yaml",
        "topics": ["sharinghub:tools"],
        "readme": "---\ntitle: [unclosed\nlicense: MIT\n---\n# Broken\n\nStill a project.\n",
        "files": {},
    },
    {
        "path": "plain/no-front-matter",
        "topics": ["sharinghub:tools", "utility"],
        "readme": "# Just a README\n\nNo metadata here; GitLab detected an MIT license.\n",
        "license": {"key": "mit", "name": "MIT License", "nickname": None,
                    "html_url": "https://gitlab.example.com/plain/no-front-matter/-/blob/main/LICENSE",
                    "source_url": "https://opensource.org/licenses/MIT"},
        "files": {"LICENSE": "MIT"},
    },
    {
        "path": "plain/no-readme",
        "topics": ["sharinghub:tools"],
        "readme": None,
        "description": "A project without README.",
        "files": {"main.py": "pass\n"},
    },
    {
        "path": "misc/untagged",
        "topics": ["not-a-category"],
        "readme": "---\ntitle: Not in the catalog\n---\n",
        "files": {},
    },
    {
        "path": "secret/private-model",
        "topics": ["sharinghub:aimodel"],
        "visibility": "private",
        "readme": "---\ntitle: Private model\n---\n# Private\n",
        "files": {},
    },
    {
        "path": "big/many-tiles",
        "topics": ["sharinghub:dataset", "sharinghub:space"],
        "readme": "---\ntitle: Many tiles\nassets: ['*.tif']\n---\n# Tiles\n",
        "files": TILES,
    },
    {
        "path": "models/cloud-model",
        "topics": ["sharinghub:aimodel"],
        "readme": """---
title: Cloud segmentation
preview: https://example.org/cloud.png
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: cloud-seg
  architecture: ResNet-18
  tasks: [segmentation]
  framework: onnxruntime
  framework_version: 1.18
  input: []
  output: []
assets:
  - glob: "weights/*.onnx"
    title: "Weights {path}"
  - glob: "*.pt"
    roles: [data]
---
# Cloud model
""",
        "files": {"weights/cloud.onnx": b"onnx", "checkpoint.pt": b"pt"},
    },
]


def record_of(entry: dict[str, Any], *, host: str = HOST, gitlab_id: int = 1) -> ProjectRecord:
    """The record GitLabSource.fetch would produce for a corpus entry."""
    files = entry.get("files", {})
    readme = entry.get("readme")
    all_files = sorted([*files, *(["README.md"] if readme is not None else [])])
    lic = entry.get("license") or {}
    return ProjectRecord(
        source=f"gitlab:{host}",
        id=entry["path"],
        name=entry.get("name") or entry["path"].rsplit("/", 1)[-1],
        topics=list(entry["topics"]),
        created_at=entry.get("created_at", "2023-05-01T08:00:00.000Z"),
        last_activity_at=entry.get("last_activity_at", "2024-06-01T12:30:00.000Z"),
        description=entry.get("description", ""),
        web_url=f"{host}/{entry['path']}",
        host_name=f"GitLab ({host})",
        host_url=host,
        gitlab_id=gitlab_id,
        star_count=entry.get("star_count", 0),
        visibility=entry.get("visibility", "public"),
        readme=readme,
        files=all_files,
        releases=[Release(**r) for r in entry.get("releases", [])],
        license_id={"mit": "MIT"}.get(lic.get("key", "")),
        license_name=lic.get("name"),
        license_url=lic.get("html_url"),
        dvc_files={p: (c if isinstance(c, str) else c.decode()) for p, c in files.items()
                   if is_dvc_file(p)},
    )


def by_path(path: str) -> dict[str, Any]:
    return next(p for p in PROJECTS if p["path"] == path)
