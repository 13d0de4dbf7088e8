"""The one base class of every error the project raises on purpose.

Bad input, a missing or stale artifact, a registry conflict: each is an
:class:`IsoclrError` whose message names the file, record and rule. The stage
runner (:mod:`isoclr.stage`) turns any of them into a single ``error:`` line and
exit code 1, whichever driver (CLI, DVC, Kubeflow) ran the stage; anything else
is a bug and keeps its traceback.
"""

from __future__ import annotations


class IsoclrError(Exception):
    """An expected failure with a message meant for the user."""


class ConfigError(IsoclrError, ValueError):
    """params.yaml (or a pipeline's parameter dict) does not validate."""


class MissingInputError(IsoclrError, FileNotFoundError):
    """A stage input is not there: usually an earlier stage has not run."""
