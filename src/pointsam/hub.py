"""Point-SAM weights by name: ``large`` (the official ViT-L), ``default`` (bundled) or ``hf://owner/repo[@rev]/file``.

Downloads go through ``huggingface_hub`` (an optional dependency: ``pip install 'pointsam[hub]'``),
so its cache, ``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` (mirrors) and
``HF_TOKEN`` work as everywhere else. A cached file is used without touching the network. A plain
folder mirror works too: ``POINTSAM_WEIGHTS_DIR=/models`` makes ``large`` read
``/models/yuchen0187/Point-SAM/model.safetensors`` when it exists. Every resolved safetensors file
is checked (header complete, tensor bytes as published, sha256 where known) before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

from pointsam.errors import CheckpointError

HF_PREFIX = "hf://"
MIRROR_ENV = "POINTSAM_WEIGHTS_DIR"
_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class ModelSource:
    """Where a named model lives and what its file must look like."""

    name: str
    repo_id: str
    filename: str
    revision: str | None = None
    config: str | None = None
    data_bytes: int | None = None  # total tensor bytes (elements x dtype size)
    sha256: str | None = None
    description: str = ""


#: Models known by name. The official ViT-L holds 311,042,732 float32 elements (1,244,170,928 bytes),
#: counted from the official architecture (see the project's official-code notes).
MODELS: dict[str, ModelSource] = {
    "large": ModelSource(
        "large", "yuchen0187/Point-SAM", "model.safetensors", config="large", data_bytes=1_244_170_928,
        description="official Point-SAM ViT-L (Apache-2.0, 1.24 GB)",
    ),
}
#: Names users may try that the authors have not published, with the reason.
UNPUBLISHED = {
    "giant": "the authors have not published Point-SAM giant weights (only the ViT-L 'large'); "
             "train one with `pointsam train --config giant` or pass --checkpoint PATH",
}
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class HfFile:
    """A file in a Hugging Face model repository, optionally pinned to a revision."""

    repo_id: str
    filename: str
    revision: str | None = None


def parse_hf_url(url: str) -> HfFile:
    """Parse ``hf://owner/repo[@revision][/path/in/repo]`` (the file defaults to model.safetensors)."""
    if not url.startswith(HF_PREFIX):
        raise CheckpointError(f"{url!r} is not an hf:// address")
    parts = url[len(HF_PREFIX):].strip("/").split("/")
    if len(parts) < 2 or not parts[0] or not parts[1]:
        raise CheckpointError(f"{url!r}: expected hf://owner/repo[@revision]/file, e.g. "
                              "hf://yuchen0187/Point-SAM@main/model.safetensors")
    repo, _, revision = parts[1].partition("@")
    filename = "/".join(parts[2:]) or "model.safetensors"
    if not repo or (revision == "" and "@" in parts[1]) or not re.fullmatch(r"[\w.-]+", parts[0] + repo):
        raise CheckpointError(f"{url!r}: bad repository name or empty @revision")
    return HfFile(f"{parts[0]}/{repo}", filename, revision or None)


def is_model_name(spec: object) -> bool:
    """True for strings this module resolves: a known name, an unpublished one, 'default' or hf://..."""
    return isinstance(spec, str) and (spec in MODELS or spec in UNPUBLISHED or spec == DEFAULT_NAME
                                      or spec.startswith(HF_PREFIX))


def config_for(spec: str) -> str | None:
    """The architecture preset of a named model ('large'), or None when the file must tell."""
    source = MODELS.get(spec)
    return source.config if source else None


def hf_cache_dir() -> Path:
    """The hub cache: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def is_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set (read now, not when huggingface_hub was imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def resolve(spec: str, *, progress: bool = True) -> Path:
    """Local path of a named model, downloading it (with progress) into the hub cache when needed."""
    if spec == DEFAULT_NAME:
        from pointsam.checkpoint import default_model_path

        return default_model_path()
    if spec in UNPUBLISHED:
        raise CheckpointError(f"no model {spec!r}: {UNPUBLISHED[spec]}")
    if spec.startswith(HF_PREFIX):
        file, source = parse_hf_url(spec), None
    elif spec in MODELS:
        source = MODELS[spec]
        file = HfFile(source.repo_id, source.filename, source.revision)
    else:
        known = ", ".join([*MODELS, DEFAULT_NAME])
        raise CheckpointError(f"unknown model name {spec!r}: use {known}, hf://owner/repo/file "
                              "or a file path")
    path = _from_mirror(file) or _download(file, progress=progress)
    verify_weights(path, data_bytes=source.data_bytes if source else None,
                   sha256=source.sha256 if source else None)
    return path


def resolve_checkpoint(checkpoint: str | Path | None) -> Path | None:
    """What `load_model` should open: an existing path as is, a model name resolved, None kept.

    A name that went through ``Path`` (an argparse ``type=Path`` option) is recognised too, even
    ``hf://`` squashed to ``hf:/``.
    """
    if checkpoint is None or Path(checkpoint).exists():
        return None if checkpoint is None else Path(checkpoint)
    spec = str(checkpoint)
    if isinstance(checkpoint, Path) and spec.startswith("hf:/") and not spec.startswith(HF_PREFIX):
        spec = HF_PREFIX + spec[len("hf:/"):]
    return resolve(spec) if is_model_name(spec) else Path(checkpoint)


def _from_mirror(file: HfFile) -> Path | None:
    root = os.environ.get(MIRROR_ENV)
    if not root:
        return None
    candidate = Path(root).expanduser() / file.repo_id / file.filename
    return candidate if candidate.is_file() else None


def _hub():
    try:
        import huggingface_hub
    except ImportError as exc:
        raise CheckpointError(
            "loading weights by name needs huggingface_hub: pip install 'pointsam[hub]' "
            "(or download model.safetensors yourself and pass its path with --checkpoint)") from exc
    return huggingface_hub


def _download(file: HfFile, progress: bool) -> Path:
    hub = _hub()
    from huggingface_hub import errors

    cache = hf_cache_dir()
    where = f"{file.repo_id}/{file.filename}" + (f"@{file.revision}" if file.revision else "")
    kwargs = dict(repo_id=file.repo_id, filename=file.filename, revision=file.revision, cache_dir=cache)
    try:
        return Path(hub.hf_hub_download(**kwargs, local_files_only=True))
    except errors.LocalEntryNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read {where} from the Hugging Face cache {cache}: {exc}") from exc
    if is_offline():
        raise CheckpointError(
            f"{where} is not in the Hugging Face cache {cache} and HF_HUB_OFFLINE is set, so it cannot be "
            f"downloaded. Download it once with network access (`hf download {file.repo_id} "
            f"{file.filename}`), point HF_HOME at a cache that holds it, or pass --checkpoint PATH")
    if progress:
        print(f"pointsam: downloading {where} into {cache} ...", file=sys.stderr, flush=True)
    try:
        return Path(hub.hf_hub_download(**kwargs))
    except errors.LocalEntryNotFoundError as exc:  # no connection, and not in the cache
        raise CheckpointError(
            f"could not download {where} and it is not in the Hugging Face cache {cache} ({exc}). "
            "Check the network (or HF_ENDPOINT for a mirror), copy the file into that cache, "
            "or pass --checkpoint PATH") from exc
    except errors.RepositoryNotFoundError as exc:
        raise CheckpointError(f"Hugging Face repository {file.repo_id!r} not found (or private: "
                              "set HF_TOKEN)") from exc
    except errors.RevisionNotFoundError as exc:
        raise CheckpointError(f"{file.repo_id}: no revision {file.revision!r}") from exc
    except errors.EntryNotFoundError as exc:
        raise CheckpointError(f"{file.repo_id}: no file {file.filename!r}") from exc
    except (OSError, ValueError) as exc:  # connection errors, HTTP errors, disk full
        raise CheckpointError(
            f"could not download {where} ({type(exc).__name__}: {exc}). Without network access, "
            f"copy the file into the cache {cache} or pass --checkpoint PATH") from exc


def safetensors_layout(path: Path) -> tuple[int, int]:
    """(header bytes, tensor bytes) of a safetensors file; CheckpointError when it is cut short."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: {size} bytes is too short for a safetensors file")
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, 100_000_000):
            raise CheckpointError(f"{path}: not a safetensors file (header length {header_len})")
        try:
            header = json.loads(fh.read(header_len))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from exc
    ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    data = max(ends, default=0)
    if size != 8 + header_len + data:
        raise CheckpointError(f"{path}: {size} bytes but its header describes {8 + header_len + data}: "
                              "the download is incomplete or the file is corrupt; delete it and retry")
    return header_len, data


def verify_weights(path: Path, data_bytes: int | None = None, sha256: str | None = None) -> None:
    """Check a weights file: a complete safetensors layout, the expected tensor bytes and sha256."""
    if not path.is_file():
        raise CheckpointError(f"{path}: no such weights file")
    if path.suffix.lower() != ".safetensors":
        return
    _, data = safetensors_layout(path)
    if data_bytes is not None and data != data_bytes:
        raise CheckpointError(f"{path}: holds {data:,} bytes of tensors, expected {data_bytes:,}: "
                              "not the published file")
    if sha256 is not None:
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                digest.update(block)
        if digest.hexdigest() != sha256.lower():
            raise CheckpointError(f"{path}: sha256 {digest.hexdigest()} differs from the published "
                                  f"{sha256}; delete it and download again")
