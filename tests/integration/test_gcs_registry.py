"""gs:// registry faults and CLI against real servers: fake-gcs-server, and a loopback GCS endpoint that denies access.

Each fault must come back as one RegistryError (one `error:` line from the CLI)
that says what to fix.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from isoclr.cli import app
from isoclr.registry import GCSBackend, RegistryError, backend_for, champion, list_versions, register, set_champion
from tests.helpers import make_model

pytestmark = pytest.mark.integration
runner = CliRunner()


def test_a_missing_bucket_is_named(gcs_bucket, tmp_path):
    uri = f"gs://{gcs_bucket}-absent/models"
    model = make_model(tmp_path, "1")
    calls = (lambda: list_versions(uri), lambda: champion(uri), lambda: register(uri, model, {}, {}))
    for call in calls:
        with pytest.raises(RegistryError, match=rf"bucket '{gcs_bucket}-absent' does not exist.*fix registry.uri"):
            call()


def test_a_uri_without_bucket_is_refused():
    with pytest.raises(RegistryError, match="needs a bucket"):
        list_versions("gs:///models")


def test_a_retried_object_upload_is_idempotent_and_a_different_one_refused(gcs_bucket, tmp_path):
    backend = backend_for(f"gs://{gcs_bucket}/models")
    assert isinstance(backend, GCSBackend)
    source = tmp_path / "weights.bin"
    source.write_bytes(b"weights")
    backend._upload_file("versions/v/model/weights.bin", source)
    backend._upload_file("versions/v/model/weights.bin", source)  # the reply was lost, the client retries: fine
    source.write_bytes(b"other weights")
    with pytest.raises(RegistryError, match="already exists with other content: versions are immutable"):
        backend._upload_file("versions/v/model/weights.bin", source)
    assert backend.get("versions/v/model/weights.bin") == b"weights"


class _Denied(BaseHTTPRequestHandler):
    """A GCS JSON API endpoint whose every answer is 403, as for an account without storage roles."""

    def _deny(self) -> None:
        body = json.dumps(
            {"error": {"code": 403, "message": "caller does not have storage.objects.list access to the bucket."}}
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _deny

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def denying_endpoint(monkeypatch):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Denied)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_address[1]}")
    yield
    server.shutdown()
    server.server_close()


def test_permission_denied_is_one_clear_message(denying_endpoint, tmp_path):
    uri = "gs://isoclr-models/registry"
    denied = r"permission denied to read champion.json in bucket 'isoclr-models' \(HTTP 403"
    with pytest.raises(RegistryError, match=denied):
        list_versions(uri)
    with pytest.raises(RegistryError, match="permission denied to .* roles/storage.objectUser"):
        register(uri, make_model(tmp_path, "1"), {}, {})
    result = runner.invoke(app, ["registry", "list", "--registry", uri])
    assert result.exit_code == 1
    assert result.output.startswith("error: registry gs://isoclr-models/registry: permission denied")
    assert "Traceback" not in result.output


def test_missing_credentials_is_one_clear_message(tmp_path):
    # A fresh process with no emulator, no key file, no gcloud config, and the GCE metadata check off
    # (so nothing leaves the machine): the client finds no credentials at all.
    env = {k: v for k, v in os.environ.items() if k not in ("STORAGE_EMULATOR_HOST", "GOOGLE_APPLICATION_CREDENTIALS")}
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path / "gcloud"),
        NO_GCE_CHECK="true",
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
    )
    code = "from isoclr.cli import app; app()"
    result = subprocess.run(
        [sys.executable, "-c", code, "registry", "list", "--registry", "gs://isoclr-models/registry"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: registry gs://isoclr-models/registry: no Google Cloud credentials found")
    assert "GOOGLE_APPLICATION_CREDENTIALS" in result.stderr and "Traceback" not in result.stderr


def test_cli_lists_shows_fetches_and_rolls_back(gcs_bucket, tmp_path):
    uri = f"gs://{gcs_bucket}/models"
    v1 = register(uri, make_model(tmp_path / "m1", "1"), {}, {"note": "first"})
    v2 = register(uri, make_model(tmp_path / "m2", "2"), {}, {"note": "second"})
    set_champion(uri, v1)
    set_champion(uri, v2)

    listed = runner.invoke(app, ["registry", "list", "--registry", uri])
    assert listed.exit_code == 0 and listed.output.split() == [v1, "*", v2]
    assert runner.invoke(app, ["registry", "champion", "--registry", uri]).output.strip() == v2

    shown = runner.invoke(app, ["registry", "show", v1, "--registry", uri])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["metadata"]["note"] == "first"

    fetched = runner.invoke(app, ["registry", "fetch", "champion", "--dest", str(tmp_path / "out"), "--registry", uri])
    assert fetched.exit_code == 0, fetched.output
    assert (tmp_path / "out" / "meta.json").read_bytes() == (tmp_path / "m2" / "meta.json").read_bytes()

    rolled = runner.invoke(app, ["registry", "rollback", v1, "--registry", uri])
    assert rolled.exit_code == 0 and champion(uri) == v1
    missing = runner.invoke(app, ["registry", "fetch", "nope", "--dest", str(tmp_path / "x"), "--registry", uri])
    assert missing.exit_code == 1 and "no version 'nope'" in missing.output
