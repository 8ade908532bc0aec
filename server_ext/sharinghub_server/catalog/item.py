"""A project record → STAC items (one per category the project is in).

SharingHub-compatible for every front-matter key it reads, then beyond: DVC outputs as assets,
native mlm v1.4, repair of invalid values with the problems reported.
"""

from __future__ import annotations

import dataclasses
import posixpath
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import pystac
import shapely
import shapely.geometry
import shapely.wkt

from ..sources.records import ProjectRecord
from . import assets as asset_rules
from . import dvc_outputs, hrefs, markdown
from .categories import Category, categories_of
from .frontmatter import parse_readme
from .timeutil import iso, parse_datetime
from .validate import (
    FILE_SCHEMA,
    MLM_SCHEMA,
    SCI_SCHEMA,
    STAC_VERSION,
    error_lines,
    known_schemas,
    repair,
)

#: front-matter keys the mapping consumes; every other key passes into ``properties``
_CONSUMED = {"title", "preview", "license", "license-url", "extent", "providers", "links",
             "related", "assets", "extensions", "sharinghub", "topics"}
_PREVIEW_FILES = ("preview.png", "preview.jpg", "preview.jpeg")
_MLM_PREFIX = "mlm"


@dataclass
class ProjectItems:
    """The items of one project, and what was wrong with its metadata."""

    items: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def project_items(record: ProjectRecord, categories: tuple[Category, ...]) -> ProjectItems:
    """Valid STAC item dicts for the project, one per category it is in (none if in none)."""
    cats = categories_of(record.topics, categories)
    result = ProjectItems(problems=list(record.errors))
    if not cats:
        return result
    base, problems = _base_item(record, categories)
    result.problems.extend(problems)
    repaired, fixes = _repair_with_mlm(base)
    result.problems.extend(fixes)
    for cat in cats:
        result.items.append(_in_category(repaired, cat))
    return result


def build_item(record: ProjectRecord, category: Category,
               categories: tuple[Category, ...]) -> pystac.Item:
    """The project's item in one category, as a pystac Item."""
    built = project_items(record, categories)
    for item in built.items:
        if item["collection"] == category.id:
            return pystac.Item.from_dict(item, preserve_dict=False)
    raise ValueError(f"{record.id} is not in category {category.id}")


_PROBE = "sharinghub:mlm-probe"


def metadata_errors(record: ProjectRecord, categories: tuple[Category, ...],
                    before: str | None = None) -> list[str]:
    """What is wrong with the item ``record.readme`` gives, checked before a README change is
    committed (the crawl would repair it instead): the problems the mapping meets (values it
    would normalise or leave out) that the README ``before`` did not have already, then every
    STAC schema error of the item before repair. An mlm item without a model asset is
    checked with a stand-in one, as it is served (its mlm fields must be valid)."""
    base, problems = _base_item(record, categories)
    if before is not None:
        known = set(_base_item(dataclasses.replace(record, readme=before), categories)[1])
        problems = [p for p in problems if p not in known]
    if MLM_SCHEMA in base["stac_extensions"] and not any(
            "mlm:model" in a.get("roles", []) for a in base["assets"].values()):
        base = {**base, "assets": {**base["assets"], _PROBE: {
            "href": "model", "roles": ["mlm:model"], "mlm:artifact_type": "model"}}}
    return [*problems, *error_lines(base)]


def _repair_with_mlm(item: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Repair the item; an mlm item without a model asset (mlm 1.4 requires one) is checked
    against the mlm schema all the same, with a stand-in model asset, so its ``mlm:*``
    properties are valid the moment a model arrives, and is served without the schema.
    The item is the caller's fresh build: it is repaired in place, not copied."""
    if MLM_SCHEMA not in item["stac_extensions"] or any(
            "mlm:model" in a.get("roles", []) for a in item["assets"].values()):
        return repair(item, in_place=True)
    probe = {**item, "assets": {**item["assets"], _PROBE: {
        "href": "model", "roles": ["mlm:model"], "mlm:artifact_type": "model"}}}
    repaired, problems = repair(probe, in_place=True)
    repaired["assets"].pop(_PROBE, None)
    repaired["stac_extensions"] = [u for u in repaired["stac_extensions"] if u != MLM_SCHEMA]
    problems.append("mlm: no model asset (an asset with role mlm:model, e.g. an .onnx file "
                    "matched by an asset rule or a registered MLflow model), so the mlm "
                    "schema is not declared")
    return repaired, problems


def _in_category(base: dict[str, Any], category: Category) -> dict[str, Any]:
    item = dict(base)
    item["collection"] = category.id
    props = dict(base["properties"])
    for feature, value in category.features.items():
        props.setdefault(f"sharinghub:{feature}", value)
    item["properties"] = props
    item["links"] = [
        {"rel": "collection", "type": "application/json",
         "href": f"stac/collections/{category.id}"},
        *base["links"],
    ]
    return item


def _base_item(record: ProjectRecord,
               categories: tuple[Category, ...]) -> tuple[dict[str, Any], list[str]]:
    problems: list[str] = []
    meta, body, fm_problem = parse_readme(record.readme)
    if fm_problem:
        problems.append(fm_problem)
    if record.readme is None:
        problems.append("no README.md: item built from the project's GitLab metadata only")
    meta = dict(meta)
    ref = record.default_branch or None
    category_ids = {c.gitlab_topic for c in categories}

    created = _safe_dt(record.created_at) or datetime.now(timezone.utc)
    updated = _safe_dt(record.last_activity_at) or created

    # --- geometry and time
    geometry, bbox = _spatial((meta.get("extent") or {}).get("spatial")
                              if isinstance(meta.get("extent"), dict) else None, problems)
    start, end = _temporal(meta.get("extent"), created, updated, problems)

    props: dict[str, Any] = {
        "title": str(meta.get("title") or record.name),
        "description": body or record.description or "",
        "datetime": iso(updated),
        "start_datetime": iso(start),
        "end_datetime": iso(end),
        "created": iso(created),
        "updated": iso(updated),
        "keywords": [t for t in record.topics if t not in category_ids],
    }
    extensions: list[str] = []
    links: list[dict[str, Any]] = []
    item_assets: dict[str, dict[str, Any]] = {}

    # --- license (front matter, else GitLab's detected SPDX id)
    license_id = meta.get("license") or record.license_id
    license_url = meta.get("license-url") or (
        None if meta.get("license") else record.license_url)
    if license_id:
        props["license"] = str(license_id)
        links.append({"rel": "license",
                      "href": str(license_url or f"https://spdx.org/licenses/{license_id}.html")})

    # --- providers with SharingHub's host/producer defaults
    props["providers"] = _providers(meta.get("providers"), record, problems)

    # --- extensions: declared prefixes flatten to prefix:key
    declared = meta.get("extensions") or {}
    if not isinstance(declared, dict):
        problems.append("extensions must be a mapping of prefix → schema URL")
        declared = {}
    for prefix, schema_url in declared.items():
        block = meta.pop(prefix, None)
        if schema_url not in known_schemas():
            problems.append(f"extension {prefix}: schema {schema_url} is unknown offline, "
                            "so it is not declared")
        else:
            extensions.append(str(schema_url))
        if isinstance(block, dict):
            for key, value in block.items():
                props[f"{prefix}:{key}"] = value
        elif block is not None:
            problems.append(f"{prefix} must be a mapping")

    # --- DOIs in the README body
    doi, publications = markdown.citations(body)
    if doi:
        props["sci:doi"], citation = doi
        if citation:
            props["sci:citation"] = citation
        links.append({"rel": "cite-as", "href": f"https://doi.org/{doi[0]}"})
    if publications:
        props["sci:publications"] = publications
    if (doi or publications) and SCI_SCHEMA not in extensions:
        extensions.append(SCI_SCHEMA)

    # --- links and related
    for link in meta.get("links") or []:
        if isinstance(link, dict) and link.get("href"):
            links.append({**{str(k): v for k, v in link.items()},
                          "rel": str(link.get("rel") or "related"),
                          "href": hrefs.resolve(str(link["href"]), record.id, ref)})
        else:
            problems.append(f"link {link!r} has no href")
    related = meta.get("related") or {}
    if isinstance(related, dict):
        for collection, urls in related.items():
            for url in urls if isinstance(urls, list) else [urls]:
                if isinstance(url, str) and url:
                    path = _project_path(url)
                    links.append({"rel": "derived_from", "type": "application/geo+json",
                                  "title": f"{collection}: {path}",
                                  "href": hrefs.item_href(str(collection), path)})
    else:
        problems.append("related must be a mapping of collection → project URL(s)")

    # --- assets: category rules, then front-matter rules
    rules: list[dict[str, Any]] = []
    for cat in categories_of(record.topics, categories):
        cat_rules, _ = asset_rules.normalise_rules(list(cat.assets))
        rules.extend(cat_rules)
    fm_rules, rule_problems = asset_rules.normalise_rules(meta.get("assets"))
    rules.extend(fm_rules)
    problems.extend(rule_problems)
    found, chosen_roles = asset_rules.apply_rules(rules, record.files, item_id=record.id, ref=ref)
    item_assets.update(found)

    # --- DVC outputs
    dvc_assets, dvc_problems = _dvc_assets(record)
    problems.extend(dvc_problems)
    for key, asset in dvc_assets.items():
        item_assets.setdefault(key, asset)
    if dvc_assets:
        extensions.append(FILE_SCHEMA)

    # --- preview: README image "preview", else the preview key, else a preview file
    preview = meta.get("preview")
    for alt, src in markdown.images(body):
        if alt.strip().lower() == "preview":
            preview = src
            break
    if not preview:
        preview = next((f for f in record.files if f.lower() in _PREVIEW_FILES), None)
    if preview:
        href = hrefs.resolve(str(preview), record.id, ref)
        asset = {"href": href, "title": "Preview", "roles": ["thumbnail"]}
        if media := asset_rules.guess_type(str(preview)):
            asset["type"] = media
        item_assets["preview"] = asset
        links.append({"rel": "preview", "href": href, **({"type": media} if media else {})})

    # --- latest release → source archive
    release = _latest_release(record)
    if release is not None:
        archive = release.archive_url or (
            f"{record.web_url}/-/archive/{release.tag_name}/"
            f"{posixpath.basename(record.id)}-{release.tag_name}.zip" if record.web_url else None)
        if archive:
            title = f"Release {release.tag_name}: {release.name}".rstrip(": ")
            asset = {"href": archive, "title": title, "roles": ["source"],
                     "type": "application/zip"}
            if release.description:
                asset["description"] = release.description
            item_assets["release"] = asset

    # --- mlm: model files get their role and artifact type
    if MLM_SCHEMA in extensions:
        asset_rules.mark_model_assets(item_assets, chosen_roles)

    # --- sharinghub:* properties, then front-matter overrides, then passthrough
    props.update({
        "sharinghub:id": record.gitlab_id if record.gitlab_id is not None else record.id,
        "sharinghub:name": record.name,
        "sharinghub:path": record.id,
        "sharinghub:stars": record.star_count,
        "sharinghub:default-branch": record.default_branch,
        "sharinghub:dvc-init": "enable" if record.has_dvc else "disable",
    })
    overrides = meta.get("sharinghub") or {}
    if isinstance(overrides, dict):
        props.update({f"sharinghub:{k}": v for k, v in overrides.items()})
    else:
        problems.append("sharinghub must be a mapping")
    for key, value in meta.items():
        if key not in _CONSUMED and key not in declared:
            props[key] = _jsonable(value)

    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(set(extensions)),
        "id": record.id,
        "geometry": geometry,
        **({"bbox": bbox} if bbox else {}),
        "properties": _jsonable(props),
        "links": links,
        "assets": _jsonable(item_assets),
    }
    return item, problems


# --- helpers ------------------------------------------------------------------------------


def _safe_dt(value: Any) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def _jsonable(value: Any) -> Any:
    """YAML gives dates and datetimes; JSON wants strings."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return iso(parse_datetime(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _spatial(value: Any, problems: list[str]) -> tuple[dict | None, list[float] | None]:
    """``extent.spatial``: a bbox of four numbers, or WKT (or a GeoJSON geometry)."""
    if value in (None, "", []):
        return None, None
    try:
        if isinstance(value, list) and len(value) == 1 and isinstance(value[0], list):
            value = value[0]
        if isinstance(value, list):
            if len(value) != 4 or not all(isinstance(v, int | float) for v in value):
                raise ValueError("a bbox needs four numbers: west, south, east, north")
            w, s, e, n = (float(v) for v in value)
            if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= n <= 90):
                raise ValueError(f"bbox {value} is outside WGS84 or south > north")
            geom = shapely.geometry.box(w, s, e, n)
        elif isinstance(value, str):
            geom = shapely.wkt.loads(value)
        elif isinstance(value, dict):
            geom = shapely.geometry.shape(value)
        else:
            raise ValueError(f"{type(value).__name__} is neither a bbox nor WKT")
        if geom.is_empty:
            raise ValueError("the geometry is empty")
        w, s, e, n = geom.bounds
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise ValueError("the geometry is outside WGS84 longitude/latitude")
    except (ValueError, TypeError, shapely.errors.ShapelyError) as exc:
        problems.append(f"extent.spatial ignored: {exc}")
        return None, None
    return _jsonable(shapely.geometry.mapping(geom)), [w, s, e, n]


def _temporal(extent: Any, created: datetime, updated: datetime,
              problems: list[str]) -> tuple[datetime, datetime]:
    value = extent.get("temporal") if isinstance(extent, dict) else None
    if value is None:
        return created, updated
    if not isinstance(value, list) or len(value) != 2:
        problems.append("extent.temporal ignored: it must be [start, end]")
        return created, updated
    try:
        start, end = parse_datetime(value[0]), parse_datetime(value[1])
    except ValueError as exc:
        problems.append(f"extent.temporal ignored: {exc}")
        return created, updated
    start, end = start or created, end or updated
    if start > end:
        problems.append("extent.temporal ignored: start is after end")
        return created, updated
    return start, end


def _providers(value: Any, record: ProjectRecord, problems: list[str]) -> list[dict[str, Any]]:
    providers: list[dict[str, Any]] = []
    if isinstance(value, list):
        for p in value:
            if isinstance(p, dict) and p.get("name"):
                providers.append(_jsonable(p))
            else:
                problems.append(f"provider {p!r} has no name")
    elif value is not None:
        problems.append("providers must be a list")
    roles = {r for p in providers for r in (p.get("roles") or [])}
    if "host" not in roles:
        providers.append({"name": record.host_name or "GitLab", "roles": ["host"],
                          **({"url": record.web_url} if record.web_url else {})})
    if "producer" not in roles:
        top = record.id.split("/")[0]
        producer = {"name": top, "roles": ["producer"]}
        if record.host_url:
            producer["url"] = f"{record.host_url.rstrip('/')}/{top}"
        providers.append(producer)
    return providers


def _project_path(url: str) -> str:
    """``https://gitlab.example.com/group/project`` → ``group/project``."""
    path = urlsplit(url).path if "://" in url else url
    return path.strip("/").removesuffix(".git")


def _latest_release(record: ProjectRecord):
    if not record.releases:
        return None
    return max(record.releases, key=lambda r: (r.released_at or "", r.tag_name))


def _dvc_assets(record: ProjectRecord) -> tuple[dict[str, dict[str, Any]], list[str]]:
    if not record.dvc_files:
        return {}, []
    default_remote, remotes = dvc_outputs.parse_config(
        record.dvc_files.get(dvc_outputs.DVC_CONFIG, ""))
    outputs, problems = dvc_outputs.parse_outputs(record.dvc_files)
    found: dict[str, dict[str, Any]] = {}
    for out in outputs:
        remote = out.remote or default_remote
        url = remotes.get(remote) if remote else None
        href = dvc_outputs.remote_location(out, url) if url else None
        asset: dict[str, Any] = {
            "href": href or hrefs.download_href(record.id, out.source, record.default_branch),
            "title": f"{out.path} (DVC)",
            "roles": ["data", "dvc"] if href else ["metadata", "dvc"],
            "dvc:path": out.path,
        }
        if remote:
            asset["dvc:remote"] = remote
        if out.is_dir:
            asset["dvc:md5"] = out.md5
            if out.nfiles is not None:
                asset["dvc:nfiles"] = out.nfiles
        else:
            if media := asset_rules.guess_type(out.path):
                asset["type"] = media
            if out.md5 and not out.legacy_hash:
                asset["file:checksum"] = "d50110" + out.md5
            elif out.md5:
                asset["dvc:md5"] = out.md5
        if out.size is not None:
            asset["file:size"] = out.size
        if href is None:
            problems.append(f"DVC output {out.path}: no remote URL in .dvc/config"
                            if out.md5 else f"DVC output {out.path} has no md5")
        found[out.path] = asset
    return found, problems
