"""Loading and saving Point-SAM weights: safetensors first, never an unsafe unpickle."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pointsam.errors import CheckpointError
from pointsam.modeling import PointSAM, PointSAMConfig, build_model

CONFIG_METADATA_KEY = "pointsam_config"
_WRAPPER_KEYS = ("state_dict", "model", "module")


def default_device() -> torch.device:
    """CUDA when available, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a checkpoint's tensors and metadata (safetensors, or .pt/.pth with weights_only)."""
    path = Path(path)
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
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad or unsafe pickles
            raise CheckpointError(
                f"{path} could not be loaded safely (weights_only=True): {exc}"
            ) from exc
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
        n_pos = state_dict["pc_encoder.transformer.pos_embed"].shape[1] - 1
        patch = state_dict["pc_encoder.transformer.patch_embed.proj.weight"].shape[-1]
        classes = state_dict["pc_encoder.transformer.head.weight"].shape[0]
        embed = state_dict["pc_encoder.out_proj.weight"].shape[0]
        pn = "pc_encoder.patch_embed.patch_encoder"
        hidden = (state_dict[f"{pn}.conv1.0.weight"].shape[0], state_dict[f"{pn}.conv2.0.weight"].shape[0])
        patch_embed_dim = state_dict[f"{pn}.conv2.3.weight"].shape[0]
        dec_mlp = state_dict["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise CheckpointError(
            f"the checkpoint does not look like a Point-SAM model (missing {exc})"
        ) from exc
    heads = {1024: 16, 1408: 16, 768: 12}.get(width, max(1, width // 64))
    fields = dict(
        vit_variant=variant, vit_width=width, vit_depth=depth, vit_heads=heads, vit_mlp_dim=mlp,
        vit_img_size=int(round(n_pos**0.5)) * patch, vit_patch_size=patch,
        vit_num_classes=classes, embed_dim=embed, pointnet_hidden=hidden,
        patch_embed_dim=patch_embed_dim, decoder_mlp_dim=dec_mlp,
    )
    return PointSAMConfig(**{**fields, **overrides})


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


def load_state_dict_checked(model: PointSAM, state_dict: dict[str, torch.Tensor]) -> None:
    """Strictly load `state_dict`, raising `CheckpointError` that names every mismatch."""
    problems = _describe_mismatch(model, state_dict)
    if problems:
        hint = ""
        try:
            guessed = infer_config(state_dict)
            hint = (f" The checkpoint looks like vit_variant={guessed.vit_variant!r}, "
                    f"vit_width={guessed.vit_width}, vit_depth={guessed.vit_depth}: "
                    "pass the matching config (e.g. config='giant') or config='auto'.")
        except CheckpointError:
            pass
        raise CheckpointError(f"checkpoint does not match the model architecture: {problems}.{hint}")
    model.load_state_dict(state_dict, strict=True, assign=True)


DEFAULT_MODEL_FILE = "default_model.safetensors"


def default_model_path() -> Path:
    """Path of the small default model shipped inside the package (see assets/MODEL_CARD.md)."""
    return Path(__file__).resolve().parent / "assets" / DEFAULT_MODEL_FILE


def load_model(
    checkpoint: str | Path | None = None,
    config: PointSAMConfig | str = "large",
    device: torch.device | str | None = None,
) -> PointSAM:
    """Load a Point-SAM model for inference (eval mode) from a checkpoint file.

    With no `checkpoint`, loads the small default model bundled with the package.

    `config` is a preset name ('large', 'giant', 'base'), a `PointSAMConfig`, or 'auto' to infer
    the architecture from the tensors; a config stored in the file's metadata wins over 'large'.
    """
    if checkpoint is None:
        checkpoint = default_model_path()
        if not checkpoint.is_file():
            raise CheckpointError(
                f"no checkpoint given and the bundled default model is missing ({checkpoint}); "
                "reinstall pointsam or pass a checkpoint path (e.g. the official model.safetensors)"
            )
    state_dict, metadata = read_state_dict(checkpoint)
    # Weights stored in half precision (the bundled model) are computed in float32.
    state_dict = {k: v.float() if v.dtype in (torch.float16, torch.bfloat16) else v
                  for k, v in state_dict.items()}
    if isinstance(config, PointSAMConfig):
        cfg = config
    elif CONFIG_METADATA_KEY in metadata and config in ("large", "auto"):
        cfg = PointSAMConfig.from_dict(json.loads(metadata[CONFIG_METADATA_KEY]))
    elif config == "auto":
        cfg = infer_config(state_dict)
    else:
        cfg = PointSAMConfig.preset(config)
    with torch.device("meta"):
        model = build_model(cfg)
    load_state_dict_checked(model, state_dict)
    # Non-persistent buffers (EVA-01's zero k-bias) are not in the file: materialize them.
    for module in model.modules():
        for name, buf in list(module.named_buffers(recurse=False)):
            if buf.is_meta:
                module.register_buffer(name, torch.zeros(buf.shape, dtype=buf.dtype),
                                       persistent=False)
    return model.to(device or default_device()).eval()


def save_model(model: PointSAM, path: str | Path, overwrite: bool = False,
               dtype: torch.dtype | None = None) -> Path:
    """Save weights as safetensors with the config in the metadata (floats cast to `dtype` if given)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tmp = path.with_name(path.name + ".tmp")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(tmp), metadata={CONFIG_METADATA_KEY: json.dumps(model.config.to_dict())})
    tmp.replace(path)
    return path
