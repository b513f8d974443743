"""The library never imports the web layer: ``cadastre`` works without FastAPI."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_SCRIPT = textwrap.dedent(
    """
    import importlib, json, pkgutil, sys
    import cadastre
    names = ["cadastre"]
    for info in pkgutil.walk_packages(cadastre.__path__, "cadastre."):
        importlib.import_module(info.name)
        names.append(info.name)
    web = sorted(
        m for m in sys.modules
        if m.split(".")[0] in ("fastapi", "starlette", "api", "uvicorn")
    )
    print(json.dumps({"imported": names, "web": web}))
    """
)


def _walk() -> dict[str, list[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", _SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_library_does_not_import_the_web_layer() -> None:
    result = _walk()
    assert result["web"] == [], f"cadastre pulled in {result['web']}"


def test_walk_imports_every_submodule() -> None:
    imported = set(_walk()["imported"])
    expected = {
        "cadastre.cli",
        "cadastre.rules",
        "cadastre.ingest",
        "cadastre.db.licences",
        "cadastre.db.tables",
        "cadastre.db.migrate",
        "cadastre.domain.lifecycle",
        "cadastre.domain.geometry",
    }
    assert expected <= imported, expected - imported
