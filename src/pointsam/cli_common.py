"""The options every `pointsam` command shares (--checkpoint, --config, --device, --overwrite,
--threads), defined once, checked before anything slow is loaded."""

from __future__ import annotations

import argparse
from pathlib import Path

from pointsam.errors import InputError

CONFIGS = ("large", "giant", "base", "auto")


def add_common_arguments(parser: argparse.ArgumentParser, *, model: bool = True, device: bool = True,
                         overwrite: bool = True,
                         device_help: str = "cpu, cuda, cuda:N or mps (default: cuda if available)",
                         overwrite_help: str = "replace the output if it exists") -> None:
    """Add the shared options to a command's parser: the model ones only when it loads a Point-SAM
    model, --device when it computes with torch, --overwrite when its output could exist."""
    group = parser.add_argument_group("common options")
    if model:
        group.add_argument("--checkpoint", type=Path, help="model weights: a file (e.g. the official "
                           "model.safetensors), or a name: default (the bundled small model, the default), "
                           "large (the official weights, via the Hugging Face cache), hf://owner/repo[@rev]/file")
        group.add_argument("--config", metavar="{" + ",".join(CONFIGS) + "}",
                           help="architecture (default: the config stored in the checkpoint, else large)")
    if device:
        group.add_argument("--device", help=device_help)
    if overwrite:
        group.add_argument("--overwrite", action="store_true", help=overwrite_help)
    group.add_argument("--threads", type=int, metavar="N", help="CPU threads (default: the free physical "
                       "cores; or set $POINTSAM_THREADS)")


def _views(text: str) -> int:
    from pointsam.views import MAX_VIEWS, check_views

    try:
        return check_views(int(text))
    except (ValueError, InputError) as exc:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the number of views must be an integer from 1 to {MAX_VIEWS}") from exc


def add_views_argument(parser: argparse.ArgumentParser, everything: bool = False) -> None:
    """--views K: answers averaged over K turns of the cloud (`PointCloudPredictor(views=K)`); None when
    not given (clicks then use 1 view, segment-everything the checkpoint's recommendation)."""
    default = ("the checkpoint's recommendation for segment-everything (the bundled model: 4), else 1"
               if everything else "1, the paper's protocol")
    parser.add_argument("--views", type=_views, default=None, metavar="K",
                        help="average the answers over K turns of the cloud about its y axis (1-16; "
                        "the bundled model gains 1-2 IoU points at 4; K times the encode and decode "
                        f"work; default: {default})")


def check_device(text: str | None) -> str | None:
    """`text` if it names a device this torch can use, else a clear InputError (None = automatic)."""
    if text is None:
        return None
    import torch

    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise InputError(f"--device {text!r} is not a device; use cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no usable GPU"
            raise InputError(f"--device {text}: CUDA is not available (torch {torch.__version__}, {build}); "
                             "use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise InputError(f"--device {text}: only {torch.cuda.device_count()} CUDA device(s) here")
    elif device.type == "mps":
        if not torch.backends.mps.is_available():
            raise InputError(f"--device {text}: Apple MPS is not available here; use --device cpu")
    elif device.type != "cpu":
        raise InputError(f"--device {text}: pointsam runs on cpu, cuda or mps")
    return text


def check_config(name: str | None) -> str | None:
    """`name` if it is a known architecture preset or 'auto', else a clear InputError."""
    if name is not None and name not in CONFIGS:
        raise InputError(f"--config {name!r} is not an architecture; choose one of {', '.join(CONFIGS)}")
    return name


def prepare(args: argparse.Namespace) -> None:
    """Check the shared options of a parsed command line and set the thread count, before any loading."""
    from pointsam.utils.threads import choose_threads, set_threads

    if "checkpoint" in args:  # the Point-SAM model options (train's `config` is its training file)
        check_config(args.config)
    if "device" in args:
        check_device(args.device)
    if "threads" in args:
        args.threads = set_threads(choose_threads(args.threads))


def load_model_from_args(args: argparse.Namespace, device=None):
    """The Point-SAM model named by --checkpoint/--config, on `device` (default: --device)."""
    from pointsam.checkpoint import load_model

    config = {"config": args.config} if args.config is not None else {}
    return load_model(args.checkpoint, device=device if device is not None else args.device, **config)


def add_generator_arguments(parser, *, num_prompts: int, nms: float, max_masks: int | None,
                            min_points_flag: str = "--min-mask-points") -> None:
    """The `AutomaticMaskGenerator` options of `pointsam everything` and `pointsam eval --proposals`
    (`parser`: a parser or an argument group; the defaults differ between the two commands)."""
    parser.add_argument("--num-prompts", type=int, default=num_prompts,
                        help=f"FPS prompt points (default {num_prompts}; the paper uses 1024 for scenes)")
    parser.add_argument("--points-per-batch", type=int, default=64, help="prompts decoded together (64)")
    parser.add_argument("--pred-iou-thresh", type=float, help="keep masks whose predicted IoU reaches this "
                        "(default: the checkpoint's recommendation, else the paper's 0.7)")
    parser.add_argument("--stability-thresh", type=float, help="keep masks whose stability reaches this "
                        "(default: the checkpoint's recommendation, else the paper's 0.85)")
    parser.add_argument("--nms-thresh", type=float, default=nms,
                        help=f"point-set IoU above which a mask is a duplicate (default {nms})")
    parser.add_argument(min_points_flag, type=int, default=20, dest="generator_min_points",
                        help="drop masks with fewer points (default 20)")
    parser.add_argument("--max-masks", type=int, default=max_masks,
                        help="keep at most this many masks, best score first"
                        + (f" (default {max_masks})" if max_masks else ""))
    parser.add_argument("--max-points", type=int, default=None,
                        help="down-sample bigger clouds to this many points, then propagate labels "
                        "to every point by nearest neighbour (default: the checkpoint's recommendation, "
                        "else 100000)")


def generator_from_args(model, args: argparse.Namespace):
    """The `AutomaticMaskGenerator` that `add_generator_arguments`' options (and --views) describe."""
    from pointsam.automatic import AutomaticMaskGenerator

    return AutomaticMaskGenerator(
        model, views=getattr(args, "views", None),
        num_prompts=args.num_prompts, points_per_batch=args.points_per_batch,
        pred_iou_thresh=args.pred_iou_thresh, stability_score_thresh=args.stability_thresh,
        nms_iou_thresh=args.nms_thresh, min_mask_points=args.generator_min_points,
        max_masks=args.max_masks, max_points=args.max_points,
        num_patches=getattr(args, "num_patches", None), patch_size=getattr(args, "patch_size", None),
    )
