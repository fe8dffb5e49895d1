"""`PointSAMConfig`: every size that shapes a Point-SAM network, with the official presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

VitVariant = Literal["eva02", "eva"]


@dataclass(frozen=True)
class PointSAMConfig:
    """Architecture of a Point-SAM model (paper Fig. 2); presets match the official checkpoints.

    `num_patches` (L) and `patch_size` (K) are the default grouping used at inference; the weights
    do not depend on them, so the predictor may change them per cloud.
    """

    num_patches: int = 512
    patch_size: int = 64
    vit_variant: VitVariant = "eva02"
    vit_width: int = 1024
    vit_depth: int = 24
    vit_heads: int = 16
    embed_dim: int = 256
    decoder_depth: int = 2
    decoder_heads: int = 8
    decoder_mlp_dim: int = 2048
    # Hidden width of the ViT MLP; None = timm's default for the variant.
    vit_mlp_dim: int | None = None
    # Shapes of the timm ViT parts that Point-SAM never runs but the official checkpoint stores
    # (cls_token, pos_embed, patch_embed.proj, head): used only to write that layout on save.
    vit_img_size: int = 448
    vit_patch_size: int = 14
    vit_num_classes: int = 1000
    patch_embed_dim: int = 512
    num_multimask_outputs: int = 3
    # Hidden widths (conv1, conv2) of the PointNets in the patch embedding and the mask encoder.
    pointnet_hidden: tuple[int, int] = (128, 512)

    def __post_init__(self) -> None:
        hidden = tuple(self.pointnet_hidden)
        if len(hidden) != 2 or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ValueError(f"pointnet_hidden must be two positive ints, got {self.pointnet_hidden!r}")
        object.__setattr__(self, "pointnet_hidden", hidden)
        if self.vit_variant not in ("eva02", "eva"):
            raise ValueError(f"vit_variant must be 'eva02' or 'eva', got {self.vit_variant!r}")
        for name in ("num_patches", "patch_size", "vit_width", "vit_depth", "vit_heads",
                     "embed_dim", "decoder_depth", "decoder_heads", "decoder_mlp_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"PointSAMConfig.{name} must be a positive int, got {value!r}")
        if self.vit_width % self.vit_heads:
            raise ValueError(
                f"vit_width ({self.vit_width}) must be divisible by vit_heads ({self.vit_heads})"
            )
        if self.embed_dim % self.decoder_heads or (self.embed_dim // 2) % self.decoder_heads:
            raise ValueError(
                f"embed_dim ({self.embed_dim}) and embed_dim/2 must be divisible by "
                f"decoder_heads ({self.decoder_heads})"
            )
        if self.embed_dim % 2:
            raise ValueError(f"embed_dim must be even (Fourier features), got {self.embed_dim}")

    @property
    def mlp_hidden_dim(self) -> int:
        """Hidden width of each ViT block's MLP (timm's rule when not given)."""
        if self.vit_mlp_dim is not None:
            return self.vit_mlp_dim
        if self.vit_variant == "eva02":
            return int(self.vit_width * (4 * 2 / 3))
        return 4 * self.vit_width

    @classmethod
    def large(cls, **overrides: Any) -> PointSAMConfig:
        """Point-SAM-Large: EVA-02 L ViT (the published 311M-parameter checkpoint)."""
        return cls(**{**dict(vit_variant="eva02", vit_width=1024, vit_depth=24, vit_heads=16,
                             vit_img_size=448), **overrides})

    @classmethod
    def giant(cls, **overrides: Any) -> PointSAMConfig:
        """Point-SAM-Giant: EVA-01 g ViT (1B parameters)."""
        return cls(**{**dict(vit_variant="eva", vit_width=1408, vit_depth=40, vit_heads=16,
                             vit_mlp_dim=6144, vit_img_size=560), **overrides})

    @classmethod
    def base(cls, **overrides: Any) -> PointSAMConfig:
        """Point-SAM-Base: EVA-02 B ViT."""
        return cls(**{**dict(vit_variant="eva02", vit_width=768, vit_depth=12, vit_heads=12,
                             vit_img_size=448), **overrides})

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> PointSAMConfig:
        """Return the preset called `name` ('large', 'giant' or 'base')."""
        presets = {"large": cls.large, "giant": cls.giant, "base": cls.base}
        if name not in presets:
            raise ValueError(f"unknown config preset {name!r}; choose one of {sorted(presets)}")
        return presets[name](**overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form, e.g. for checkpoint metadata."""
        data = dataclasses.asdict(self)
        data["pointnet_hidden"] = list(self.pointnet_hidden)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PointSAMConfig:
        """Inverse of `to_dict`; unknown keys raise a clear error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown PointSAMConfig fields: {unknown}")
        return cls(**data)
