"""Make sample_data/geology_synthetic.geojson: SYNTHETIC geology units tiling part of Chagai.

The units are invented: a jittered 6 x 5 grid of quadrilaterals over about
62.0-64.4 E, 28.6-29.6 N (Chagai district, Balochistan), each given a
made-up unit name, lithology and age. They tile the area exactly (neighbours
share their vertices), are valid after rounding to 6 decimals, and have
counter-clockwise rings (RFC 7946). The output is the same byte for byte on
every run (fixed seed, sorted keys, one feature per line). It is NOT a
geological map; nothing real should be read into it.

Usage: python sample_data/make_geology_synthetic.py [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import Polygon, mapping
from shapely.geometry.polygon import orient

SEED = 20261123
WEST, EAST, SOUTH, NORTH = 62.0, 64.4, 28.6, 29.6
COLUMNS, ROWS = 6, 5
JITTER = 0.2  # of a cell's size, interior grid nodes only

#: (lithology, age, short description), drawn per unit.
SUITES = (
    ("andesite and basaltic andesite flows", "Late Cretaceous", "volcanic arc"),
    ("porphyritic tonalite and granodiorite", "Miocene", "intrusive suite"),
    ("turbiditic sandstone and shale", "Eocene", "flysch basin"),
    ("reef limestone", "Paleocene", "carbonate platform"),
    ("alluvial gravel and sand", "Quaternary", "alluvial fan"),
    ("dune sand and playa silt", "Holocene", "desert cover"),
    ("dacitic tuff and volcaniclastics", "Pliocene", "volcanic cover"),
    ("serpentinised peridotite", "Jurassic", "ophiolite slice"),
)


def _label(i: int) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return letters[i] if i < len(letters) else letters[i // len(letters) - 1] + letters[i % 26]


def features() -> list[dict[str, object]]:
    rng = np.random.default_rng(SEED)
    dx = (EAST - WEST) / COLUMNS
    dy = (NORTH - SOUTH) / ROWS
    xs = np.linspace(WEST, EAST, COLUMNS + 1)
    ys = np.linspace(SOUTH, NORTH, ROWS + 1)
    nodes = np.stack(np.meshgrid(xs, ys, indexing="ij"), axis=-1)
    jitter = rng.uniform(-JITTER, JITTER, size=nodes.shape) * np.array([dx, dy])
    jitter[[0, -1], :, :] = 0  # the outline stays a rectangle
    jitter[:, [0, -1], :] = 0
    nodes = np.round(nodes + jitter, 6)
    suites = rng.integers(0, len(SUITES), size=COLUMNS * ROWS)
    out: list[dict[str, object]] = []
    for k, (i, j) in enumerate((i, j) for j in range(ROWS) for i in range(COLUMNS)):
        ring = [nodes[i, j], nodes[i + 1, j], nodes[i + 1, j + 1], nodes[i, j + 1]]
        poly = orient(Polygon([tuple(map(float, p)) for p in ring]), sign=1.0)
        if not poly.is_valid:
            raise SystemExit(f"unit {k}: {shapely.is_valid_reason(poly)}")
        lithology, age, setting = SUITES[int(suites[k])]
        unit = _label(k)
        out.append(
            {
                "type": "Feature",
                "properties": {
                    "unit": f"Synthetic unit {unit} – {setting}",
                    "code": f"SYN-{unit}",
                    "lithology": lithology,
                    "age": age,
                    "synthetic": True,
                },
                "geometry": mapping(poly),
            }
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "geology_synthetic.geojson"
    )
    args = parser.parse_args()
    lines = [json.dumps(f, sort_keys=True, ensure_ascii=False) for f in features()]
    text = '{"type": "FeatureCollection", "features": [\n' + ",\n".join(lines) + "\n]}\n"
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {len(lines)} SYNTHETIC geology units to {args.out}")


if __name__ == "__main__":
    main()
