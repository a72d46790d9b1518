"""`python -m cream_engine`: what the CLI and the worker spawn, so heavy imports stay out of
their processes (and out of this module until a command needs them).

    python -m cream_engine run RUN_DIR                       run or resume a run (exit 0/1/2/143)
    python -m cream_engine prepare-model SPEC [--home DIR]   build a bundled model folder once
    python -m cream_engine count-tokens MODEL PROMPTS        each prompt's tokens, as JSON
    python -m cream_engine convert-model SRC DST             pickle weights -> safetensors
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path

from cream_engine import paths
from cream_engine.errors import EXIT_CANCELLED, EXIT_OK, CreamError, disk_error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cream_engine")
    parser.add_argument("--home", default=None, help="data home [default: $CREAM_HOME or ./runs]")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run or resume the run in RUN_DIR")
    run.add_argument("run_dir", help="runs/<run-id>: the run's folder under the data home")
    prep = sub.add_parser("prepare-model", help="build a bundled model folder (once)")
    prep.add_argument("spec", help="bundled:smollm2-135m-instruct or bundled:tiny-random")
    count = sub.add_parser("count-tokens", help="print the model's context and each prompt's "
                           "templated length in tokens, as JSON (what validate and submit "
                           "check)")
    count.add_argument("model", help="a model spec, as [run] model")
    count.add_argument("prompts", help="a prompt file, as [data] prompts")
    count.add_argument("--trust-remote-code", action="store_true")
    count.add_argument("--layer-classes", action="store_true",
                       help="also the decoder-layer classes FSDP would wrap")
    conv = sub.add_parser("convert-model", help="save a model folder with pickle weights "
                          "(pytorch_model.bin) again as safetensors, loading it weights-only")
    conv.add_argument("src", type=Path)
    conv.add_argument("dst", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TQDM_DISABLE", "1")  # library bars (GGUF dequantisation…): ours is rich
    home = paths.data_home(args.home)
    paths.set_home_umask()  # (what this process writes under the home is private to the user)

    if args.command == "run":  # run_experiment catches the run's errors itself
        # torch and TRL take seconds to load; a cancel (SIGTERM, Ctrl-C) before the pipeline
        # installs its own handlers ends the process quietly: nothing has started yet
        signal.signal(signal.SIGTERM, _cancelled_while_loading)
        signal.signal(signal.SIGINT, _cancelled_while_loading)
        from cream_engine.pipeline import run_experiment

        return run_experiment(Path(args.run_dir))
    from transformers.utils import logging as hf_logging

    from cream_engine import models

    hf_logging.disable_progress_bar()
    try:
        if args.command == "prepare-model":
            print(models.resolve_model(args.spec, home))
        elif args.command == "count-tokens":
            out = _count_tokens(args.model, args.prompts, home, args.trust_remote_code)
            if args.layer_classes:
                out["layer_classes"] = models.layer_classes_of(args.model, home,
                                                               args.trust_remote_code)
            print(json.dumps(out))
        elif args.command == "convert-model":
            models.convert_model(args.src, args.dst)
            print(args.dst)
    except Exception as e:  # noqa: BLE001 - a full disk is one line too
        found = e if isinstance(e, CreamError) else disk_error(e, home)
        if found is None:
            raise
        print(f"cream: error: {found.line}", file=sys.stderr)
        return found.exit_code
    return EXIT_OK


def _count_tokens(model: str, prompts: str, home: Path, trust_remote_code: bool) -> dict:
    from cream_engine.models import context_length, prompt_token_counts, prompt_tokenizer
    from cream_engine.prompts import load_prompts

    loaded = load_prompts(prompts)
    tokenizer = prompt_tokenizer(model, home, trust_remote_code)
    return {"context": context_length(model, home, trust_remote_code),
            "tokens": prompt_token_counts(tokenizer, loaded)}


def _cancelled_while_loading(signum: int, frame: object) -> None:
    print(f"cream: cancelled ({signal.Signals(signum).name}) before the run started",
          file=sys.stderr)
    raise SystemExit(EXIT_CANCELLED)


if __name__ == "__main__":
    sys.exit(main())
