"""The answer matrix: which combinations of answers the template tests render.

The product is taken over the answers that change which files a project has (use_dvc,
use_mlflow, use_docker, ci); the answers that change content only (task, license,
python_version, the names) are rotated through it, as cookiecutter-data-science does, so each of
their values is rendered several times and against every value of the structural answers.
Every combination is rendered once per test session (see conftest.py).
"""

from __future__ import annotations

import itertools
from typing import Any

DEFAULTS: dict[str, Any] = {
    "project_name": "my-dl-project",
    "package_name": "my_dl_project",
    "task": "image_classification",
    "license": "MIT",
    "python_version": "3.11",
    "use_dvc": True,
    "use_mlflow": True,
    "use_docker": True,
    "ci": "github",
}

STRUCTURAL: dict[str, list[Any]] = {
    "use_dvc": [True, False],
    "use_mlflow": [True, False],
    "use_docker": [True, False],
    "ci": ["github", "gitlab", "none"],
}

ROTATED: dict[str, list[Any]] = {
    "task": [
        "image_classification",
        "tabular_classification",
        "tabular_regression",
        "text_classification",
    ],
    "license": ["MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary"],
    "python_version": ["3.10", "3.11", "3.12", "3.13"],
    # Asked only with use_dvc; its URL answer takes the default for the kind of remote.
    "dvc_remote": ["local", "s3", "gcs", "azure", "none"],
    # Asked only with use_docker.
    "docker_base": ["cpu", "cuda"],
    # The package name is derived from the project name: exercise the derivation too.
    "project_name": ["my-dl-project", "Digit Recognizer", "tabular.demo_2", "vision-lab"],
}

DERIVED_PACKAGE_NAMES = {
    "my-dl-project": "my_dl_project",
    "Digit Recognizer": "digit_recognizer",
    "tabular.demo_2": "tabular_demo_2",
    "vision-lab": "vision_lab",
}


def _rotate(values: list[Any], index: int, offset: int) -> Any:
    # The extra `index // len(values)` shifts the cycle by one on every lap, so a rotated answer
    # whose cycle length matches a structural answer's is not paired with one of its values only.
    return values[(index + offset + index // len(values)) % len(values)]


def _task(answers: dict[str, Any]) -> str:
    # The task by the sum of the structural answers' positions: whichever structural value is
    # fixed, the others still sum to at least as many residues as there are tasks, so each task
    # meets each value of every structural answer (and each (use_mlflow, use_dvc) pair), and it
    # is not paired for ever with the other rotated answers of the same cycle length.
    position = sum(STRUCTURAL[name].index(value) for name, value in answers.items())
    tasks = ROTATED["task"]
    return tasks[position % len(tasks)]


def combinations() -> list[dict[str, Any]]:
    """Every structural combination, each with one value of every rotated answer."""
    combos = []
    for index, values in enumerate(itertools.product(*STRUCTURAL.values())):
        answers = dict(zip(STRUCTURAL, values, strict=True))
        rotated = {"task": _task(answers)}
        for offset, (name, choices) in enumerate(ROTATED.items(), start=1):
            if name != "task":
                rotated[name] = _rotate(choices, index, offset)
        combos.append({**answers, **rotated})
    return combos


def combination_id(answers: dict[str, Any]) -> str:
    """A short, readable test id: task, then the structural answers."""
    task = {
        "image_classification": "img",
        "tabular_classification": "tcls",
        "tabular_regression": "treg",
        "text_classification": "txt",
    }[answers["task"]]
    flags = [
        f"dvc{int(answers['use_dvc'])}",
        f"mlf{int(answers['use_mlflow'])}",
        f"dkr{int(answers['use_docker'])}",
        f"ci-{answers['ci']}",
    ]
    return "-".join([task, *flags])


DATASETS = {
    "image_classification": "digits",
    "tabular_classification": "breast_cancer",
    "tabular_regression": "diabetes",
    "text_classification": "docstrings",
}


def package_name(answers: dict[str, Any]) -> str:
    return answers.get("package_name") or DERIVED_PACKAGE_NAMES[answers["project_name"]]


HOW_TO_PAGES = [
    "add-a-task",
    "add-model",
    "async-checkpoints",
    "cards",
    "compare-models",
    "cross-validate",
    "data-routine",
    "distill",
    "distributed",
    "docker",
    "ema",
    "fine-tune-text",
    "lock-dependencies",
    "monitor",
    "multirun",
    "fsdp",
    "own-data",
    "quantize",
    "registry",
    "remote-stores",
    "serve",
    "slurm",
    "trackers",
    "type-check-and-coverage",
]
REFERENCE_PAGES = [
    "benchmarks",
    "data",
    "delivery",
    "evaluation",
    "faults",
    "monitoring",
    "tracking",
    "training",
    "tuning",
    "updating",
]


def expected_files(answers: dict[str, Any]) -> set[str]:
    """The exact set of files a render with these answers must contain."""
    pkg = f"src/{package_name(answers)}"
    files = {
        ".copier-answers.yml",
        ".editorconfig",
        ".gitignore",
        ".pre-commit-config.yaml",
        "LICENSE",
        "Makefile",
        "README.md",
        "pyproject.toml",
        "reports/.gitkeep",
        "scripts/in_venv.sh",
        # the template's how-to and reference pages, rendered from symlinks to its docs/
        *(f"docs/how-to/{page}.md" for page in HOW_TO_PAGES),
        *(f"docs/{page}.md" for page in REFERENCE_PAGES),
        "scripts/torch_index.sh",
        "scripts/install_locked.sh",
        # VS Code / Codespaces: a CPU and a CUDA container (tests/test_devcontainer.py)
        ".devcontainer/devcontainer.json",
        ".devcontainer/cuda/devcontainer.json",
        f"{pkg}/__init__.py",
        f"{pkg}/config.py",
        f"{pkg}/errors.py",
        f"{pkg}/masking.py",
        f"{pkg}/settings.py",
        "tests/test_config_schema.py",
        f"{pkg}/evaluation/__init__.py",
        f"{pkg}/models/__init__.py",
        f"{pkg}/models/build.py",
        f"{pkg}/models/cnn.py",
        f"{pkg}/models/mlp.py",
        f"{pkg}/tracking/__init__.py",
        f"{pkg}/training/__init__.py",
        "tests/test_layers.py",
        "tests/test_layout.py",
        "tests/test_models.py",
    }
    # data
    dataset = DATASETS[answers["task"]]
    files |= {
        "data/README.md",
        "configs/train.yaml",
        "configs/paths/default.yaml",
        "configs/hydra/default.yaml",
        f"configs/data/{dataset}.yaml",
        f"{pkg}/data/__init__.py",
        f"{pkg}/data/checks.py",
        f"{pkg}/data/card.py",  # the data card validate writes
        f"{pkg}/data/datasets.py",
        f"{pkg}/data/images.py",
        f"{pkg}/data/image_checks.py",
        f"{pkg}/data/image_sources.py",
        f"{pkg}/data/large.py",
        f"{pkg}/data/prepare.py",
        f"{pkg}/data/record.py",
        f"{pkg}/data/schemas.py",
        f"{pkg}/data/sources.py",
        f"{pkg}/data/streaming.py",
        f"{pkg}/data/validate.py",
        f"{pkg}/data/version.py",
        "tests/conftest.py",
        "tests/test_data.py",
        "tests/test_data_validation.py",
        "tests/test_data_integrity.py",
        "tests/test_streaming.py",
    }
    if answers["task"] == "image_classification":  # image files: folders, manifests, checks
        files.add("tests/test_image_files.py")
    if answers["use_dvc"]:
        files |= {".dvcignore", "dvc.yaml"}
    # trainer
    model = {"image_classification": "cnn", "text_classification": "transformer"}.get(
        answers["task"], "mlp"
    )
    files |= {f"configs/model/{model}.yaml", f"configs/model/{model}_small.yaml"}
    # pretrained backbones and fine-tuning (the module and its parts work for any task)
    files |= {f"{pkg}/models/backbone.py", f"{pkg}/training/finetuning.py"}
    files.add(f"{pkg}/models/lora.py")  # LoRA fine-tuning (transformers and peft: the extra nlp)
    if answers["task"] == "image_classification":
        files |= {"configs/model/resnet18_pretrained.yaml", "tests/test_backbones.py"}
    if answers["task"] == "text_classification":  # a pretrained transformer and its adapters
        files |= {"configs/model/lora_pretrained.yaml", "tests/test_lora.py"}
    # texts: the tokenizer, the Transformer encoder (the modules are in every render)
    files |= {
        f"{pkg}/data/{name}.py" for name in ("text", "text_checks", "text_prepare", "text_sources")
    }
    files.add(f"{pkg}/models/transformer.py")
    if answers["task"] == "text_classification":  # the bundled corpus and its licence
        files |= {
            f"{pkg}/data/corpus/docstrings.jsonl.gz",
            f"{pkg}/data/corpus/LICENSE-PSF.txt",
            "configs/model/transformer.yaml",
            "configs/model/transformer_small.yaml",
            "tests/test_text_data.py",
            "tests/test_text_model.py",
        }
    files |= {
        "configs/trainer/default.yaml",
        "configs/optimizer/adamw.yaml",
        "configs/optimizer/sgd.yaml",
        "configs/scheduler/cosine.yaml",
        "configs/scheduler/none.yaml",
        "configs/logger/none.yaml",
        "configs/debug/fast_dev_run.yaml",
        "configs/debug/overfit_batches.yaml",
        "configs/debug/limit.yaml",
        "configs/debug/profiler.yaml",
        "configs/debug/health.yaml",
        "configs/experiment/example.yaml",
        "scripts/slurm/train.sbatch",
        f"{pkg}/train.py",
        f"{pkg}/tracking/base.py",
        f"{pkg}/training/checkpoint.py",
        f"{pkg}/training/distributed.py",
        f"{pkg}/training/health.py",
        f"{pkg}/training/sample_grid.py",
        f"{pkg}/training/loading.py",
        f"{pkg}/training/precision.py",
        f"{pkg}/training/run_lock.py",
        f"{pkg}/training/sampling.py",
        f"{pkg}/training/schedulers.py",
        f"{pkg}/training/trainer.py",
        "tests/test_training.py",
        "tests/test_training_processes.py",
        "tests/test_multirun.py",
        "tests/test_fsdp.py",
        "tests/test_interruptions.py",
        "tests/test_health.py",
        "tests/training_helpers.py",
    }
    # the kinds of task: the only code that knows whether a run classifies or regresses
    files |= {
        f"{pkg}/tasks/{name}.py"
        for name in (
            "__init__",
            "base",
            "classification",
            "image_classification",
            "regression",
            "text_classification",
        )
    }
    files |= {"tests/test_tasks.py"}
    # guards against training silently wrong (divergence, resume under a changed config)
    files |= {
        f"{pkg}/training/divergence.py",
        f"{pkg}/training/resume.py",
        "tests/test_training_guards.py",
    }
    # the loop's parts, called by name from trainer.py
    files |= {
        f"{pkg}/training/{name}.py"
        for name in ("checkpointer", "plan", "profiler", "splits", "validator", "window")
    }
    files.add("tests/test_trainer_parts.py")
    # the EMA of the weights (trainer.ema), asynchronous checkpoint writes (checkpoint.async_save)
    files |= {f"{pkg}/training/ema.py", f"{pkg}/training/async_save.py"}
    files |= {"tests/test_ema.py", "tests/test_async_checkpoint.py"}
    # FSDP and its sharded checkpoints (trainer.strategy=fsdp), and their consolidation
    files |= {
        f"{pkg}/training/fsdp.py",
        f"{pkg}/training/sharded.py",
        f"{pkg}/consolidate.py",
    }
    # knowledge distillation (experiment=distill: a small student from a teacher's checkpoint)
    files |= {
        f"{pkg}/training/distillation.py",
        "configs/experiment/distill.yaml",
        "tests/test_distillation.py",
    }
    # train-time augmentation (data.augment, data.augment_on)
    files |= {f"{pkg}/data/augmentation.py", "tests/test_augmentation.py"}
    # tuning
    search = {
        "image_classification": "digits_cnn",
        "tabular_classification": "breast_cancer_mlp",
        "tabular_regression": "diabetes_mlp",
        "text_classification": "docstrings_transformer",
    }[answers["task"]]
    files |= {
        "configs/tune.yaml",
        f"configs/hparams_search/{search}.yaml",
        f"{pkg}/tune.py",
        f"{pkg}/training/tuning.py",
        f"{pkg}/training/study.py",
        "tests/test_tune.py",
    }
    # k-fold cross-validation (make cv)
    files |= {
        "configs/cv.yaml",
        f"{pkg}/cv.py",
        f"{pkg}/training/crossval.py",
        f"{pkg}/data/folds.py",
        "tests/test_cv.py",
    }
    # tracking
    files |= {
        f"{pkg}/tracking/run_info.py",
        f"{pkg}/tracking/progress.py",
        f"{pkg}/tracking/records.py",
        f"{pkg}/tracking/job_log.py",
        f"{pkg}/tracking/sweep.py",
        "tests/test_tracking.py",
        "tests/test_records.py",
        "tests/test_outages.py",
        # the trackers besides MLflow, and several at once
        f"{pkg}/tracking/csv_logger.py",
        f"{pkg}/tracking/tensorboard_logger.py",
        f"{pkg}/tracking/wandb_logger.py",
        f"{pkg}/tracking/multi.py",
        f"{pkg}/tracking/run_folder.py",
        "configs/logger/csv.yaml",
        "configs/logger/tensorboard.yaml",
        "configs/logger/wandb.yaml",
        "configs/logger/multi.yaml",
        "tests/test_trackers.py",
    }
    if answers["use_mlflow"]:
        files |= {
            f"{pkg}/tracking/mlflow_logger.py",
            f"{pkg}/tracking/resend.py",
            f"{pkg}/tracking/unsent.py",
            "configs/logger/mlflow.yaml",
            "tests/test_tracking_mlflow.py",
            f"{pkg}/tracking/registry.py",  # evaluate's gate promotes to MLflow's registry
            "tests/test_registry.py",
        }
    # evaluation
    files |= {
        "configs/evaluate.yaml",
        f"configs/evaluation/{dataset}.yaml",
        f"{pkg}/evaluate.py",
        f"{pkg}/evaluation/behaviour.py",
        f"{pkg}/evaluation/calibration.py",
        f"{pkg}/evaluation/comparison.py",
        f"{pkg}/evaluation/distributions.py",
        f"{pkg}/evaluation/importance.py",
        f"{pkg}/evaluation/metrics.py",
        f"{pkg}/evaluation/plots.py",
        f"{pkg}/evaluation/quantization.py",
        f"{pkg}/evaluation/report.md.j2",
        f"{pkg}/evaluation/report.py",
        f"{pkg}/evaluation/results.py",
        f"{pkg}/evaluation/slices.py",
        f"{pkg}/evaluation/suite.py",
        f"{pkg}/evaluation/text_behaviour.py",
        f"{pkg}/evaluation/thresholds.py",
        "tests/test_evaluation.py",
        "tests/test_evaluation_entry.py",
        f"{pkg}/evaluation/cards.py",  # the model card evaluate writes
        f"{pkg}/evaluation/gate.py",  # the registry's gate (decided with or without MLflow)
        "tests/test_gate.py",
        "tests/test_cards.py",
        "tests/test_quantization.py",
    }
    if answers["task"] == "text_classification":  # edits of raw text, the bag-of-words baseline
        files.add("tests/test_text_evaluation.py")
    # delivery
    files |= {
        "configs/predict.yaml",
        "configs/export.yaml",
        f"{pkg}/inference.py",
        f"{pkg}/batch.py",
        f"{pkg}/image_batch.py",
        f"{pkg}/text_batch.py",
        f"{pkg}/predict.py",
        f"{pkg}/export.py",
        f"{pkg}/exporting.py",
        f"{pkg}/models/predictor.py",
        "tests/test_predict.py",
        "tests/test_security.py",
        "tests/test_onnx.py",  # ONNX export, run with onnxruntime
    }
    # serving: the HTTP service, its load test and its monitoring (issue 21)
    files |= {
        "configs/serve.yaml",
        "configs/monitor.yaml",
        f"{pkg}/serve.py",
        *(
            f"{pkg}/serving/{name}.py"
            for name in ("__init__", "app", "batcher", "drift", "inputs", "monitoring", "server")
        ),
        "tests/test_serve.py",
        f"{pkg}/monitor.py",
        "tests/test_monitoring.py",
        f"{pkg}/loadtest.py",
        "tests/test_loadtest.py",
        f"{pkg}/routine.py",  # the scheduled data routine (make routine)
        "tests/test_routine.py",
    }
    if answers["task"] == "image_classification":
        files |= {"tests/test_predict_files.py"}  # predict on image files, export on pixels
    if answers["task"] == "text_classification":
        files |= {"tests/test_predict_text.py"}  # predict on raw texts, export with the tokenizer
    if answers["use_docker"]:
        files |= {"Dockerfile", ".dockerignore"}
    if answers["ci"] == "github":
        files |= {".github/workflows/ci.yml", ".github/workflows/routine.yml"}
    elif answers["ci"] == "gitlab":
        files |= {".gitlab-ci.yml"}
    return files
