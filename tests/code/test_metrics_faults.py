"""A Pushgateway that is down, hangs or trickles costs a warning within metrics.push_timeout_seconds, never a stage.

Each case runs a real stage (register, with a gate that did not pass: fast, no model needed)
through the stage runner against a local socket server that misbehaves.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from isoclr import stage
from isoclr.artifacts import Paths
from tests.helpers import make_model, tiny_params, write_inputs

TIMEOUT_S = 1.0
MARGIN_S = 1.0  # the stage itself, and the push's thread start


def _serve(behaviour: str):
    """A loopback server: ``hang`` accepts and never answers; ``trickle`` answers one byte every 0.3 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()
    held = []

    def handle(conn: socket.socket) -> None:
        held.append(conn)
        if behaviour == "trickle":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.3):
                    return
                try:
                    conn.send(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server, stop, held


@pytest.fixture(params=["down", "hang", "trickle"])
def gateway(request):
    if request.param == "down":
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        return
    server, stop, held = _serve(request.param)
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    for conn in held:
        conn.close()
    server.close()


def test_a_bad_gateway_costs_a_warning_within_the_timeout_never_the_stage(gateway, tmp_path, caplog):
    from isoclr.config import Config

    params = tiny_params()
    params["metrics"] = {"pushgateway_url": gateway, "push_timeout_seconds": TIMEOUT_S}
    params["registry"] = {"uri": f"file://{tmp_path / 'registry'}"}
    cfg = Config.model_validate(params)
    paths = Paths.under(tmp_path / "outputs")
    make_model(paths.model, "m")
    _, decision = write_inputs(paths.probe, passed=False)
    decision.rename(paths.decision)

    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="isoclr.metrics"):
        result = stage.run("register", cfg, paths)
    elapsed = time.monotonic() - began

    assert result.registered is False and paths.registration.is_file()  # the stage did its work
    assert "could not push the register metrics" in caplog.text and "the stage goes on" in caplog.text
    assert elapsed < TIMEOUT_S + MARGIN_S, f"{elapsed:.2f} s"


def test_a_push_still_hanging_makes_the_next_one_a_skipped_warning(caplog):
    from isoclr import metrics
    from tests.helpers import metrics_config

    server, stop, held = _serve("trickle")  # keeps the first push's thread busy for seconds
    try:
        cfg = metrics_config(pushgateway_url=f"http://127.0.0.1:{server.getsockname()[1]}", push_timeout_seconds=0.5)
        run = metrics.StageRun(cfg.metrics, "train")
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="isoclr.metrics"):
            assert run.push() is False  # times out after 0.5 s, its thread still waiting on the socket
            assert run.push() is False  # skipped at once instead of piling up threads
        assert time.monotonic() - began < 0.5 + MARGIN_S
        assert "no answer within 0.5 s" in caplog.text and "previous push" in caplog.text
    finally:
        stop.set()
        for conn in held:
            conn.close()
        server.close()
