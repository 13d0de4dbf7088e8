import subprocess

import yaml

from isoclr import provenance
from tests.conftest import ROOT


def test_records_commit_data_version_and_packages():
    record = provenance.collect(ROOT)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git_commit"].startswith(head)
    assert record["data_md5"] == yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    assert record["packages"]["torch"] and record["packages"]["isoclr"]


def test_outside_git_and_dvc_gives_none(tmp_path):
    record = provenance.collect(tmp_path)
    assert record["git_commit"] is None and record["data_md5"] is None


def test_dirty_tree_is_marked(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f").write_text("a")
    subprocess.run([*git, "add", "f"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    assert not provenance.git_commit(tmp_path).endswith("-dirty")
    (tmp_path / "f").write_text("b")
    assert provenance.git_commit(tmp_path).endswith("-dirty")
