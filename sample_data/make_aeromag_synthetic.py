"""Make the SYNTHETIC aeromagnetic sample grid over Chagai (Balochistan).

Not a survey: a total-field magnetic anomaly grid invented for demonstrations
and tests, deterministic (fixed seed). It is the sum of

* induced point dipoles under five real porphyry Cu-Au prospects (positions
  from USGS "Porphyry copper deposits of the world", as shipped in
  pakistan_mineral_occurrences_usgs.geojson): Saindak, Reko Diq, Koh-i-Dalil,
  Ziarat Pir Sultan, Dasht-e-Kain; magnetised along an inducing field of
  inclination 47 deg, declination 2 deg (roughly the IGRF field over Chagai),
  so each has its positive lobe to the south and a weaker negative to the north;
* a gentle regional gradient and smooth random "geology" texture;
* 0.5 nT of noise.

Grid: 620 x 360 pixels of 500 m in WGS 84 / UTM zone 41N (EPSG:32641),
x 340,000-650,000 m, y 3,150,000-3,330,000 m (about 61.4-64.6 E, 28.5-30.1 N);
float32, nT; nodata -99999 outside an irregular flight-survey outline and in
one data gap (an unflown block) east of Reko Diq.

    python sample_data/make_aeromag_synthetic.py [--out sample_data/aeromag_chagai_synthetic.tif]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.transform import from_origin

SEED = 20261123
CRS = "EPSG:32641"
PIXEL = 500.0
WIDTH, HEIGHT = 620, 360
X0, Y1 = 340_000.0, 3_330_000.0
NODATA = -99999.0
INCLINATION, DECLINATION = np.radians(47.0), np.radians(2.0)

# name, lon, lat, depth to the dipole (m), moment scale (nT at the peak, roughly)
PROSPECTS = (
    ("Saindak", 61.584722, 29.270833, 4500.0, 420.0),
    ("Reko Diq", 62.078889, 29.122778, 6000.0, 650.0),
    ("Koh-i-Dalil", 62.194167, 29.1225, 3500.0, 300.0),
    ("Ziarat Pir Sultan", 64.141667, 29.4, 5000.0, 350.0),
    ("Dasht-e-Kain", 64.504167, 29.554444, 5500.0, 380.0),
)

DEFAULT_OUT = Path(__file__).resolve().parent / "aeromag_chagai_synthetic.tif"


def _dipole(xx: np.ndarray, yy: np.ndarray, x: float, y: float, depth: float) -> np.ndarray:
    """Total-field anomaly of a unit induced dipole at (x, y, -depth), peak scaled to 1."""
    f = np.array(
        [
            np.cos(INCLINATION) * np.sin(DECLINATION),  # east
            np.cos(INCLINATION) * np.cos(DECLINATION),  # north
            -np.sin(INCLINATION),  # up (the field points down in the north)
        ]
    )
    rx, ry, rz = xx - x, yy - y, np.full_like(xx, depth)
    r2 = rx * rx + ry * ry + rz * rz
    r = np.sqrt(r2)
    mdotr = f[0] * rx + f[1] * ry + f[2] * rz
    b = [(3 * mdotr * c / r2 - f[i]) / r**3 for i, c in enumerate((rx, ry, rz))]
    t = b[0] * f[0] + b[1] * f[1] + b[2] * f[2]
    return t / np.abs(t).max()


def _smooth_noise(rng: np.random.Generator, scale_px: float) -> np.ndarray:
    """Gaussian-filtered white noise (FFT), unit standard deviation."""
    white = rng.standard_normal((HEIGHT, WIDTH))
    ky = np.fft.fftfreq(HEIGHT)[:, None]
    kx = np.fft.rfftfreq(WIDTH)[None, :]
    spectrum = np.fft.rfft2(white) * np.exp(-2 * (np.pi * scale_px) ** 2 * (kx**2 + ky**2))
    field = np.fft.irfft2(spectrum, s=(HEIGHT, WIDTH))
    return np.asarray(field / field.std())


def make_grid() -> np.ndarray:
    """The anomaly grid (nT, float32) with nodata outside the survey and in the gap."""
    rng = np.random.default_rng(SEED)
    cols = np.arange(WIDTH) + 0.5
    rows = np.arange(HEIGHT) + 0.5
    xx, yy = np.meshgrid(X0 + cols * PIXEL, Y1 - rows * PIXEL)
    to_utm = Transformer.from_crs("EPSG:4326", CRS, always_xy=True)
    grid = np.zeros((HEIGHT, WIDTH))
    for _name, lon, lat, depth, peak in PROSPECTS:
        x, y = to_utm.transform(lon, lat)
        grid += peak * _dipole(xx, yy, x, y, depth)
    grid += 0.00012 * (xx - xx.mean()) - 0.00008 * (yy - yy.mean())  # regional, nT/m
    grid += 15.0 * _smooth_noise(rng, 15.0) + 4.0 * _smooth_noise(rng, 4.0)
    grid += 0.5 * rng.standard_normal(grid.shape)
    grid = np.round(grid, 1)

    # The flown area: an irregular outline (cut corners, ragged edges) and one unflown block.
    ragged = 6 + 4 * _smooth_noise(rng, 8.0)
    r, c = np.mgrid[0:HEIGHT, 0:WIDTH]
    outside = (r < ragged) | (HEIGHT - 1 - r < ragged) | (c < ragged) | (WIDTH - 1 - c < ragged)
    outside |= (r + c) < 60  # north-west corner not flown
    outside |= (HEIGHT - 1 - r) + (WIDTH - 1 - c) < 90  # south-east corner not flown
    gx, gy = to_utm.transform(62.6, 29.3)
    gap_c, gap_r = int((gx - X0) / PIXEL), int((Y1 - gy) / PIXEL)
    outside[gap_r - 12 : gap_r + 12, gap_c - 20 : gap_c + 20] = True
    grid[outside] = NODATA
    return grid.astype(np.float32)


def write(out: Path) -> None:
    profile = {
        "driver": "GTiff",
        "width": WIDTH,
        "height": HEIGHT,
        "count": 1,
        "dtype": "float32",
        "crs": CRS,
        "transform": from_origin(X0, Y1, PIXEL, PIXEL),
        "nodata": NODATA,
        "compress": "deflate",
        "predictor": 3,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
    }
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(make_grid(), 1)
        dst.update_tags(
            SYNTHETIC="yes: invented for demonstration; not a survey",
            UNITS="nT",
            GENERATOR="sample_data/make_aeromag_synthetic.py",
        )
        dst.set_band_description(1, "total magnetic intensity anomaly (SYNTHETIC), nT")
        dst.update_tags(1, units="nT")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    write(args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
