"""The `pointsam` command line: segment a point cloud or mesh from a few clicks.

Each command's arguments and code live in its package's `command.py`; this module only lists the
commands and imports the chosen one, so `pointsam --help` starts without importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Command:
    """One subcommand: its one-line help and where its parser and runner live ("module:function")."""

    help: str
    add_parser: str
    run: str


COMMANDS: dict[str, Command] = {
    "segment": Command("segment an object or part from point prompts",
                       "pointsam.command:add_segment_parser", "pointsam.command:run_segment"),
    "everything": Command("propose every object/part of a cloud automatically",
                          "pointsam.command:add_everything_parser", "pointsam.command:run_everything"),
    "annotate": Command("label objects interactively in the browser (local web app)",
                        "pointsam.app.command:add_annotate_parser", "pointsam.app.command:run_annotate"),
    "convert": Command("convert a labelled 3D dataset into the pointsam training format",
                       "pointsam.data.command:add_convert_parser", "pointsam.data.command:run_convert"),
    "eval": Command("interactive segmentation evaluation (IoU@k, NoC) on a labelled dataset",
                    "pointsam.evaluation.command:add_eval_parser", "pointsam.evaluation.command:run_eval"),
    "train": Command("train or fine-tune a model on a pointsam dataset",
                     "pointsam.train.command:add_train_parser", "pointsam.train.command:run_train"),
    "fewshot": Command("few-shot part segmentation: train a head on frozen features of k shapes per "
                       "category", "pointsam.fewshot.command:add_fewshot_parser",
                       "pointsam.fewshot.command:run_fewshot"),
    "engine": Command("generate pseudo-labelled training data from meshes with 2D SAM + Point-SAM",
                      "pointsam.engine.command:add_engine_parser", "pointsam.engine.command:run_engine"),
}


# Optional packages (top-level module -> the pyproject extra that installs them).
EXTRAS = {"matplotlib": "plot", "yaml": "yaml", "tensorboard": "train", "transformers": "engine",
          "PIL": "engine", "embreex": "engine"}


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The `pointsam` parser with `command`'s full arguments; the other commands are listed only."""
    from pointsam import __version__

    parser = argparse.ArgumentParser(prog="pointsam", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pointsam {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        if name == command:
            _resolve(cmd.add_parser)(sub)
        else:
            sub.add_parser(name, help=cmd.help, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pointsam` command."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    args = build_parser(command).parse_args(argv)
    from pointsam.cli_common import prepare
    from pointsam.errors import PointSAMError

    try:
        prepare(args)
        _resolve(COMMANDS[args.command].run)(args)
    except (PointSAMError, FileExistsError, FileNotFoundError) as exc:
        print(f"pointsam: error: {exc}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").partition(".")[0])
        if extra is None:
            raise
        print(f"pointsam: error: `pointsam {args.command}` needs {exc.name}, which is not installed: "
              f"pip install \"pointsam[{extra}]\"", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
