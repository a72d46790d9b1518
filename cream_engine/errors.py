"""One family of errors a user can act on.

Every error `cream` expects (a bad config, an unknown run, a model that does not load, a NaN
loss) is a `CreamError`: its message is one line that names the field, file or run, and its
class carries the exit code. The entry points catch `CreamError` once: the CLI and the worker print
`cream: error: <message>` and exit with `exit_code`, the engine records the message as the
run's error and exits 1. Anything else is a bug, shown as one line while its traceback goes to
a log.

Light layer: standard library only.
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NO_GPU = 0, 1, 2, 3
EXIT_CANCELLED = 143                     # the engine after SIGTERM (128 + 15)
EXIT_CODES_HELP = "Exit codes: 0 ok, 1 run/job failed, 2 usage or config error, 3 no GPU fits."


def internal_error(e: BaseException) -> str:
    """One line for an exception no one expected: 'internal error: Type: first line'."""
    text = str(e).strip()
    return f"internal error: {type(e).__name__}" + (f": {text.splitlines()[0]}" if text else "")


class CreamError(Exception):
    """An expected failure: `str(error)` is shown to the user as is."""

    exit_code = EXIT_FAILED

    @property
    def line(self) -> str:
        """The message as one line (the first, should a library's text have several)."""
        text = str(self).strip()
        return text.splitlines()[0] if text else type(self).__name__


# -- refused at the door (exit 2): nothing was started, nothing half-written -------------------


class UsageError(CreamError):
    """A request that cannot be done as asked."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError, ValueError):
    """A config that cannot be used: the message names the field or file."""


class DataError(ConfigError):
    """A prompt or evaluation file that cannot be used: the message names the file (and line)."""


class StoreError(UsageError):
    """The store cannot be opened (written by a newer cream, not a database)."""


class RunNotFound(UsageError):
    """No run matches a reference (id, id prefix or name)."""

    def __init__(self, ref: str, where: str = ""):
        super().__init__(f"run {ref!r}: no such run" + (f" ({where})" if where else ""))


class QueueError(UsageError):
    """A queue request that cannot be done (nothing to cancel, already running…)."""


class ModelError(UsageError):
    """A model that cannot be used: the message names the model."""


class WorkerError(CreamError):
    """The worker daemon could not be started or stopped."""


class NoGpuError(CreamError):
    """A job asks for more GPUs than the machine has."""

    exit_code = EXIT_NO_GPU


# -- a run that cannot go on (exit 1): finished stages are kept, a retry resumes -------------


class PipelineError(CreamError):
    """A run cannot go on (no pairs, an empty prompt slice…)."""


class BackendError(CreamError):
    """A generation backend that cannot be used here: what to install or change."""


class JudgeError(CreamError):
    """The pointwise judge cannot score (never a score made up)."""


class PairwiseJudgeError(CreamError):
    """The pairwise judge's verdicts cannot be read for this tokenizer."""


class TrainingError(CreamError):
    """Training that cannot go on (a NaN loss, nothing to train on)."""
