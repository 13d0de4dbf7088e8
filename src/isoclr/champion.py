"""Which champion a stage compares the model with: one the caller names, or the registry's now.

The probe scores the champion on the same splits as the model, and the gate
checks that the champion it holds the model to is the one that was probed. A
cached pipeline task must not read the registry itself (a cached probe would
compare a new model with an old champion), so the driver resolves the champion
once, in a step that is never cached, and passes the version id in. Without
one, the stage reads the registry when it runs (:data:`RESOLVE`), as a manual
run or ``dvc repro`` wants.
"""

from __future__ import annotations

from isoclr.config import Config


class _ResolveNow:
    """The type of :data:`RESOLVE` (a sentinel, distinct from every version id and from None)."""

    def __repr__(self) -> str:
        return "RESOLVE"


RESOLVE = _ResolveNow()  # read the registry's champion when the stage runs

Given = str | None | _ResolveNow  # a version id, None or "" (there is no champion), or RESOLVE


def current(uri: str) -> str | None:
    """The champion version id of the registry at ``uri``; None before the first champion.

    Raises whatever the registry backend raises when it cannot be read.
    """
    from isoclr import registry  # only a stage that reads the champion loads the registry and its backends

    return registry.champion(uri)


def chosen(given: Given, uri: str) -> str | None:
    """A given version as it is (None or "": none; a pipeline parameter is a string), or the registry's now."""
    if given is RESOLVE:
        return current(uri)
    return given or None


def resolve(cfg: Config, given: Given = RESOLVE) -> str | None:
    """The champion the probe scores: None when ``probe.compare_champion`` is off or there is none."""
    if not cfg.probe.compare_champion:
        return None
    return chosen(given, cfg.registry.uri)
