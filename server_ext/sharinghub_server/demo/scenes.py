"""Sentinel-1-like flood chips for the demo, made up deterministically: what Sen1Floods11's
hand-labelled chips look like (VV and VH backscatter in dB, a water mask with -1 where
nobody labelled), small enough to train a per-pixel classifier in seconds.

Water is smooth and dark in SAR, land bright and textured; speckle is multiplicative
(gamma-distributed intensity), so the classes overlap pixel by pixel and a model that looks
at a neighbourhood does better than one that does not. Every chip is a pure function of its
name: the dataset is the same on every machine.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: chip side in pixels, and the pixel size in degrees (~10 m at these latitudes)
SIZE = 64
PIXEL_DEG = 0.0001
NODATA = -1


@dataclass(frozen=True)
class Event:
    """A flood event: where and when its chips were acquired."""

    name: str
    lon: float
    lat: float
    date: str  # acquisition date, ISO
    chips: int


#: v1.0 holds the first three events; v1.1 adds the fourth (and more of the first)
EVENTS_V1_0 = (
    Event("Spain_Ebro", -0.88, 41.65, "2018-04-14", 8),
    Event("France_Garonne", 0.62, 44.20, "2019-12-15", 8),
    Event("Germany_Rhine", 6.96, 50.94, "2018-01-06", 8),
)
EVENT_V1_1 = Event("Italy_Po", 9.70, 45.05, "2019-11-26", 8)


@dataclass(frozen=True)
class Chip:
    event: Event
    index: int

    @property
    def name(self) -> str:
        return f"{self.event.name}_{self.index:03d}"

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(west, south, east, north): chips of an event tile a strip east of its point."""
        west = self.event.lon + (self.index % 4) * SIZE * PIXEL_DEG
        north = self.event.lat - (self.index // 4) * SIZE * PIXEL_DEG
        return (round(west, 6), round(north - SIZE * PIXEL_DEG, 6),
                round(west + SIZE * PIXEL_DEG, 6), round(north, 6))


def chips_of(events: tuple[Event, ...]) -> list[Chip]:
    return [Chip(e, i) for e in events for i in range(e.chips)]


def _smooth(field: np.ndarray, passes: int) -> np.ndarray:
    """A cheap low-pass (repeated 3×3 box blur, edges wrapped): numpy only."""
    for _ in range(passes):
        field = sum(np.roll(np.roll(field, dy, 0), dx, 1)
                    for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9.0
    return field


def render(chip: Chip) -> tuple[np.ndarray, np.ndarray]:
    """(backscatter float32 (2, SIZE, SIZE): VV and VH in dB, label int16 (SIZE, SIZE):
    1 water, 0 land, -1 unlabelled) for ``chip``."""
    rng = np.random.default_rng(zlib.crc32(chip.name.encode()))
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    # a river meandering across the chip, widened by the flood, plus flooded fields
    angle = rng.uniform(0, np.pi)
    across = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle)
    along = -(x - 0.5) * np.sin(angle) + (y - 0.5) * np.cos(angle)
    meander = 0.12 * np.sin(2 * np.pi * rng.uniform(0.6, 1.6) * along + rng.uniform(0, 6.3))
    width = rng.uniform(0.05, 0.16)
    blobs = _smooth(rng.normal(size=(SIZE, SIZE)), 12)
    blobs /= blobs.std() + 1e-9
    water = (np.abs(across - meander) < width) | (blobs > rng.uniform(0.9, 1.6))

    # what makes it hard, as in real scenes: smooth dark land (bare fields, tarmac, radar
    # shadow), wind-roughened water, flooded vegetation that is bright (double bounce) yet
    # water, and each event's own calibration
    dark_land = ~water & (_smooth(rng.normal(size=(SIZE, SIZE)), 8) > rng.uniform(0.25, 0.5))
    rough = water & (_smooth(rng.normal(size=(SIZE, SIZE)), 6) > rng.uniform(0.05, 0.3))
    bright_water = water & ~rough & (_smooth(rng.normal(size=(SIZE, SIZE)), 4)
                                     > rng.uniform(0.15, 0.35))
    offset = (zlib.crc32(chip.event.name.encode()) % 200) / 100 - 1.0  # ±1 dB per event

    def band(land_db: float, water_db: float, dark_db: float, rough_db: float,
              bright_db: float) -> np.ndarray:
        base = np.full((SIZE, SIZE), land_db) + offset
        base += 2.5 * _smooth(rng.normal(size=(SIZE, SIZE)), 3) * 3 * ~water  # texture
        base[dark_land] = dark_db + offset
        base[water] = water_db + offset
        base[rough] = rough_db + offset
        base[bright_water] = bright_db + offset
        looks = 4.4  # Sentinel-1 GRD: about 4.4 equivalent looks
        speckle = rng.gamma(looks, 1 / looks, size=(SIZE, SIZE))
        return (base + 10 * np.log10(speckle)).astype(np.float32)

    vv = band(rng.uniform(-10.5, -7.5), rng.uniform(-21, -18), rng.uniform(-15, -12),
              rng.uniform(-15, -12), rng.uniform(-9, -6))
    vh = band(rng.uniform(-17.5, -14.5), rng.uniform(-28, -25), rng.uniform(-23, -20),
              rng.uniform(-23, -20), rng.uniform(-17, -14))
    label = water.astype(np.int16)
    if rng.random() < 0.3:  # a corner the annotators skipped, as in the real hand labels
        label[: rng.integers(4, 12), : rng.integers(8, 24)] = NODATA
    return np.stack([vv, vh]), label


def write_geotiff(path: Path, data: np.ndarray, bbox: tuple[float, float, float, float],
                  nodata: float | None = None) -> None:
    """A GeoTIFF in EPSG:4326 (what GDAL, rasterio and QGIS read): the pixel grid from
    ``bbox``, bands first."""
    import tifffile

    west, _, _, north = bbox
    height, width = data.shape[-2:]
    scale = ((bbox[2] - west) / width, (north - bbox[1]) / height, 0.0)
    # GeoKeyDirectory: version 1.1.0, 3 keys: geographic model, pixel is area, WGS 84
    geokeys = (1, 1, 0, 3, 1024, 0, 1, 2, 1025, 0, 1, 1, 2048, 0, 1, 4326)
    tags = [(33550, "d", 3, scale, True), (33922, "d", 6, (0, 0, 0, west, north, 0), True),
            (34735, "H", len(geokeys), geokeys, True)]
    if nodata is not None:
        tags.append((42113, "s", 0, f"{nodata:g}", True))  # GDAL_NODATA
    path.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(path, data, photometric="minisblack",
                     planarconfig="separate" if data.ndim == 3 else None,
                     compression="zlib", extratags=tags)


def write_chip(root: Path, chip: Chip) -> None:
    """``S1Hand/<chip>_S1Hand.tif`` and ``LabelHand/<chip>_LabelHand.tif``, as in
    Sen1Floods11."""
    s1, label = render(chip)
    write_geotiff(root / "S1Hand" / f"{chip.name}_S1Hand.tif", s1, chip.bbox)
    write_geotiff(root / "LabelHand" / f"{chip.name}_LabelHand.tif", label, chip.bbox,
                  nodata=NODATA)
