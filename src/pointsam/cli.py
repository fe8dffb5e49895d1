"""The `pointsam` command line: segment a point cloud or mesh from a few clicks."""

from __future__ import annotations

import argparse
import sys

from pointsam.app.command import add_annotate_parser, run_annotate
from pointsam.command import add_everything_parser, add_segment_parser, run_everything, run_segment
from pointsam.data.command import add_convert_parser, run_convert
from pointsam.engine.command import add_engine_parser, run_engine
from pointsam.errors import PointSAMError
from pointsam.evaluation.command import add_eval_parser, run_eval
from pointsam.fewshot.command import add_fewshot_parser, run_fewshot
from pointsam.train.command import add_train_parser, run_train


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pointsam", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    add_segment_parser(sub)
    add_convert_parser(sub)
    add_eval_parser(sub)
    add_everything_parser(sub)
    add_train_parser(sub)
    add_engine_parser(sub)
    add_annotate_parser(sub)
    add_fewshot_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `pointsam` command."""
    args = _build_parser().parse_args(argv)
    runners = {"segment": run_segment, "convert": run_convert, "eval": run_eval, "everything": run_everything,
               "train": run_train, "engine": run_engine, "annotate": run_annotate, "fewshot": run_fewshot}
    try:
        runners[args.command](args)
    except (PointSAMError, FileExistsError, FileNotFoundError) as exc:
        print(f"pointsam: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
