"""Fixtures for the Django side: users with roles, and short synthetic audio files (good and bad)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from django.contrib.auth.models import Group, User
from django.core.management import call_command

from tests.factories import write_synthetic


@pytest.fixture
def roles(db):
    call_command("setup_keyweb", stdout=open("/dev/null", "w"))
    return {group.name: group for group in Group.objects.all()}


def _user(roles, name: str, role: str, staff: bool = False) -> User:
    user = User.objects.create_user(username=name, password=f"{name}-password-1")
    user.is_staff = staff
    user.save()
    user.groups.add(roles[role])
    return user


@pytest.fixture
def annotator(roles) -> User:
    return _user(roles, "anna", "annotator")


@pytest.fixture
def admin_user(roles) -> User:
    return _user(roles, "ada", "admin", staff=True)


@pytest.fixture
def good_files(tmp_path) -> list[Path]:
    folder = tmp_path / "library"
    return [
        write_synthetic(folder / "one.wav", key="C major", seed=1),
        write_synthetic(folder / "sub" / "two.flac", key="A minor", seed=2),
        write_synthetic(folder / "sub" / "three.mp3", key="Eb major", seed=3),
    ]


@pytest.fixture
def bad_files(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "bad"
    folder.mkdir()
    files = {
        "empty": folder / "empty.wav",
        "text": folder / "notes.wav",
        "corrupt": folder / "corrupt.flac",
        "silent": folder / "silent.wav",
        "truncated": folder / "truncated.wav",
    }
    files["empty"].write_bytes(b"")
    files["text"].write_text("this is a shopping list, not audio\n" * 20)
    files["corrupt"].write_bytes(b"fLaC" + np.random.default_rng(0).bytes(5000))
    soundfile.write(files["silent"], np.zeros(22050 * 3, dtype=np.float32), 22050)
    good = write_synthetic(folder / "full.wav", key="G major", seed=9)
    files["truncated"].write_bytes(good.read_bytes()[:40])
    good.unlink()
    return files
