"""Boundaries the design depends on: web paths never import torch; ml/ never imports Django."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_importing_urls_and_views_does_not_import_torch():
    code = (
        "import django, sys; django.setup();"
        "import keyweb.urls, annotations.views, annotations.services, annotations.selectors, annotations.admin;"
        "from django.urls import resolve; resolve('/');"
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            "DJANGO_SETTINGS_MODULE": "keyweb.settings",
            "PATH": "/usr/bin:/bin",
            "KEYWEB_ENV": "test",
            "KEYWEB_VAR_DIR": "/tmp/keyweb-arch-test",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_ml_does_not_import_django():
    offenders = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "ml").rglob("*.py")
        if any(
            line.strip().startswith(("import django", "from django"))
            for line in path.read_text().splitlines()
        )
    ]
    assert offenders == []
