"""The demo workspace: EOEPCA's flood-detection scenario as local projects, made once.

``<root>/projects/local/`` holds four projects, each a git repository:

- ``sen1floods11``: a Sen1Floods11-like dataset (Sentinel-1 chips and hand-labelled water
  masks as GeoTIFFs) under DVC, two tagged versions pushed to ``<root>/dvc-remote``;
- ``flood-model``: the model card (``mlm`` 1.4, ``related: dataset``) that the training
  notebook registers models for;
- ``flood-mapper``: a processor applying such a model to a folder of chips;
- ``landcover-classifier``: a model of another kind (scene classification, ONNX weights).

Beside them: the notebooks (copied once, so a user's edits are kept), and ``.sharinghub/``
with the index, the embedded MLflow store and the Jupyter configuration that points the
extension at all of it. Every piece is made only when missing, in a scratch folder first, so
an interrupted first start never leaves half a project behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from . import scenes

DATASET = "sen1floods11"
MODEL = "flood-model"
PROCESSOR = "flood-mapper"
LANDCOVER = "landcover-classifier"
NOTEBOOKS = ("01-discover.ipynb", "02-train.ipynb", "03-predict.ipynb")


@dataclass(frozen=True)
class Workspace:
    root: Path

    @property
    def projects(self) -> Path:
        return self.root / "projects" / "local"

    @property
    def remote(self) -> Path:
        return self.root / "dvc-remote"

    @property
    def state(self) -> Path:
        return self.root / ".sharinghub"

    @property
    def config_dir(self) -> Path:
        """A Jupyter config folder (``JUPYTER_CONFIG_PATH``) with the extension's settings."""
        return self.state / "jupyter"

    @property
    def index_path(self) -> Path:
        return self.state / "index.sqlite"

    @property
    def index_url(self) -> str:
        return f"sqlite://{self.index_path}"

    def settings(self) -> dict[str, object]:
        """``c.SharingHub`` for this workspace: everything inside it."""
        mlflow = self.state / "mlflow"
        return {"local_projects": [str(self.projects)], "index_url": self.index_url,
                "mlflow_backend_store_uri": f"sqlite:///{mlflow / 'mlflow.db'}",
                "mlflow_artifacts_destination": str(mlflow / "artifacts"),
                "dvc_default_remote": str(self.remote)}


Say = Callable[[str], None]


def prepare(root: str | os.PathLike[str], say: Say = print) -> Workspace:
    """Make what is missing of the workspace at ``root``; returns it. Idempotent."""
    ws = Workspace(Path(root).expanduser().resolve())
    for folder in (ws.projects, ws.remote, ws.state):
        folder.mkdir(parents=True, exist_ok=True)
    makers = {DATASET: _dataset, MODEL: _model, PROCESSOR: _processor,
              LANDCOVER: _landcover}
    for name, make in makers.items():
        if (ws.projects / name / ".git").is_dir():
            continue
        say(f"creating the {name} project")
        with tempfile.TemporaryDirectory(dir=ws.state, prefix=f"new-{name}-") as scratch:
            project = Path(scratch) / name
            project.mkdir()
            make(project, ws)
            shutil.rmtree(ws.projects / name, ignore_errors=True)
            os.replace(project, ws.projects / name)
    notebooks = resources.files(__package__) / "notebooks"
    for name in NOTEBOOKS:
        target = ws.root / name
        if not target.exists():
            target.write_bytes((notebooks / name).read_bytes())
    _write_config(ws)
    return ws


def _write_config(ws: Workspace) -> None:
    ws.config_dir.mkdir(parents=True, exist_ok=True)
    config = {"SharingHub": ws.settings()}
    path = ws.config_dir / "jupyter_server_config.json"
    text = json.dumps(config, indent=2) + "\n"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


# --- git and DVC ------------------------------------------------------------------------------

_AUTHOR = {"GIT_AUTHOR_NAME": "SharingHub demo", "GIT_AUTHOR_EMAIL": "demo@example.org",
           "GIT_COMMITTER_NAME": "SharingHub demo", "GIT_COMMITTER_EMAIL": "demo@example.org"}


def _git(project: Path, *args: str, date: str | None = None) -> None:
    dates = {"GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date} if date else {}
    subprocess.run(["git", *args], cwd=project, check=True, capture_output=True,
                   env={**os.environ, **_AUTHOR, **dates})


def _commit(project: Path, message: str, date: str, tag: str | None = None) -> None:
    """Commit everything at a fixed ``date``: a history that reads the same wherever the
    demo is made, versions in their order."""
    if not (project / ".git").exists():
        _git(project, "init", "-q", "-b", "main")
    _git(project, "add", "-A")
    _git(project, "commit", "-q", "-m", message, date=date)
    if tag:
        _git(project, "tag", "-a", tag, "-m", message, date=date)


@contextlib.contextmanager
def _quiet_dvc() -> Iterator[None]:
    """DVC's API logs what its command line would print ("Initialized DVC repository", hints
    about git add): the demo says what it does itself."""
    logger = logging.getLogger("dvc")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def _dvc_add_and_push(project: Path, targets: list[str]) -> None:
    """``dvc add`` then ``dvc push`` with DVC's Python API (one import for all of them)."""
    from dvc.repo import Repo

    with _quiet_dvc(), Repo(str(project)) as repo:
        repo.add([str(project / t) for t in targets])
        repo.push()


def _dvc_init(project: Path, remote: Path) -> None:
    from dvc.repo import Repo

    with _quiet_dvc():
        Repo.init(str(project)).close()
    with Repo(str(project)) as repo, repo.config.edit() as conf:
        conf["remote"]["local"] = {"url": str(remote)}
        conf["core"]["remote"] = "local"
        conf["core"]["analytics"] = False


# --- the dataset ----------------------------------------------------------------------------

def _footprint_wkt(events: tuple[scenes.Event, ...]) -> str:
    """The union of each event's chips as a MULTIPOLYGON (one rectangle per event)."""
    polygons = []
    for event in events:
        boxes = [c.bbox for c in scenes.chips_of((event,))]
        w, s = min(b[0] for b in boxes), min(b[1] for b in boxes)
        e, n = max(b[2] for b in boxes), max(b[3] for b in boxes)
        polygons.append(f"(({w} {s}, {e} {s}, {e} {n}, {w} {n}, {w} {s}))")
    return f"MULTIPOLYGON ({', '.join(polygons)})"


def _dataset_readme(events: tuple[scenes.Event, ...], version: str) -> str:
    dates = sorted(e.date for e in events)
    chips = sum(e.chips for e in events)
    places = ", ".join(e.name.replace("_", " (") + ")" for e in events)
    return f"""---
title: Sen1Floods11 sample
description: Sentinel-1 chips and hand-labelled water masks of {len(events)} flood events
topics: [sharinghub:dataset, flood, sentinel-1, sar, water]
license: CC-BY-4.0
extent:
  spatial: "{_footprint_wkt(events)}"
  temporal: ["{dates[0]}", "{dates[-1]}"]
providers:
  - name: Cloud to Street
    roles: [producer, licensor]
    url: https://www.cloudtostreet.ai
assets:
  - glob: "footprints.geojson"
    type-as: geojson
    title: Chip footprints
  - glob: "splits/*.csv"
    type: text/csv
    roles: [metadata]
---
# Sen1Floods11 sample ({version})

{chips} chips of 64 × 64 pixels (~10 m) over {places}, made up to look like the
hand-labelled part of [Sen1Floods11](https://github.com/cloudtostreet/Sen1Floods11)
(Bonafilia et al., CVPR Workshops 2020, [DOI](https://doi.org/10.1109/CVPRW50498.2020.00113)):

- `S1Hand/<chip>_S1Hand.tif`: Sentinel-1 backscatter, band 1 VV and band 2 VH, in dB
  (float32, GeoTIFF in EPSG:4326);
- `LabelHand/<chip>_LabelHand.tif`: 1 water, 0 no water, -1 not labelled (int16);
- `splits/{{train,valid,test}}.csv`: one chip name per line;
- `footprints.geojson`: each chip's footprint, event and acquisition date.

The rasters are versioned with DVC: `dvc pull` after cloning, or pull a version from the
SharingHub sidebar or with `sh.pull("local/sen1floods11", rev="v1.0")`.

## Versions

- v1.0: Spain (Ebro), France (Garonne), Germany (Rhine), 24 chips.
- v1.1: adds Italy (Po), 8 chips, all in the test split.
"""


def _split_of(chip: scenes.Chip) -> str:
    if chip.event == scenes.EVENT_V1_1:
        return "test"
    return "train" if chip.index < 6 else ("valid" if chip.index == 6 else "test")


def _write_dataset_version(project: Path, events: tuple[scenes.Event, ...], version: str
                           ) -> None:
    chips = scenes.chips_of(events)
    for chip in chips:
        if not (project / "S1Hand" / f"{chip.name}_S1Hand.tif").exists():
            scenes.write_chip(project, chip)
    features = [{"type": "Feature", "id": c.name,
                 "properties": {"event": c.event.name, "datetime": f"{c.event.date}T00:00:00Z",
                                "split": _split_of(c)},
                 "geometry": {"type": "Polygon", "coordinates": [[
                     [c.bbox[0], c.bbox[1]], [c.bbox[2], c.bbox[1]], [c.bbox[2], c.bbox[3]],
                     [c.bbox[0], c.bbox[3]], [c.bbox[0], c.bbox[1]]]]}} for c in chips]
    (project / "footprints.geojson").write_text(
        json.dumps({"type": "FeatureCollection", "features": features}, indent=1) + "\n")
    (project / "splits").mkdir(exist_ok=True)
    for split in ("train", "valid", "test"):
        names = [c.name for c in chips if _split_of(c) == split]
        (project / "splits" / f"{split}.csv").write_text("\n".join(names) + "\n")
    (project / "README.md").write_text(_dataset_readme(events, version))


def _dataset(project: Path, ws: Workspace) -> None:
    _git(project, "init", "-q", "-b", "main")
    _dvc_init(project, ws.remote)
    first = scenes.EVENTS_V1_0
    _write_dataset_version(project, first, "v1.0")
    _dvc_add_and_push(project, ["S1Hand", "LabelHand"])
    _commit(project, "Sen1Floods11 sample v1.0: Ebro, Garonne and Rhine",
            "2020-01-20T10:00:00Z", tag="v1.0")
    _write_dataset_version(project, (*first, scenes.EVENT_V1_1), "v1.1")
    _dvc_add_and_push(project, ["S1Hand", "LabelHand"])
    _commit(project, "Sen1Floods11 sample v1.1: adds the Po (test split)",
            "2020-06-15T10:00:00Z", tag="v1.1")


# --- the models and the processor -------------------------------------------------------------

def _model(project: Path, ws: Workspace) -> None:
    wkt = _footprint_wkt((*scenes.EVENTS_V1_0, scenes.EVENT_V1_1))
    (project / "README.md").write_text(f"""---
title: Flood detection model
description: Maps open water in Sentinel-1 backscatter, pixel by pixel
topics: [sharinghub:aimodel, flood, segmentation, sentinel-1]
license: Apache-2.0
extent:
  spatial: "{wkt}"
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: flood-detection-model
  architecture: Logistic regression on a 5x5 neighbourhood
  tasks: [semantic-segmentation]
  framework: scikit-learn
  input: []
  output: []
related:
  dataset: local/{DATASET}
assets:
  - "*.onnx"
---
# Flood detection model

A per-pixel water classifier for Sentinel-1 (VV, VH) trained on the
[Sen1Floods11 sample](../{DATASET}). The notebook `02-train.ipynb` trains it, logs the run to
MLflow (with the dataset version it was trained on) and registers it for this item; the
registered versions appear here as `mlflow:model` links and ONNX assets.
""")
    _commit(project, "Flood detection model card", "2020-07-01T10:00:00Z")


_PROCESSOR_SCRIPT = '''"""Apply a flood model (ONNX, per-pixel features as in 02-train.ipynb) to
Sentinel-1 chips: writes one water mask per chip.

    python flood_mapper.py MODEL.onnx S1HAND_FOLDER OUTPUT_FOLDER
"""

import sys
from pathlib import Path

import numpy as np
import onnxruntime
import tifffile
from scipy.ndimage import uniform_filter


def features(s1: np.ndarray) -> np.ndarray:
    vv, vh = np.nan_to_num(s1.astype(np.float32), nan=-30.0)
    layers = [vv, vh, uniform_filter(vv, 5), uniform_filter(vh, 5)]
    return np.stack(layers, axis=-1).reshape(-1, len(layers)).astype(np.float32)


def main(model: str, chips: str, out: str) -> None:
    session = onnxruntime.InferenceSession(model)
    name = session.get_inputs()[0].name
    Path(out).mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(chips).glob("*_S1Hand.tif")):
        s1 = tifffile.imread(path)
        labels = session.run(None, {name: features(s1)})[0]
        mask = labels.reshape(s1.shape[1:]).astype(np.uint8)
        tifffile.imwrite(Path(out) / path.name.replace("S1Hand", "Water"), mask)
        print(f"{path.name}: {mask.mean():.1%} water")


if __name__ == "__main__":
    main(*sys.argv[1:4])
'''

_PROCESSOR_CWL = """cwlVersion: v1.2
class: CommandLineTool
id: flood-mapper
label: Flood mapper
doc: Water masks from Sentinel-1 chips with an ONNX flood model
baseCommand: [python, flood_mapper.py]
inputs:
  model: {type: File, inputBinding: {position: 1}}
  chips: {type: Directory, inputBinding: {position: 2}}
outputs:
  masks: {type: Directory, outputBinding: {glob: masks}}
arguments: [{position: 3, valueFrom: masks}]
"""


def _processor(project: Path, ws: Workspace) -> None:
    (project / "README.md").write_text(f"""---
title: Flood mapper
description: Water masks for a folder of Sentinel-1 chips, with a flood model in ONNX
topics: [sharinghub:processor, flood, sentinel-1]
license: Apache-2.0
related:
  model: local/{MODEL}
assets:
  - glob: "*.cwl"
    type: application/cwl+yaml
    roles: [metadata]
  - glob: "*.py"
    type: text/x-python
    roles: [code]
---
# Flood mapper

`python flood_mapper.py MODEL.onnx S1HAND_FOLDER OUTPUT_FOLDER` runs a model registered for
[the flood model](../{MODEL}) over every `*_S1Hand.tif` chip of a folder and writes a water
mask per chip; `flood-mapper.cwl` describes it as a CWL tool.
""")
    (project / "flood_mapper.py").write_text(_PROCESSOR_SCRIPT)
    (project / "flood-mapper.cwl").write_text(_PROCESSOR_CWL)
    _commit(project, "Flood mapper", "2020-07-10T10:00:00Z")


#: EuroSAT's ten classes and Sentinel-2's thirteen bands
_LANDCOVER_CLASSES = ("AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
                      "Pasture", "PermanentCrop", "Residential", "River", "SeaLake")
_S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10",
             "B11", "B12")


def _landcover_onnx() -> bytes:
    """A small linear scene classifier (mean band values → class probabilities) as ONNX:
    weights made up, but a real graph that onnxruntime runs."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(7)
    weights = rng.normal(0, 0.01, (len(_S2_BANDS), len(_LANDCOVER_CLASSES))).astype(np.float32)
    bias = np.zeros(len(_LANDCOVER_CLASSES), dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["image", "axes"], ["bands"], keepdims=0),
         helper.make_node("MatMul", ["bands", "weights"], ["scores"]),
         helper.make_node("Add", ["scores", "bias"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1)],
        "landcover",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT,
                                       ["batch", len(_S2_BANDS), 64, 64])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT,
                                       ["batch", len(_LANDCOVER_CLASSES)])],
        [numpy_helper.from_array(weights, "weights"), numpy_helper.from_array(bias, "bias"),
         numpy_helper.from_array(np.array([2, 3], dtype=np.int64), "axes")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)],
                              producer_name="sharinghub-lab demo")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _landcover(project: Path, ws: Workspace) -> None:
    classes = "\n".join(f"      - {{value: {i}, name: {name}, description: {name}}}"
                        for i, name in enumerate(_LANDCOVER_CLASSES))
    (project / "README.md").write_text(f"""---
title: Land-cover classifier
description: EuroSAT's ten land-cover classes for Sentinel-2 patches
topics: [sharinghub:aimodel, land-cover, classification, sentinel-2]
license: MIT
extent:
  spatial: [-10.0, 35.0, 30.0, 60.0]
extensions:
  mlm: https://stac-extensions.github.io/mlm/v1.4.0/schema.json
mlm:
  name: landcover-classifier
  architecture: Linear classifier on band means
  tasks: [scene-classification]
  framework: ONNX
  input:
    - name: Sentinel-2 L1C patch
      description: "the 13 bands in order: {", ".join(_S2_BANDS)}"
      bands: []
      input:
        shape: [-1, 13, 64, 64]
        dim_order: [batch, bands, height, width]
        data_type: float32
  output:
    - name: class probabilities
      tasks: [scene-classification]
      result:
        shape: [-1, 10]
        dim_order: [batch, class]
        data_type: float32
      classification:classes:
{classes}
assets:
  - "*.onnx"
---
# Land-cover classifier

A scene classifier for 64 × 64 Sentinel-2 patches over EuroSAT's ten classes. Its weights
are a placeholder: the project is here to show a model of another kind beside the flood
model (search `land-cover`, or filter on `mlm:tasks`).
""")
    (project / "landcover.onnx").write_bytes(_landcover_onnx())
    _commit(project, "Land-cover classifier", "2021-02-01T10:00:00Z")
