"""The data pipeline of a rendered project, end to end and offline: with DVC and without it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from .conftest import VENV_BIN, run
from .matrix import package_name
from .test_precommit import make_venv, outside_the_environment

DVC = str(VENV_BIN / "dvc")


def project_copy(rendered, tmp_path):
    project = tmp_path / "project"
    shutil.copytree(rendered.path, project)
    return project, {"PYTHONPATH": str(project / "src"), "PRE_COMMIT_HOME": str(tmp_path / "pc")}


@pytest.mark.slow
def test_dvc_pipeline_runs_offline_and_versions_the_data(default_project, tmp_path):
    project, env = project_copy(default_project, tmp_path)
    pkg = package_name(default_project.answers)
    # What `make setup` does for DVC (tests/test_copy_cli.py runs `make setup` itself).
    for cmd in [
        ["git", "init", "--quiet", "--initial-branch=main"],
        [DVC, "init", "--quiet"],
        [DVC, "config", "core.analytics", "false"],
        [DVC, "config", "hydra.enabled", "true"],
        [DVC, "config", "hydra.config_dir", "configs"],
        [DVC, "config", "hydra.config_name", "evaluate"],
        [DVC, "remote", "add", "--default", "storage", str(tmp_path / "dvc-storage")],
        ["python", "-m", f"{pkg}.config", "params.yaml"],
        ["pre-commit", "install"],
        ["git", "add", "--all"],
        ["git", "commit", "--quiet", "-m", "setup"],
    ]:
        run(cmd, cwd=project, **env)

    first = run([DVC, "repro"], cwd=project, **env)
    for stage in ["prepare", "validate", "train", "evaluate", "export"]:
        assert f"Running stage '{stage}'" in first.stdout, stage
    # The model `make serve` serves by default, with what it was trained on inside.
    assert (project / "outputs" / "pipeline" / "model.pt2").is_file()
    assert json.loads((project / "reports" / "validation.json").read_text())["passed"] is True
    # The whole pipeline's results: the report, its charts, and one tracked run holding them.
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["test/accuracy"] > 0.9
    assert (project / "reports" / "evaluation.md").is_file()
    assert (project / "reports" / "confusion_matrix.png").is_file()
    # The cards: the data card by validate, the model card by evaluate, logged with the run.
    assert "**Passed**" in (project / "reports" / "data_card.md").read_text()
    assert "## Performance on the test split" in (project / "reports" / "model_card.md").read_text()
    check_run = (
        "import mlflow; mlflow.set_tracking_uri('sqlite:///mlflow.db');"
        "[r] = mlflow.search_runs(search_all_experiments=True, output_format='list');"
        "c = mlflow.MlflowClient();"
        "print(sorted(r.data.metrics)); print([a.path for a in c.list_artifacts(r.info.run_id)]);"
        "print([a.path for a in c.list_artifacts(r.info.run_id, 'evaluation')]);"
        "print([a.path for a in c.list_artifacts(r.info.run_id, 'data')]);"
        "print('registry.decision=' + r.data.tags.get('registry.decision', ''))"
    )
    tracked = run(["python", "-c", check_run], cwd=project, **env).stdout
    assert "evaluation/test/accuracy" in tracked and "train/loss" in tracked
    assert "evaluation/evaluation.md" in tracked and "evaluation/confusion_matrix.png" in tracked
    assert "evaluation/predictions_worst.json" in tracked  # the worst predictions, as a table
    assert "evaluation/model_card.md" in tracked and "data/data_card.md" in tracked
    # The default model passes evaluate's gate: the first version of the registered model.
    assert "registry.decision=registered" in tracked
    second = run([DVC, "repro"], cwd=project, **env)
    assert "Data and pipelines are up to date" in second.stdout
    # The pre-commit hooks accept what DVC wrote (dvc.lock, reports/).
    run(["git", "add", "--all"], cwd=project)
    run(["git", "commit", "--quiet", "-m", "data"], cwd=project, **env)

    # The data version the tracking code records, the md5 of the files, equals DVC's after repro.
    lock = yaml.safe_load((project / "dvc.lock").read_text())
    md5 = next(o["md5"] for o in lock["stages"]["prepare"]["outs"] if o["path"] == "data/processed")
    version = run(
        [
            "python",
            "-c",
            f"from {pkg}.data.version import data_version as v; print(v('data/processed'))",
        ],
        cwd=project,
        **env,
    )
    assert f"'md5': '{md5}'" in version.stdout and md5.endswith(".dir")
    assert "'matches_dvc_lock': True" in version.stdout

    # push, lose the cache and the data, pull them back.
    run([DVC, "push"], cwd=project, **env)
    train = pd.read_parquet(project / "data" / "processed" / "train.parquet")
    for lost in [".dvc/cache", "data/raw", "data/processed"]:
        shutil.rmtree(project / lost)
    run([DVC, "pull"], cwd=project, **env)
    pd.testing.assert_frame_equal(pd.read_parquet(project / "data/processed/train.parquet"), train)
    assert "in sync" in run([DVC, "status", "--cloud"], cwd=project, **env).stdout

    # An experiment with a Hydra override: DVC composes configs/ into params.yaml and reruns.
    # As a user runs it: `.venv/bin/dvc`, in a shell where the environment is not activated.
    make_venv(project)
    shell = outside_the_environment(tmp_path)
    exp = [".venv/bin/dvc", "exp", "run", "--set-param", "data.val_fraction=0.2"]
    run(exp, cwd=project, **env, **shell)
    assert yaml.safe_load((project / "params.yaml").read_text())["data"]["val_fraction"] == 0.2
    val = pd.read_parquet(project / "data" / "processed" / "val.parquet")
    total = len(train) / 0.7
    assert len(val) == pytest.approx(0.2 * total, abs=2)
    # Keeping the experiment: the hooks accept its params.yaml (configs/ did not change).
    run(["git", "add", "--all"], cwd=project, **shell)
    run(["git", "commit", "--quiet", "-m", "val_fraction 0.2"], cwd=project, **env, **shell)


@pytest.mark.slow
def test_bad_raw_data_stops_dvc_repro_and_keeps_the_last_good_outputs(default_project, tmp_path):
    project, env = project_copy(default_project, tmp_path)
    pkg = package_name(default_project.answers)
    for cmd in [
        ["git", "init", "--quiet"],
        [DVC, "init", "--quiet"],
        [DVC, "config", "core.analytics", "false"],
        ["python", "-m", f"{pkg}.config", "params.yaml"],
    ]:
        run(cmd, cwd=project, **env)
    # The data stages only (prepare, validate): what this test guards is their outputs, and
    # training on them would add a minute without touching them.
    run([DVC, "repro", "validate"], cwd=project, **env)
    processed = {p.name: p.read_bytes() for p in (project / "data/processed").iterdir()}
    report = (project / "reports" / "validation.json").read_bytes()
    # New raw data arrives with a class that cannot be: an eleventh class folder of digits.
    raw = project / "data" / "raw" / "digits"
    (raw / "extra").mkdir()
    shutil.copy(next((raw / "3").iterdir()), raw / "extra" / "0.png")
    with pytest.raises(pytest.fail.Exception, match="prepare: error:") as failure:
        run([DVC, "repro"], cwd=project, **env)  # the whole pipeline: it stops at prepare
    assert "holds 11 classes" in str(failure.value) and "num_classes" in str(failure.value)
    assert "Running stage 'validate'" not in str(failure.value)
    # The last good processed data and its report are still there, byte for byte.
    assert {p.name: p.read_bytes() for p in (project / "data/processed").iterdir()} == processed
    assert (project / "reports" / "validation.json").read_bytes() == report


@pytest.mark.slow
def test_make_repro_without_dvc_runs_the_whole_pipeline(render, tmp_path):
    rendered = render({"use_dvc": False, "task": "tabular_regression"})
    project, env = project_copy(rendered, tmp_path)
    assert not (project / "dvc.yaml").exists()
    proc = run(["make", "repro", f"VENV={VENV_BIN.parent}"], cwd=project, **env)
    assert "prepared diabetes" in proc.stdout and "validation passed" in proc.stdout
    assert (project / "data" / "raw" / "diabetes.parquet").is_file()
    assert (project / "outputs" / "pipeline" / "checkpoints" / "best.pt").is_file()
    assert (project / "outputs" / "pipeline" / "model.pt2").is_file()  # what `make serve` serves
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert metrics["test/r2"] > 0.2  # clearly better than the mean, whose R² is 0
