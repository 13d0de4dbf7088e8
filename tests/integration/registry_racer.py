"""The body of one racing OS process in tests/integration/test_registry_faults.py.

Kept apart from the test module so that each spawned process imports the registry only (not
pytest, typer or the test helpers): eight processes start in a fraction of the time.
"""

from __future__ import annotations

from pathlib import Path


def race(uri: str, model: str, index: int, start, results) -> None:
    """Register its own version and promote it; every third process then rolls the champion back."""
    from isoclr.registry import champion_history, register, set_champion

    try:
        start.wait(timeout=60)
        version = register(uri, Path(model), {}, {"racer": index})
        moves = [("promote", version)] if set_champion(uri, version) else []
        if index % 3 == 0:
            previous = champion_history(uri)[-1]["previous"]  # the champion before the current one
            if previous is not None and set_champion(uri, previous):
                moves.append(("rollback", previous))
        results.put((index, version, moves, None))
    except BaseException as err:  # noqa: BLE001 -- reported to the parent, which fails the test
        results.put((index, None, [], f"{type(err).__name__}: {err}"))
