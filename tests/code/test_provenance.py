import subprocess

import yaml

from isoclr import provenance
from tests.conftest import ROOT


def test_records_commit_data_version_and_packages():
    record = provenance.collect(ROOT)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    assert record["git_commit"].startswith(head)
    assert record["git_commit"].endswith("-dirty") == bool(record["git_dirty_paths"])
    assert record["data_md5"] == yaml.safe_load((ROOT / "data.dvc").read_text())["outs"][0]["md5"]
    assert record["packages"]["torch"] and record["packages"]["isoclr"]


def test_outside_git_and_dvc_gives_none(tmp_path):
    record = provenance.collect(tmp_path)
    assert record["git_commit"] is None and record["git_dirty_paths"] == [] and record["data_md5"] is None
    assert provenance.dirty_paths(tmp_path) is None


def _repo(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    files = {
        "src/isoclr/m.py": "x = 1\n",
        "params.yaml": "a: 1\n",
        "dvc.lock": "stages: {}\n",
        "README.md": "hi\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    return git


def test_files_dvc_rewrites_leave_the_commit_clean(tmp_path):
    _repo(tmp_path)
    head = provenance.git_commit(tmp_path)
    assert len(head) == 40 and provenance.dirty_paths(tmp_path) == []
    (tmp_path / "dvc.lock").write_text("stages: {train: {}}\n")  # what `dvc repro` does on a clean clone
    (tmp_path / "README.md").write_text("edited\n")  # not something a model depends on
    assert provenance.git_commit(tmp_path) == head
    assert provenance.collect(tmp_path)["git_dirty_paths"] == []


def test_a_changed_source_or_config_is_dirty_and_named(tmp_path):
    git = _repo(tmp_path)
    head = provenance.git_commit(tmp_path)
    (tmp_path / "src" / "isoclr" / "m.py").write_text("x = 2\n")
    assert provenance.git_commit(tmp_path) == f"{head}-dirty"
    assert provenance.dirty_paths(tmp_path) == ["src/isoclr/m.py"]
    (tmp_path / "params.yaml").write_text("a: 2\n")
    subprocess.run([*git, "add", "params.yaml"], check=True)  # staged but not committed is dirty too
    record = provenance.collect(tmp_path)
    assert record["git_commit"] == f"{head}-dirty"
    assert record["git_dirty_paths"] == ["params.yaml", "src/isoclr/m.py"]
    # judged from the repository root, whichever folder of it is asked
    assert provenance.dirty_paths(tmp_path / "src") == ["params.yaml", "src/isoclr/m.py"]


def test_a_renamed_source_is_dirty(tmp_path):
    git = _repo(tmp_path)
    subprocess.run([*git, "mv", "src/isoclr/m.py", "src/isoclr/n.py"], check=True)
    assert provenance.dirty_paths(tmp_path) == ["src/isoclr/n.py"]
    assert provenance.git_commit(tmp_path).endswith("-dirty")
