"""Typed errors of zootool.

The core raises these; only ``cli.py`` turns them into a message, a hint and an
exit code. Exit codes are part of the public interface (see README, "Exit codes").
"""

from __future__ import annotations

from pathlib import Path


class ZooError(Exception):
    """Base of every error a user is meant to read."""

    exit_code = 1
    default_hint = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __reduce__(self):
        # Subclasses take other arguments (RecipeError), so rebuild from the state, not the args:
        # an error raised in the export's child process reaches the parent as the same type.
        return restore_error, (type(self), self.message, self.__dict__)


def restore_error(cls: type[ZooError], message: str, state: dict) -> ZooError:
    """A ZooError of ``cls`` with ``message`` and the attributes in ``state``, without calling ``__init__``."""
    error = cls.__new__(cls)
    Exception.__init__(error, message)
    error.__dict__.update(state)
    return error


class ConfigError(ZooError):
    """Bad input: a recipe, zoo data, a CLI override."""

    exit_code = 2


class RecipeError(ConfigError):
    """A recipe (or zoo data file) is invalid at ``path``, dotted ``key``."""

    def __init__(self, path: Path | str, key: str | None, message: str, hint: str | None = None) -> None:
        where = f"{_display(Path(path))}: {key}" if key else f"{_display(Path(path))}"
        super().__init__(f"{where}: {message}", hint)
        self.path = Path(path)
        self.key = key
        self.detail = message


def _display(path: Path) -> str:
    """A path relative to the working directory when it lies below it, as a user typed it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) if path.is_absolute() else str(path)
    except ValueError:
        return str(path)


class UnknownModelError(ConfigError):
    default_hint = "run `zoo list` to see the models in this zoo"


class UnknownTargetError(ConfigError):
    default_hint = "run `zoo show MODEL` to see its targets"


class BudgetExceededError(ZooError):
    exit_code = 3


class BackendUnavailableError(ZooError):
    exit_code = 4
    default_hint = "install the conversion stack: pip install 'zootool[coreai]'"


class BackendFailedError(ZooError):
    exit_code = 5


class GateFailedError(ZooError):
    exit_code = 6


class PublishError(ZooError):
    exit_code = 7


class VerifyError(ZooError):
    exit_code = 8


class FetchError(ZooError):
    exit_code = 9


class BuildLockedError(ZooError):
    exit_code = 10
    default_hint = "wait for the other build to finish, or remove the stale lock file it names"


class NotImplementedFeatureError(ZooError):
    """A part of zootool that does not exist yet; said plainly, never faked."""

    exit_code = 11


class ResourceError(ZooError):
    """The machine has less memory or free disk than a build stage is predicted to need."""

    exit_code = 12
    default_hint = "--ignore-resources runs anyway; a smaller scheme (--quant) needs less"


class ClusterUnreachableError(ZooError):
    """No Ray cluster answers at the address a zoo-wide build was told to join."""

    exit_code = 13


EXIT_CODES: dict[int, str] = {
    0: "success",
    1: "unexpected error (run with ZOO_DEBUG=1 for a traceback), or output piped into a reader that quit early",
    2: "invalid recipe, zoo data or command-line input",
    3: "bundle over the platform's size budget",
    4: "conversion backend not installed",
    5: "conversion backend failed",
    6: "quality gate failed",
    7: "publishing to the Hub failed",
    8: "bundle verification failed",
    9: "fetching from the Hub failed (a checkpoint, or an upstream for zoo new)",
    10: "another build of the same model/target holds the lock",
    11: "feature not implemented yet",
    12: "not enough memory or free disk for a build stage (checked before it starts)",
    13: "no Ray cluster answers at --address (or $RAY_ADDRESS)",
}
