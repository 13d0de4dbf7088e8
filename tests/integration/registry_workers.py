"""Bodies of the OS processes that tests/integration/test_registry_faults.py starts (spawn context).

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


def register_stage_slowly(uri: str, outputs: str, pause_s: float) -> None:
    """The register stage, pausing after each object upload so that a test can kill the server mid-upload."""
    import time

    from isoclr import stage
    from isoclr.artifacts import Paths
    from isoclr.registry import GCSBackend
    from tests.helpers import registry_config

    upload = GCSBackend._upload_file

    def slowly(self, key, source):
        upload(self, key, source)
        time.sleep(pause_s)

    GCSBackend._upload_file = slowly
    stage.run("register", registry_config(uri), Paths.under(Path(outputs)))


def register_slowly(uri: str, model: str, pause_s: float) -> None:
    """``register`` into a file:// registry, pausing after each file copied, so that a test can SIGKILL it."""
    import time

    from isoclr.registry import FileBackend, register

    copy = FileBackend._copy

    def slowly(source, dest):
        copy(source, dest)
        time.sleep(pause_s)

    FileBackend._copy = staticmethod(slowly)
    register(uri, Path(model), {}, {})
