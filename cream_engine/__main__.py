"""`python -m cream_engine`: what the CLI and the worker spawn, so heavy imports stay out of
their processes.

    python -m cream_engine prepare-model SPEC [--home DIR]   build a bundled model folder once
"""

from __future__ import annotations

import argparse
import sys

from cream_engine import paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cream_engine")
    parser.add_argument("--home", default=None, help="data home [default: $CREAM_HOME or ./runs]")
    sub = parser.add_subparsers(dest="command", required=True)
    prep = sub.add_parser("prepare-model", help="build a bundled model folder (once)")
    prep.add_argument("spec", help="bundled:smollm2-135m-instruct or bundled:tiny-random")
    args = parser.parse_args(argv)
    home = paths.data_home(args.home)

    if args.command == "prepare-model":
        from cream_engine.models import ModelError, resolve_model

        try:
            print(resolve_model(args.spec, home))
        except ModelError as e:
            print(f"cream: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
