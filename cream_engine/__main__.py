"""`python -m cream_engine`: what the CLI and the worker spawn, so heavy imports stay out of
their processes.

    python -m cream_engine run RUN_DIR                       run or resume a run (exit 0/1/2)
    python -m cream_engine prepare-model SPEC [--home DIR]   build a bundled model folder once
"""

from __future__ import annotations

import argparse
import os
import sys

from cream_engine import paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cream_engine")
    parser.add_argument("--home", default=None, help="data home [default: $CREAM_HOME or ./runs]")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume the run in RUN_DIR")
    run.add_argument("run_dir", help="runs/<run-id>: the run's folder under the data home")
    prep = sub.add_parser("prepare-model", help="build a bundled model folder (once)")
    prep.add_argument("spec", help="bundled:smollm2-135m-instruct or bundled:tiny-random")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # library bars (GGUF dequantisation…): ours is rich
    home = paths.data_home(args.home)

    if args.command == "run":
        from pathlib import Path

        from cream_engine.pipeline import run_experiment

        return run_experiment(Path(args.run_dir))
    if args.command == "prepare-model":
        from transformers.utils import logging as hf_logging

        from cream_engine.models import ModelError, resolve_model

        hf_logging.disable_progress_bar()
        try:
            print(resolve_model(args.spec, home))
        except ModelError as e:
            print(f"cream: error: {e}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
