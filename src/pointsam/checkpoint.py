"""Loading and saving Point-SAM weights: safetensors first, never an unsafe unpickle."""

from __future__ import annotations

import dataclasses
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from pointsam.errors import CheckpointError
from pointsam.modeling import PointSAM, PointSAMConfig, build_model
from pointsam.modeling.eva import IMAGE_ONLY_KEYS

CONFIG_METADATA_KEY = "pointsam_config"
_WRAPPER_KEYS = ("state_dict", "model", "module")

# Parts of timm's image ViT that the official checkpoint stores but Point-SAM never runs.
_VIT = "pc_encoder.transformer."
UNUSED_VIT_KEYS = tuple(_VIT + k for k in IMAGE_ONLY_KEYS)

# Largest value a config field read from a file's metadata may take (guards against hostile files).
_METADATA_LIMITS = dict(
    num_patches=65_536, patch_size=65_536, vit_width=16_384, vit_depth=256, vit_heads=256,
    embed_dim=8_192, decoder_depth=64, decoder_heads=256, decoder_mlp_dim=65_536, vit_mlp_dim=65_536,
    vit_img_size=8_192, vit_patch_size=1_024, vit_num_classes=100_000, patch_embed_dim=16_384,
    num_multimask_outputs=16,
)
_POINTNET_LIMIT = 16_384


def checkpoint_filter_fn(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop the official file's image-ViT keys that Point-SAM never uses (timm's filter idea)."""
    return {k: v for k, v in state_dict.items() if k not in UNUSED_VIT_KEYS}


def official_state_dict(model: PointSAM) -> dict[str, torch.Tensor]:
    """The model's state dict in the official layout: the unused image-ViT keys added as zeros."""
    cfg = model.config
    state = dict(model.state_dict())
    ref = state["pc_encoder.patch_proj.weight"]
    w, grid, patch = cfg.vit_width, cfg.vit_img_size // cfg.vit_patch_size, cfg.vit_patch_size
    shapes = [(1, 1, w), (1, grid * grid + 1, w), (w, 3, patch, patch), (w,), (cfg.vit_num_classes, w),
              (cfg.vit_num_classes,)]
    for key, shape in zip(UNUSED_VIT_KEYS, shapes, strict=True):
        state[key] = torch.zeros(shape, dtype=ref.dtype, device=ref.device)
    return state


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint's tensors and metadata (safetensors, or .pt/.pth with weights_only)."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a directory; pass the weights file inside it "
                              "(e.g. model.safetensors)")
    if not path.is_file():
        raise CheckpointError(
            f"checkpoint not found: {path}. The official Point-SAM weights are model.safetensors "
            "in the authors' Hugging Face repository yuchen0187/Point-SAM; pass its path"
        )
    if path.suffix.lower() == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"{path} is not a readable safetensors file ({exc})") from exc
        return tensors, metadata
    if path.suffix.lower() in (".pt", ".pth", ".bin", ".ckpt"):
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path} is empty (0 bytes): the file was not written completely")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad or unsafe pickles
            raise CheckpointError(_torch_load_failure(path, exc)) from None
        while isinstance(obj, dict) and any(k in obj for k in _WRAPPER_KEYS) and not any(
            isinstance(v, torch.Tensor) for v in obj.values()
        ):
            obj = next(obj[k] for k in _WRAPPER_KEYS if k in obj)
        if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
            raise CheckpointError(f"{path} does not hold a state dict of tensors")
        return obj, {}
    raise CheckpointError(
        f"unsupported checkpoint extension {path.suffix!r} for {path}; use .safetensors "
        "(or .pt/.pth, loaded with weights_only=True)"
    )


def _torch_load_failure(path: Path, exc: Exception) -> str:
    """A message for a refused or broken .pt file, without torch's 'weights_only=False' advice."""
    text = str(exc)
    if "Weights only load failed" in text or "Unsupported global" in text:
        detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line), "")
        return (f"{path} holds Python objects besides tensors and was refused: pointsam never unpickles "
                f"code (torch.load weights_only=True){'; ' + detail if detail else ''}. Save the "
                "weights as a plain state dict or as .safetensors")
    if isinstance(exc, EOFError) or "Ran out of input" in text:
        return f"{path} ends early (truncated or empty pickle, {path.stat().st_size} bytes)"
    first = text.splitlines()[0] if text else type(exc).__name__
    return f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {first})"


def infer_config(state_dict: dict[str, torch.Tensor], **overrides) -> PointSAMConfig:
    """Guess the architecture of an official-layout state dict from its tensor shapes."""
    try:
        width = state_dict["pc_encoder.patch_proj.weight"].shape[0]
        variant = "eva" if "pc_encoder.transformer.blocks.0.attn.qkv.weight" in state_dict else "eva02"
        depth = 1 + max(
            int(k.split(".")[3]) for k in state_dict if k.startswith("pc_encoder.transformer.blocks.")
        )
        mlp_key = "fc1.weight" if variant == "eva" else "fc1_g.weight"
        mlp = state_dict[f"pc_encoder.transformer.blocks.0.mlp.{mlp_key}"].shape[0]
        default = PointSAMConfig()
        pos = state_dict.get(_VIT + "pos_embed")
        proj = state_dict.get(_VIT + "patch_embed.proj.weight")
        head = state_dict.get(_VIT + "head.weight")
        patch = proj.shape[-1] if proj is not None else default.vit_patch_size
        img = int(round((pos.shape[1] - 1) ** 0.5)) * patch if pos is not None else default.vit_img_size
        classes = head.shape[0] if head is not None else default.vit_num_classes
        embed = state_dict["pc_encoder.out_proj.weight"].shape[0]
        pn = "pc_encoder.patch_embed.patch_encoder"
        hidden = (state_dict[f"{pn}.conv1.0.weight"].shape[0], state_dict[f"{pn}.conv2.0.weight"].shape[0])
        patch_embed_dim = state_dict[f"{pn}.conv2.3.weight"].shape[0]
        dec_mlp = state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
    except (KeyError, ValueError, IndexError) as exc:
        raise CheckpointError(
            f"the checkpoint does not look like a Point-SAM model (missing {exc})"
        ) from exc
    heads = {1024: 16, 1408: 16, 768: 12}.get(width, max(1, width // 64))
    fields = dict(
        vit_variant=variant, vit_width=width, vit_depth=depth, vit_heads=heads, vit_mlp_dim=mlp,
        vit_img_size=img, vit_patch_size=patch,
        vit_num_classes=classes, embed_dim=embed, pointnet_hidden=hidden,
        patch_embed_dim=patch_embed_dim, decoder_mlp_dim=dec_mlp,
    )
    try:
        return PointSAMConfig(**{**fields, **overrides})
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint's tensor shapes give no valid Point-SAM config: {exc}"
                              ) from exc


def _describe_mismatch(model: PointSAM, state_dict: dict[str, torch.Tensor]) -> str:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if state_dict[k].shape != expected[k].shape
    ]
    parts = []
    for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                         ("shape mismatches", shapes)):
        if items:
            shown = ", ".join(items[:5]) + (f", ... ({len(items)} in all)" if len(items) > 5 else "")
            parts.append(f"{title}: {shown}")
    return "; ".join(parts)


_ARCH_FIELDS = ("vit_variant", "vit_width", "vit_depth", "vit_heads", "vit_mlp_dim", "embed_dim",
                "decoder_depth", "decoder_heads", "decoder_mlp_dim", "patch_embed_dim",
                "num_multimask_outputs", "pointnet_hidden")


def _same_architecture(a: PointSAMConfig, b: PointSAMConfig) -> bool:
    return all(getattr(a, f) == getattr(b, f) for f in _ARCH_FIELDS) and a.mlp_hidden_dim == b.mlp_hidden_dim


def describe_architecture(cfg: PointSAMConfig) -> str:
    """One line naming an architecture: the preset it matches, or its ViT sizes."""
    for name in ("large", "giant", "base"):
        if _same_architecture(cfg, PointSAMConfig.preset(name)):
            return f"the {name!r} preset"
    return (f"a custom architecture (vit_variant={cfg.vit_variant!r}, vit_width={cfg.vit_width}, "
            f"vit_depth={cfg.vit_depth}, embed_dim={cfg.embed_dim})")


def load_state_dict_checked(model: PointSAM, state_dict: dict[str, torch.Tensor]) -> None:
    """Strictly load `state_dict` (unused official keys dropped), naming every mismatch."""
    state_dict = checkpoint_filter_fn(state_dict)
    problems = _describe_mismatch(model, state_dict)
    if problems:
        hint = ""
        try:
            guessed = infer_config(state_dict)
            hint = (f" The checkpoint's tensors look like {describe_architecture(guessed)}; load it "
                    "without a config (config=None) to build exactly that.")
        except CheckpointError:
            pass
        raise CheckpointError(f"checkpoint does not match the model architecture: {problems}.{hint}")
    model.load_state_dict(state_dict, strict=True, assign=True)


def config_from_metadata(metadata: dict[str, str]) -> tuple[PointSAMConfig | None, str]:
    """The config stored in a file's metadata, or (None, why it cannot be used) if absent or invalid."""
    raw = metadata.get(CONFIG_METADATA_KEY)
    if raw is None:
        return None, "the file stores no config"
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        return None, f"its '{CONFIG_METADATA_KEY}' metadata is not valid JSON ({exc})"
    if not isinstance(data, dict):
        return None, f"its '{CONFIG_METADATA_KEY}' metadata is a {type(data).__name__}, not an object"
    known = {f.name for f in dataclasses.fields(PointSAMConfig)}
    unknown = sorted(str(k) for k in set(data) - known)
    if unknown:
        return None, f"its '{CONFIG_METADATA_KEY}' metadata has unknown fields {unknown[:5]}"
    for name, value in data.items():
        limit = _METADATA_LIMITS.get(name)
        if name == "vit_mlp_dim" and value is None:
            continue
        if limit is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not 1 <= value <= limit):
            return None, f"its metadata field {name}={_short(value)} is not an integer in [1, {limit}]"
        if name == "pointnet_hidden" and not (
            isinstance(value, list) and len(value) == 2
            and all(isinstance(h, int) and not isinstance(h, bool) and 1 <= h <= _POINTNET_LIMIT
                    for h in value)):
            return None, f"its metadata field pointnet_hidden={_short(value)} is not two sizes"
    try:
        return PointSAMConfig.from_dict(data), ""
    except (ValueError, TypeError) as exc:
        return None, f"its '{CONFIG_METADATA_KEY}' metadata is not a valid config ({exc})"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_tensors(path: Path, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Float weights in float32 (half / double are cast); other dtypes and NaN/Inf are refused."""
    out = {}
    bad_dtype = [k for k, v in state_dict.items() if not v.is_floating_point()]
    if bad_dtype:
        k = bad_dtype[0]
        raise CheckpointError(
            f"{path}: {len(bad_dtype)} tensor(s) are not floating point (first: {k}, "
            f"{state_dict[k].dtype}); Point-SAM weights must be float16/bfloat16/float32/float64 "
            "(quantized checkpoints are not supported)")
    nonfinite = []
    for k, v in state_dict.items():
        v = v if v.dtype == torch.float32 else v.float()
        if not torch.isfinite(v).all():
            nonfinite.append(k)
        out[k] = v
    if nonfinite:
        raise CheckpointError(
            f"{path}: {len(nonfinite)} of {len(state_dict)} tensors contain NaN or Inf (first: "
            f"{nonfinite[0]}); the file is corrupt or comes from a diverged training run")
    return out


DEFAULT_MODEL_FILE = "default_model.safetensors"


def default_model_path() -> Path:
    """Path of the small default model shipped inside the package (see assets/MODEL_CARD.md)."""
    return Path(__file__).resolve().parent / "assets" / DEFAULT_MODEL_FILE


def load_model(
    checkpoint: str | Path | None = None,
    config: PointSAMConfig | str | None = None,
    device: torch.device | str | None = None,
) -> PointSAM:
    """Load a Point-SAM model for inference (eval mode) from a checkpoint file.

    With no `checkpoint`, loads the small default model bundled with the package. A checkpoint that
    is not an existing path may name a model: 'default' (the bundled one), 'large' (the official
    weights, through the Hugging Face cache) or 'hf://owner/repo[@revision]/file' (see `pointsam.hub`).

    `config`: None (default) or 'auto' uses the config stored in the file, else the architecture
    the tensors' shapes show (the official files load this way). A preset name ('large', 'giant',
    'base') or a `PointSAMConfig` is used as given, except that one contradicting the file's
    stored architecture gives a warning naming both and the file's own is used.
    """
    if checkpoint is not None:
        from pointsam.hub import resolve_checkpoint

        checkpoint = resolve_checkpoint(checkpoint)
    if checkpoint is None:
        checkpoint = default_model_path()
        if not checkpoint.is_file():
            raise CheckpointError(
                f"no checkpoint given and the bundled default model is missing ({checkpoint}); "
                "reinstall pointsam or pass a checkpoint path (e.g. the official model.safetensors)"
            )
    path = Path(checkpoint)
    state_dict, metadata = read_state_dict(path)
    state_dict = _check_tensors(path, checkpoint_filter_fn(state_dict))
    stored, why_not = config_from_metadata(metadata)
    if stored is None and CONFIG_METADATA_KEY in metadata:
        warnings.warn(f"{path}: ignoring the stored config because {why_not}; using the architecture "
                      "the tensors' shapes show", stacklevel=2)
    if config is None or config == "auto":
        cfg = stored if stored is not None else infer_config(state_dict)
    else:
        if isinstance(config, PointSAMConfig):
            cfg = config
        else:
            try:
                cfg = PointSAMConfig.preset(config)
            except ValueError as exc:
                raise CheckpointError(str(exc)) from None
        if stored is not None and not _same_architecture(cfg, stored):
            warnings.warn(
                f"{path} stores {describe_architecture(stored)}, but the requested config is "
                f"{describe_architecture(cfg)}; using the file's own (load it with config=None to "
                "silence this)", stacklevel=2)
            cfg = stored
    with torch.device("meta"):
        model = build_model(cfg)
    load_state_dict_checked(model, state_dict)
    # Non-persistent buffers (EVA-01's zero k-bias) are not in the file: materialize them.
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                module.register_buffer(name, torch.zeros(buf.shape, dtype=buf.dtype),
                                       persistent=False)
    model.metadata = dict(metadata)  # the file's metadata (e.g. recommended segment-everything thresholds)
    return model.to(device or default_device()).eval()


def save_model(model: PointSAM, path: str | Path, overwrite: bool = False,
               dtype: torch.dtype | None = None, official_layout: bool = True) -> Path:
    """Save weights as safetensors with the config in the metadata (floats cast to `dtype` if given).

    `official_layout` also writes the image-ViT keys the official file carries (as zeros), so the
    official code loads the file strictly; False writes only what Point-SAM uses.
    """
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tmp = path.with_name(path.name + ".tmp")
    full = official_state_dict(model) if official_layout else model.state_dict()
    state = {k: v.detach().contiguous().cpu() for k, v in full.items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(tmp), metadata={CONFIG_METADATA_KEY: json.dumps(model.config.to_dict())})
    tmp.replace(path)
    return path
