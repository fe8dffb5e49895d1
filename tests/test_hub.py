"""Weights by name, offline, against a real Hugging Face cache layout built in a temporary HF_HOME."""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from pointsam import hub
from pointsam.checkpoint import default_model_path, load_model, save_model
from pointsam.errors import CheckpointError

from conftest import REFERENCE, require, tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_file(home, repo_id: str, filename: str, data: bytes | None = None, size: int | None = None,
               revision: str = "main", commit: str = COMMIT):
    """Put a file into HF_HOME/hub the way huggingface_hub stores it: blob, snapshot link, ref."""
    repo = home / "hub" / f"models--{repo_id.replace('/', '--')}"
    blob = repo / "blobs" / f"blob{len(list((repo / 'blobs').glob('*'))) if (repo / 'blobs').exists() else 0}"
    blob.parent.mkdir(parents=True, exist_ok=True)
    with open(blob, "wb") as fh:
        fh.write(data or b"")
        if size is not None:
            fh.truncate(size)  # sparse: the bytes after the header are never written to disk
    snap = repo / "snapshots" / commit / filename
    snap.parent.mkdir(parents=True, exist_ok=True)
    snap.symlink_to(blob)
    if not re.fullmatch(r"[0-9a-f]{40}", revision):
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / revision).write_text(commit)
    return snap


def official_large_header() -> tuple[bytes, int]:
    """A safetensors header listing every tensor of the official ViT-L, and the file's full size."""
    header, offset = {}, 0
    for line in require(REFERENCE / "official_large_state_dict.tsv").read_text().splitlines():
        key, shape = line.split("\t")
        dims = [int(d) for d in re.findall(r"\d+", shape)]
        nbytes = 4 * int(np.prod(dims))
        header[key] = {"dtype": "F32", "shape": dims, "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, 8 + len(raw) + offset


@pytest.fixture
def hf_home(tmp_path, monkeypatch):
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return home


def test_large_resolves_offline_from_a_populated_cache(hf_home, capsys):
    head, size = official_large_header()
    assert size - len(head) == hub.MODELS["large"].data_bytes  # the official element count, in float32
    snap = cache_file(hf_home, "yuchen0187/Point-SAM", "model.safetensors", head, size)
    path = hub.resolve("large")
    assert path == snap and path.stat().st_size == size
    assert hub.config_for("large") == "large"
    assert "downloading" not in capsys.readouterr().err


def test_an_incomplete_large_download_is_refused(hf_home):
    head, size = official_large_header()
    cache_file(hf_home, "yuchen0187/Point-SAM", "model.safetensors", head, size - 4096)
    with pytest.raises(CheckpointError, match="incomplete"):
        hub.resolve("large")


def test_a_different_file_under_the_official_name_is_refused(hf_home, tmp_path):
    save_model(tiny_model(), tmp_path / "tiny.safetensors")
    data = (tmp_path / "tiny.safetensors").read_bytes()
    cache_file(hf_home, "yuchen0187/Point-SAM", "model.safetensors", data)
    with pytest.raises(CheckpointError, match="not the published file"):
        hub.resolve("large")


def test_offline_and_not_cached_says_what_to_do(hf_home):
    hint = "HF_HUB_OFFLINE.*hf download yuchen0187/Point-SAM model.safetensors"
    with pytest.raises(CheckpointError, match=hint):
        hub.resolve("large")


def test_hf_url_with_pinned_revision_loads_the_model(hf_home, tmp_path):
    model = tiny_model(seed=5)
    save_model(model, tmp_path / "w.safetensors")
    data = (tmp_path / "w.safetensors").read_bytes()
    cache_file(hf_home, "someone/tiny-pointsam", "ckpt/w.safetensors", data, revision=COMMIT)
    other = "f" * 40
    cache_file(hf_home, "someone/tiny-pointsam", "ckpt/w.safetensors", data[:-1] + b"x", revision="main",
               commit=other)
    path = hub.resolve_checkpoint(f"hf://someone/tiny-pointsam@{COMMIT}/ckpt/w.safetensors")
    assert COMMIT in str(path)
    # The same address after an argparse type=Path option squashed its '//'.
    assert hub.resolve_checkpoint(Path(f"hf://someone/tiny-pointsam@{COMMIT}/ckpt/w.safetensors")) == path
    loaded = load_model(path, device="cpu")
    for (k, a), b in zip(model.state_dict().items(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    # The unpinned address follows refs/main to the other snapshot.
    assert other in str(hub.resolve("hf://someone/tiny-pointsam/ckpt/w.safetensors"))


def test_folder_mirror_and_default_and_paths(hf_home, tmp_path, monkeypatch):
    assert hub.resolve("default") == default_model_path()
    assert hub.resolve_checkpoint(Path("default")) == default_model_path()
    assert hub.resolve_checkpoint(None) is None
    assert hub.resolve_checkpoint(str(tmp_path / "x.pt")) == tmp_path / "x.pt"
    (tmp_path / "large").write_bytes(b"a file literally called large")
    monkeypatch.chdir(tmp_path)
    assert hub.resolve_checkpoint("large").name == "large"  # an existing path wins over a name
    mirror = tmp_path / "mirror" / "someone" / "m"
    mirror.mkdir(parents=True)
    save_model(tiny_model(), mirror / "model.safetensors")
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path / "mirror"))
    assert hub.resolve("hf://someone/m") == mirror / "model.safetensors"


@pytest.mark.parametrize("spec, match", [
    ("giant", "not published"),
    ("huge", "unknown model name"),
    ("hf://only-owner", "expected hf://owner/repo"),
    ("hf://owner/repo@/f", "empty @revision"),
])
def test_bad_names(hf_home, spec, match):
    with pytest.raises(CheckpointError, match=match):
        hub.resolve(spec)


def test_missing_huggingface_hub_gives_install_hint(hf_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(CheckpointError, match=r"pointsam\[hub\]"):
        hub.resolve("large")


def test_parse_hf_url():
    pinned = hub.parse_hf_url("hf://a/b@v1.0/sub/f.safetensors")
    assert pinned == hub.HfFile("a/b", "sub/f.safetensors", "v1.0")
    assert hub.parse_hf_url("hf://a/b") == hub.HfFile("a/b", "model.safetensors", None)
