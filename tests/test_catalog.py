"""GitLab project → STAC item: every front-matter key of the contract, validated offline."""

from __future__ import annotations

import pystac
import pytest

from sharinghub_server.catalog import dvc_outputs
from sharinghub_server.catalog.categories import DEFAULT_CATEGORIES, Category, load_categories
from sharinghub_server.catalog.collection import build_collection
from sharinghub_server.catalog.hrefs import absolutize
from sharinghub_server.catalog.item import build_item, project_items
from sharinghub_server.catalog.validate import (
    FILE_SCHEMA,
    MLM_SCHEMA,
    SCI_SCHEMA,
    repair,
    schema_errors,
    validate,
)
from sharinghub_server.index.store import CollectionSummary
from tests.support.corpus import (
    DATA_DIR_MD5,
    LABELS_MD5,
    LEGACY_MD5,
    PROJECTS,
    by_path,
    record_of,
)


def items_of(path: str, **changes) -> list[dict]:
    entry = {**by_path(path), **changes}
    return project_items(record_of(entry), DEFAULT_CATEGORIES).items


def item_of(path: str, **changes) -> dict:
    (item,) = items_of(path, **changes)
    return item


def problems_of(path: str, **changes) -> list[str]:
    return project_items(record_of({**by_path(path), **changes}), DEFAULT_CATEGORIES).problems


@pytest.mark.parametrize("entry", PROJECTS, ids=lambda e: e["path"])
def test_every_item_of_the_corpus_validates_offline(entry):
    built = project_items(record_of(entry), DEFAULT_CATEGORIES)
    for item in built.items:
        assert schema_errors(item) == []
        # and pystac reads it back as an Item of its collection
        assert pystac.Item.from_dict(item).collection_id == item["collection"]


def test_collections_validate_and_carry_computed_extents():
    summary = CollectionSummary(count=3, bbox=(-10.5, 35.0, 30.25, 60.0),
                                start="2019-01-01T00:00:00Z", end="2024-06-01T12:30:00Z")
    for category in DEFAULT_CATEGORIES:
        for s in (summary, None):
            collection = build_collection(category, s)
            validate(collection)
    full = build_collection(DEFAULT_CATEGORIES[1], summary)
    assert full["extent"]["spatial"]["bbox"] == [[-10.5, 35.0, 30.25, 60.0]]
    assert full["extent"]["temporal"]["interval"] == [["2019-01-01T00:00:00Z",
                                                       "2024-06-01T12:30:00Z"]]


def test_item_id_collection_and_category_membership():
    assert items_of("misc/untagged") == []
    both = items_of("big/many-tiles")
    assert [i["collection"] for i in both] == ["dataset", "dashboard"]
    assert {i["id"] for i in both} == {"big/many-tiles"}
    assert all({"rel": "collection", "type": "application/json",
                "href": f"stac/collections/{i['collection']}"} in i["links"] for i in both)


def test_title_description_keywords_and_sharinghub_properties():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    props = item["properties"]
    assert props["title"] == "Sen1Floods11 dataset"
    assert props["description"].startswith("# Sen1Floods11")
    assert props["keywords"] == ["flood", "sentinel-1"]  # category topics removed
    assert props["sharinghub:path"] == "sharinghub-test/sen1floods11-dataset"
    assert props["sharinghub:stars"] == 7
    assert props["sharinghub:default-branch"] == "main"
    assert props["sharinghub:dvc-init"] == "enable"
    assert props["sharinghub:id"] == 1
    # no title key: the project name
    assert item_of("sharinghub-test/flood-model")["properties"]["title"] == "flood-model"
    assert item_of("sharinghub-test/flood-model")["properties"]["sharinghub:dvc-init"] == "disable"


def test_times_follow_project_activity_and_temporal_extent():
    props = item_of("sharinghub-test/sen1floods11-dataset")["properties"]
    assert props["datetime"] == "2024-06-01T12:30:00Z"
    assert props["start_datetime"] == "2019-01-01T00:00:00Z"
    assert props["end_datetime"] == "2020-12-31T00:00:00Z"
    assert props["created"] == "2023-05-01T08:00:00Z"
    assert props["updated"] == "2024-06-01T12:30:00Z"
    # default: creation → last activity
    props = item_of("sharinghub-test/flood-model")["properties"]
    assert (props["start_datetime"], props["end_datetime"]) == (
        "2023-05-01T08:00:00Z", "2024-06-01T12:30:00Z")


def test_spatial_extent_as_bbox_and_as_wkt():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    assert item["bbox"] == [-10.5, 35.0, 30.25, 60.0]
    assert item["geometry"]["type"] == "Polygon"
    wkt = item_of("geo/alps/footprint-processor")
    assert wkt["bbox"] == [5.9, 45.8, 10.5, 47.8]
    assert wkt["geometry"]["coordinates"][0][0] == [5.9, 45.8]
    assert item_of("sharinghub-test/flood-model")["geometry"] is None


def test_bad_spatial_extent_is_reported_and_left_out():
    readme = "---\nextent:\n  spatial: [0, 100, 10, 5]\n---\nx"
    entry = {"readme": readme}
    assert "bbox" not in item_of("plain/no-readme", **entry)
    assert any("extent.spatial" in p for p in problems_of("plain/no-readme", **entry))


def test_license_from_front_matter_or_gitlab_detection():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    assert item["properties"]["license"] == "CC-BY-4.0"
    assert {"rel": "license",
            "href": "https://creativecommons.org/licenses/by/4.0/legalcode"} in item["links"]
    detected = item_of("plain/no-front-matter")
    assert detected["properties"]["license"] == "MIT"
    assert any(link["rel"] == "license" for link in detected["links"])
    assert "license" not in item_of("sharinghub-test/flood-model")["properties"]


def test_providers_keep_declared_and_add_host_default():
    providers = item_of("sharinghub-test/sen1floods11-dataset")["properties"]["providers"]
    assert providers[0]["name"] == "Cloud to Street"
    hosts = [p for p in providers if "host" in p["roles"]]
    assert hosts == [{"name": "GitLab (https://gitlab.example.com)", "roles": ["host"],
                      "url": "https://gitlab.example.com/sharinghub-test/sen1floods11-dataset"}]
    assert not [p for p in providers if p["name"] == "sharinghub-test"]  # producer declared
    defaults = item_of("plain/no-front-matter")["properties"]["providers"]
    assert {"name": "plain", "roles": ["producer"],
            "url": "https://gitlab.example.com/plain"} in defaults


def test_links_resolve_relative_hrefs_and_related_become_derived_from():
    item = item_of("geo/alps/footprint-processor")
    assert {"rel": "documentation", "href": "https://example.org/docs",
            "title": "Docs"} in item["links"]
    assert {"rel": "related", "href": "download/geo/alps/footprint-processor/-/docs/guide.md"
            "?ref=main"} in item["links"]
    model = item_of("sharinghub-test/flood-model")
    derived = [link for link in model["links"] if link["rel"] == "derived_from"]
    assert derived == [{
        "rel": "derived_from", "type": "application/geo+json",
        "title": "dataset: sharinghub-test/sen1floods11-dataset",
        "href": "stac/collections/dataset/items/sharinghub-test/sen1floods11-dataset"}]


def test_asset_rules_globs_templates_type_as_and_roles():
    assets = item_of("sharinghub-test/sen1floods11-dataset")["assets"]
    footprint = assets["footprint.geojson"]
    assert footprint["type"] == "application/geo+json"
    assert footprint["title"] == "Footprint footprint.geojson"
    assert footprint["description"] == "Asset footprint.geojson"
    assert footprint["roles"] == ["data"]
    assert footprint["href"] == ("download/sharinghub-test/sen1floods11-dataset/-/"
                                 "footprint.geojson?ref=main")
    doc = assets["doc:docs/notes.txt"]
    assert doc["roles"] == ["metadata"] and doc["type"] == "text/plain"


def test_globs_are_anchored_at_the_right_like_purepath_match():
    assets = item_of("big/many-tiles", topics=["sharinghub:dataset"])["assets"]
    tiles = [k for k in assets if k.endswith(".tif")]
    assert len(tiles) == 130
    assert assets["tiles/2023/007/tile.tif"]["type"] == "image/tiff; application=geotiff"


@pytest.mark.parametrize(("type_as", "media"), [
    ("text", "text/plain"), ("json", "application/json"), ("xml", "application/xml"),
    ("yaml", "text/x-yaml"), ("zip", "application/zip"),
    ("geotiff", "image/tiff; application=geotiff"),
    ("cog", "image/tiff; application=geotiff; profile=cloud-optimized"),
    ("geojson", "application/geo+json"), ("compose", "text/x-yaml; application=compose"),
    ("notebook", "application/x-ipynb+json"),
])
def test_type_as_shortcuts(type_as, media):
    readme = f"---\nassets:\n  - glob: 'main.py'\n    type-as: {type_as}\n---\n"
    assert item_of("plain/no-readme", readme=readme)["assets"]["main.py"]["type"] == media


def test_unknown_suffix_types_are_guessed_and_onnx_known():
    readme = "---\nassets: ['*.onnx', '*.py']\n---\n"
    assets = item_of("plain/no-readme", readme=readme,
                     files={"m.onnx": b"x", "main.py": "pass"})["assets"]
    assert assets["m.onnx"]["type"] == "application/onnx"
    assert assets["main.py"]["type"] == "text/x-python"


def test_prefixed_fields_of_a_rule_are_copied_onto_the_asset():
    readme = ("---\nassets:\n  - glob: '*.tif'\n    eo:bands: [{name: B1}]\n"
              "    proj:code: EPSG:4326\n---\n")
    asset = item_of("plain/no-readme", readme=readme, files={"a.tif": b"x"})["assets"]["a.tif"]
    assert asset["eo:bands"] == [{"name": "B1"}]
    assert asset["proj:code"] == "EPSG:4326"


def test_preview_order_readme_image_then_key_then_file():
    alps = item_of("geo/alps/footprint-processor")
    assert alps["assets"]["preview"] == {
        "href": "download/geo/alps/footprint-processor/-/img/alps.png?ref=main",
        "title": "Preview", "roles": ["thumbnail"], "type": "image/png"}
    preview_href = "download/geo/alps/footprint-processor/-/img/alps.png?ref=main"
    assert {"rel": "preview", "type": "image/png", "href": preview_href} in alps["links"]
    keyed = item_of("models/cloud-model")
    assert keyed["assets"]["preview"]["href"] == "https://example.org/cloud.png"
    filed = item_of("sharinghub-test/sen1floods11-dataset")
    assert filed["assets"]["preview"]["href"].endswith("/-/preview.png?ref=main")
    # README image wins over the key
    readme = "---\npreview: https://x.org/a.png\n---\n![PREVIEW](b.jpg)\n"
    assert item_of("plain/no-readme", readme=readme)["assets"]["preview"]["type"] == "image/jpeg"


def test_latest_release_is_a_source_asset():
    release = item_of("sharinghub-test/sen1floods11-dataset")["assets"]["release"]
    assert release["roles"] == ["source"]
    assert release["title"] == "Release v1.1: Second"
    assert release["description"] == "more labels"
    assert "/-/archive/v1.1/" in release["href"]


def test_extensions_flatten_prefixes_and_declare_schemas():
    item = item_of("geo/alps/footprint-processor")
    assert item["properties"]["eo:cloud_cover"] == 12.5
    assert "https://stac-extensions.github.io/eo/v1.1.0/schema.json" in item["stac_extensions"]
    assert "eo" not in item["properties"]


def test_sharinghub_overrides_and_passthrough():
    props = item_of("geo/alps/footprint-processor")["properties"]
    assert props["sharinghub:map-viewer"] == "enable"
    assert props["sharinghub:stars"] == 99
    assert props["gsd"] == 10
    assert props["platform"] == "sentinel-2a"
    assert props["custom_field"] == {"nested": [1, 2]}


def test_category_features_become_sharinghub_properties():
    cats = load_categories([{"id": "tools", "title": "Tools", "gitlab_topic": "sharinghub:tools",
                             "features": {"map-viewer": "disable"}}])
    (item,) = project_items(record_of(by_path("plain/no-readme")), cats).items
    assert item["properties"]["sharinghub:map-viewer"] == "disable"


def test_dois_in_the_readme_body():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    props = item["properties"]
    assert props["sci:doi"] == "10.1109/CVPRW50498.2020.00113"
    assert props["sci:citation"] == "Bonafilia et al. 2020"
    assert props["sci:publications"] == [{"doi": "10.5281/zenodo.1234567",
                                          "citation": "the follow-up"}]
    assert SCI_SCHEMA in item["stac_extensions"]
    assert {"rel": "cite-as", "href": "https://doi.org/10.1109/CVPRW50498.2020.00113"} in item[
        "links"]


def test_dvc_outputs_become_assets_with_remote_locations():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    assert FILE_SCHEMA in item["stac_extensions"]
    data = item["assets"]["data"]
    assert data["href"] == (f"s3://eo-datasets/sen1floods11/files/md5/{DATA_DIR_MD5[:2]}/"
                            f"{DATA_DIR_MD5[2:]}")
    assert data["dvc:md5"] == DATA_DIR_MD5 and data["dvc:nfiles"] == 3
    assert data["file:size"] == 4096 and "file:checksum" not in data
    labels = item["assets"]["labels/labels.csv"]
    assert labels["file:checksum"] == "d50110" + LABELS_MD5
    assert labels["file:size"] == 6 and labels["type"] == "text/csv"
    assert labels["href"].startswith("s3://eo-datasets/sen1floods11/files/md5/")
    legacy = item["assets"]["legacy.bin"]  # DVC 2 layout, its own remote
    # a folder remote: a file URI (a bare path would be served as a path on the server)
    assert legacy["href"] == f"file:///mnt/backup/dvc/{LEGACY_MD5[:2]}/{LEGACY_MD5[2:]}"
    assert legacy["dvc:remote"] == "backup"
    assert absolutize(item, "http://jupyter/sharinghub/api/")["assets"]["legacy.bin"] == legacy


def test_folder_remotes_give_file_uris_and_relative_ones_no_location():
    out = dvc_outputs.DvcOutput(path="data", md5="ab" + "c" * 30, size=None, nfiles=None,
                                legacy_hash=False, remote=None, source="data.dvc")
    assert dvc_outputs.remote_location(out, "/srv/dvc store/") == (
        f"file:///srv/dvc%20store/files/md5/ab/{'c' * 30}")
    assert dvc_outputs.remote_location(out, "../shared-remote") is None
    assert dvc_outputs.remote_location(out, "s3://b/p").startswith("s3://b/p/files/md5/ab/")


def test_flood_model_card_verbatim_is_normalised_and_reported():
    built = project_items(record_of(by_path("sharinghub-test/flood-model")), DEFAULT_CATEGORIES)
    (item,) = built.items
    props = item["properties"]
    assert props["mlm:framework_version"] == "2.7.0"
    assert props["mlm:name"] == "flood-detection-model"
    assert props["mlm:tasks"] == ["semantic-segmentation"]
    # no model asset: served with mlm:* properties, without the mlm schema, and said why
    assert MLM_SCHEMA not in item["stac_extensions"]
    assert any("no model asset" in p for p in built.problems)
    validate(item)


def test_mlm_model_files_get_role_and_artifact_type():
    built = project_items(record_of(by_path("models/cloud-model")), DEFAULT_CATEGORIES)
    (item,) = built.items
    assert MLM_SCHEMA in item["stac_extensions"]
    weights = item["assets"]["weights/cloud.onnx"]
    assert weights["roles"][0] == "mlm:model"
    assert weights["mlm:artifact_type"] == "onnx"
    assert weights["title"] == "Weights weights/cloud.onnx"
    # the rule chose the roles of the checkpoint: left as a plain data file
    assert item["assets"]["checkpoint.pt"]["roles"] == ["data"]
    assert "mlm:artifact_type" not in item["assets"]["checkpoint.pt"]
    assert item["properties"]["mlm:framework_version"] == "1.18.0"
    assert any("mlm:framework_version" in p for p in built.problems)
    validate(item)


def test_broken_yaml_still_gives_an_item_and_a_problem():
    built = project_items(record_of(by_path("broken/bad-yaml")), DEFAULT_CATEGORIES)
    (item,) = built.items
    assert item["properties"]["title"] == "bad-yaml"
    assert any("not valid YAML" in p for p in built.problems)


def test_invalid_values_are_left_out_and_reported():
    readme = "---\ngsd: -5\nlicense: Not An Id\n---\n"
    built = project_items(record_of({**by_path("plain/no-readme"), "readme": readme}),
                          DEFAULT_CATEGORIES)
    (item,) = built.items
    assert "gsd" not in item["properties"]
    assert "license" not in item["properties"]
    assert any("gsd" in p for p in built.problems)
    validate(item)


def test_repair_never_touches_a_valid_item():
    item = item_of("sharinghub-test/sen1floods11-dataset")
    assert repair(item) == (item, [])


def test_build_item_gives_a_pystac_item():
    record = record_of(by_path("sharinghub-test/sen1floods11-dataset"))
    item = build_item(record, DEFAULT_CATEGORIES[1], DEFAULT_CATEGORIES)
    assert isinstance(item, pystac.Item)
    assert item.id == "sharinghub-test/sen1floods11-dataset"
    assert item.collection_id == "dataset"
    with pytest.raises(ValueError, match="not in category"):
        build_item(record, DEFAULT_CATEGORIES[0], DEFAULT_CATEGORIES)


def test_category_config_errors_are_clear():
    with pytest.raises(ValueError, match="gitlab_topic"):
        load_categories([{"id": "x", "title": "X"}])
    with pytest.raises(ValueError, match="duplicate"):
        load_categories([{"id": "x", "title": "X", "gitlab_topic": "a"},
                         {"id": "x", "title": "Y", "gitlab_topic": "b"}])
    assert Category.from_config({"id": "x", "title": "X", "gitlab_topic": "t"}).features == {}


_TRICKY_YAML = [
    "title: x\ndate: 2024-01-02\nwhen: 2024-01-02T03:04:05Z\nnaive: 2024-01-02 03:04:05\n",
    "a: yes\nb: no\nc: on\nd: off\ne: ~\nf: null\ng: .inf\nh: -.Inf\ni: .nan\n",
    "octal: 0o17\nold_octal: 017\nhex: 0x1F\nsexagesimal: 1:20\nfloat: 1e3\nexp: 6.02e+23\n",
    "version: 2.7\nv2: '2.7'\nv3: 2.7.0\nbig: 123456789012345678901234567890\n",
    "anchors: &a {x: 1}\nuse: *a\nmerge:\n  <<: *a\n  y: 2\n",
    "multi: |\n  line 1\n  line 2\nfolded: >\n  a\n  b\nquoted: \"tab\\there \\u00e9\"\n",
    "unicode: ünïcødé — 日本語\nemoji: \"\\U0001F600\"\n",
    "list: [a, b, [c, d], {e: f}]\nempty_list: []\nempty_map: {}\n",
    "key with spaces: 1\n'quoted key': 2\n? complex\n: 3\n",
    "title: [unclosed\nlicense: MIT\n",
    "a: b: c\n",
    "\tindented: with a tab\n",
    "- a list\n- not a mapping\n",
    "just a string",
    "a: 1\na: 2\n",
    "bad: \"\\x\"\n",
    "ctl: \"\x07\"\n",
    "x: !!python/object:os.system ls\n",
    "x: !custom tag\n",
    "a: 1\n---\nb: 2\n",
    "",
    "# only a comment\n",
]


@pytest.mark.parametrize("text", [
    *_TRICKY_YAML,
    *[e["readme"].split("---")[1] for e in PROJECTS
      if e.get("readme") and e["readme"].startswith("---")],
], ids=lambda text: repr(text[:24]))
def test_fast_yaml_loading_gives_what_safe_load_gives(text):
    """Front matter and DVC files are parsed by libyaml when PyYAML has it: the data, and
    what is refused (with the same message), stay those of ``yaml.safe_load``."""
    import math

    import yaml

    from sharinghub_server.catalog.frontmatter import load_yaml

    def outcome(load):
        try:
            return "ok", load(text)
        except yaml.YAMLError as exc:
            return "error", str(exc)

    fast, plain = outcome(load_yaml), outcome(yaml.safe_load)
    if fast[0] == "ok" and isinstance(fast[1], dict) and isinstance(fast[1].get("i"), float):
        # NaN is not equal to itself: compare it apart
        assert math.isnan(fast[1].pop("i")) and math.isnan(plain[1].pop("i"))
    assert fast == plain
