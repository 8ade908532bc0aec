"""A project record → STAC items (one per category the project is in).

SharingHub-compatible for every front-matter key it reads, then beyond: DVC outputs as assets,
native mlm v1.4, repair of invalid values with the problems reported.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import posixpath
import reprlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import numpy
import pystac
import shapely
import shapely.geometry
import shapely.wkt

from ..sources.records import ProjectRecord
from . import assets as asset_rules
from . import dvc_outputs, hrefs, markdown
from .categories import Category, categories_of
from .frontmatter import read_readme
from .problems import NO_MODEL_ASSET
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
#: properties the item computes, which front matter cannot replace (its times are the
#: project's, and ``extent.temporal``)
_COMPUTED = ("datetime", "start_datetime", "end_datetime", "created", "updated")
_PREVIEW_FILES = ("preview.png", "preview.jpg", "preview.jpeg")
_MLM_PREFIX = "mlm"
#: front-matter asset rules used (each is matched against every file of the repository)
MAX_ASSET_RULES = 100
#: assets the rules may give, and front-matter links and providers used: an item is validated
#: as a whole, and each round of repair of an item with 20,000 links took 7 s
MAX_RULE_ASSETS = 1000
MAX_LINKS = 100
MAX_PROVIDERS = 50
#: a problem's text, at most (it quotes values from the README)
MAX_PROBLEM_CHARS = 500
#: problems listed per project (a rule giving 5,000 files a bad field is 5,000 of them)
MAX_PROBLEMS = 100
#: geometries STAC items may have (GeoJSON; a collection holds no collection)
_GEOJSON_TYPES = {"Point", "LineString", "Polygon", "MultiPoint", "MultiLineString",
                  "MultiPolygon", "GeometryCollection"}
#: integers a JSON reader (and the index) holds: 64 bits, signed or not
_INT_RANGE = (-(2**63), 2**64 - 1)

log = logging.getLogger(__name__)

_short_repr = reprlib.Repr()
_short_repr.maxstring = _short_repr.maxother = 60
_short_repr.maxlist = _short_repr.maxtuple = _short_repr.maxdict = _short_repr.maxset = 4
_short_repr.maxlevel = 2


def short(value: Any) -> str:
    """``repr(value)``, bounded: problems quote README values, which may be huge."""
    return _short_repr.repr(value)


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
    try:
        base, problems = _base_item(record, categories)
        repaired, fixes = _repair_with_mlm(base)
    except Exception as exc:  # a mapping bug: the item still comes, from what GitLab says
        log.exception("mapping %s failed: its README and files are left out", record.id)
        bare = dataclasses.replace(record, readme=None, files=[], dvc_files={}, releases=[])
        base, problems = _base_item(bare, categories)
        repaired, fixes = _repair_with_mlm(base)
        problems.insert(0, f"the mapping failed ({type(exc).__name__}: {str(exc)[:200]}): "
                        "the item is built from the project's metadata only, without its "
                        "README and files")
    result.problems.extend(problems)
    result.problems.extend(fixes)
    listed = result.problems[:MAX_PROBLEMS - 1] if len(result.problems) > MAX_PROBLEMS else (
        result.problems)
    result.problems = [_problem_text(p) for p in listed] + (
        [f"... and {len(result.problems) - len(listed):,} more problems"]
        if len(listed) < len(result.problems) else [])
    for cat in cats:
        result.items.append(_in_category(repaired, cat))
    return result


def _problem_text(problem: Any) -> str:
    """A problem as the crawl status shows it: a bounded line of valid UTF-8."""
    text = _clean_str(str(problem))
    return text if len(text) <= MAX_PROBLEM_CHARS else text[: MAX_PROBLEM_CHARS - 3] + "..."


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
    problems.append(f"{NO_MODEL_ASSET} (an asset with role mlm:model, e.g. an .onnx file "
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
    meta, body, readme_problems = read_readme(record.readme)
    problems.extend(readme_problems)
    if record.readme is None:
        problems.append("no README.md: item built from the project's GitLab metadata only")
    meta = dict(meta)
    ref = record.default_branch or None
    category_ids = {c.gitlab_topic for c in categories}

    created = _safe_dt(record.created_at) or datetime.now(timezone.utc)
    updated = _safe_dt(record.last_activity_at) or created

    # --- geometry and time
    extent = meta.get("extent")
    if extent is not None and not isinstance(extent, dict):
        problems.append(f"extent ignored: it must be a mapping with spatial and temporal, "
                        f"not {short(extent)}")
        extent = None
    geometry, bbox = _spatial(extent.get("spatial") if extent else None, problems)
    start, end = _temporal(extent, created, updated, problems)

    props: dict[str, Any] = {
        "title": str(meta.get("title") or record.name),
        "datetime": iso(updated),
        "start_datetime": iso(start),
        "end_datetime": iso(end),
        "created": iso(created),
        "updated": iso(updated),
        "keywords": [t for t in record.topics if t not in category_ids],
    }
    if body or record.description:  # STAC wants no description rather than an empty one
        props["description"] = body or record.description
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
    declared = {str(prefix): url for prefix, url in declared.items()}
    for prefix, schema_url in declared.items():
        block = meta.pop(prefix, None)
        if not isinstance(schema_url, str):
            problems.append(f"extension {prefix}: schema must be a URL, not "
                            f"{short(schema_url)}, so it is not declared")
        elif schema_url not in known_schemas():
            problems.append(f"extension {prefix}: schema {short(schema_url)} is unknown "
                            "offline, so it is not declared")
        else:
            extensions.append(schema_url)
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
    meta_links = meta.get("links") or []
    if not isinstance(meta_links, list):
        problems.append(f"links ignored: a list of {{href, rel, ...}} is expected, not "
                        f"{short(meta_links)}")
        meta_links = []
    if len(meta_links) > MAX_LINKS:
        problems.append(f"links: {len(meta_links):,} given, only the first {MAX_LINKS} are used")
        meta_links = meta_links[:MAX_LINKS]
    for link in meta_links:
        if isinstance(link, dict) and link.get("href"):
            links.append({**{str(k): v for k, v in link.items()},
                          "rel": str(link.get("rel") or "related"),
                          "href": hrefs.resolve(str(link["href"]), record.id, ref)})
        else:
            problems.append(f"link {short(link)} has no href")
    related = meta.get("related") or {}
    if isinstance(related, dict):
        for collection, urls in related.items():
            urls = urls if isinstance(urls, list) else [urls]
            if len(urls) > MAX_LINKS:
                problems.append(f"related {short(collection)}: {len(urls):,} URLs, only the "
                                f"first {MAX_LINKS} are used")
                urls = urls[:MAX_LINKS]
            for url in urls:
                path = _project_path(url) if isinstance(url, str) else None
                if path:
                    links.append({"rel": "derived_from", "type": "application/geo+json",
                                  "title": f"{collection}: {path}",
                                  "href": hrefs.item_href(str(collection), path)})
                else:
                    problems.append(f"related {short(collection)}: {short(url)} is not a "
                                    "project URL")
    else:
        problems.append("related must be a mapping of collection → project URL(s)")

    # --- assets: category rules, then front-matter rules
    rules: list[dict[str, Any]] = []
    for cat in categories_of(record.topics, categories):
        cat_rules, _ = asset_rules.normalise_rules(list(cat.assets))
        rules.extend(cat_rules)
    fm_rules, rule_problems = asset_rules.normalise_rules(meta.get("assets"))
    if len(fm_rules) > MAX_ASSET_RULES:
        rule_problems.append(f"assets: {len(fm_rules)} rules, only the first "
                             f"{MAX_ASSET_RULES} are used")
        del fm_rules[MAX_ASSET_RULES:]
    rules.extend(fm_rules)
    problems.extend(rule_problems)
    found, chosen_roles = asset_rules.apply_rules(rules, record.files, item_id=record.id, ref=ref,
                                                  problems=problems, limit=MAX_RULE_ASSETS)
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
        if key in _COMPUTED:
            problems.append(f"front matter key {key} ignored: the item's times are the "
                            "project's (creation, last activity) and extent.temporal's")
        elif key not in _CONSUMED and key not in declared:
            props[key] = value

    item: dict[str, Any] = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": sorted(set(extensions)),
        "id": record.id,
        "geometry": geometry,
        **({"bbox": bbox} if bbox else {}),
        "properties": _jsonable(props, "properties", problems),
        "links": _jsonable(links, "links", problems),
        "assets": _jsonable(item_assets, "assets", problems),
    }
    return item, problems


# --- helpers ------------------------------------------------------------------------------


def _safe_dt(value: Any) -> datetime | None:
    try:
        return parse_datetime(value)
    except ValueError:
        return None


_LEFT_OUT = object()


def _jsonable(value: Any, where: str = "", problems: list[str] | None = None) -> Any:
    """``value`` as JSON holds it, what YAML gives included: dates and datetimes become
    strings, sets sorted lists, tuples lists, keys strings, lone surrogates U+FFFD; what JSON
    cannot hold (NaN, infinities, integers beyond 64 bits, ``!!binary`` bytes) is left out,
    and reported under its path ``where`` (``properties.foo.1``) in ``problems``."""
    if problems is None:
        problems = []
    out = _json_value(value, where, problems)
    return None if out is _LEFT_OUT else out


def _json_value(value: Any, where: str, problems: list[str]) -> Any:
    kind = type(value)
    if kind is str:
        return value if value.isascii() else _clean_str(value)
    if kind is bool or value is None:
        return value
    if kind is int:
        if _INT_RANGE[0] <= value <= _INT_RANGE[1]:
            return value
        return _left_out(where, "an integer beyond 64 bits", problems)
    if kind is float:
        return value if math.isfinite(value) else _left_out(
            where, f"{value} is not a JSON number", problems)
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            key = _clean_str(str(k))
            v = _json_value(v, f"{where}.{key}", problems)
            if v is not _LEFT_OUT:
                out[key] = v
        return out
    if isinstance(value, list | tuple | set | frozenset):
        if isinstance(value, set | frozenset):
            value = sorted(value, key=lambda v: (type(v).__name__, str(v)))
        out_list = []
        for i, v in enumerate(value):
            v = _json_value(v, f"{where}.{i}", problems)
            if v is not _LEFT_OUT:
                out_list.append(v)
        return out_list
    if isinstance(value, datetime):
        try:
            return iso(parse_datetime(value))
        except ValueError:  # out of range once in UTC: kept as written
            return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, bytes | bytearray):
        return _left_out(where, "binary data (!!binary) is not JSON", problems)
    for plain in (int, float, str):  # subclasses
        if isinstance(value, plain):
            return _json_value(plain(value), where, problems)
    return _left_out(where, f"a {kind.__name__} is not JSON", problems)


def _left_out(where: str, why: str, problems: list[str]) -> Any:
    problems.append(f"{where} left out: {why}")
    return _LEFT_OUT


def _clean_str(text: str) -> str:
    """``text`` as valid UTF-8: a surrogate pair becomes its character, a lone one U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _spatial(value: Any, problems: list[str]) -> tuple[dict | None, list[float] | None]:
    """``extent.spatial``: a bbox of four numbers, or WKT (or a GeoJSON geometry)."""
    if value in (None, "", []):
        return None, None
    with numpy.errstate(all="ignore"):  # NaN coordinates are reported, not warned about
        return _geometry(value, problems)


def _geometry(value: Any, problems: list[str]) -> tuple[dict | None, list[float] | None]:
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
        parts = getattr(geom, "geoms", ()) if geom.geom_type == "GeometryCollection" else ()
        for g in [geom, *parts]:
            if g.geom_type not in _GEOJSON_TYPES or (g is not geom and (
                    g.geom_type == "GeometryCollection" or g.is_empty)):
                raise ValueError(f"a {'nested ' if g is not geom else ''}"
                                 f"{'empty ' if g.is_empty else ''}{g.geom_type} is not a "
                                 "GeoJSON geometry an item may have")
        coords = shapely.get_coordinates(geom, include_z=geom.has_z)
        if not bool(numpy.isfinite(coords).all()):
            raise ValueError("the geometry has coordinates that are not finite numbers")
        w, s, e, n = geom.bounds
        if not (-180 <= w <= 180 and -180 <= e <= 180 and -90 <= s <= 90 and -90 <= n <= 90):
            raise ValueError("the geometry is outside WGS84 longitude/latitude")
    except Exception as exc:  # shapely raises more than ValueError on what people write
        message = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        problems.append(f"extent.spatial ignored: {message}")
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
        if len(value) > MAX_PROVIDERS:
            problems.append(f"providers: {len(value):,} given, only the first {MAX_PROVIDERS} "
                            "are used")
            value = value[:MAX_PROVIDERS]
        for p in value:
            if isinstance(p, dict) and p.get("name"):
                providers.append({str(k): v for k, v in p.items()})
            else:
                problems.append(f"provider {short(p)} has no name")
    elif value is not None:
        problems.append(f"providers must be a list, not {short(value)}")
    roles = {r for p in providers if isinstance(p.get("roles"), list)
             for r in p["roles"] if isinstance(r, str)}
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
    """``https://gitlab.example.com/group/project`` → ``group/project`` ("" if ``url`` is
    no URL)."""
    try:
        path = urlsplit(url).path if "://" in url else url
    except ValueError:  # "https://[": not a URL
        return ""
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
