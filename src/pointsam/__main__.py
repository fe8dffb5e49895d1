"""`python -m pointsam ...`: the same as the `pointsam` command."""

from pointsam.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
