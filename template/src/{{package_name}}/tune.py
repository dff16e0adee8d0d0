"""Search hyperparameters with Optuna: ``python -m <package>.tune [hparams_search=NAME] [...]``.

The search space, the metric, the sampler, the pruner and the study's database are in
``configs/hparams_search/``; the other overrides apply to every trial (``debug=limit``,
``trainer.max_epochs=10``). Running the same command again resumes the study up to
``hparams_search.n_trials``; several processes given the same ``hparams_search.storage`` share it.
See ``training/tuning.py``.

Exit codes: 0 success (failed trials included); 2 bad config; 5 missing or invalid data; 6 the
tracking server cannot be reached; 128 + N stopped by signal N (the trial in progress is FAIL).
"""

from omegaconf import DictConfig

from .config import check_settings, entry_point


@entry_point("tune")
def main(cfg: DictConfig) -> None:
    check_settings(cfg, "tune")  # the settings every trial shares, before the study is opened
    # Imported here so that `--help` and config errors answer without importing torch or optuna.
    from hydra import compose
    from hydra.core.hydra_config import HydraConfig

    from .data.record import require_validated
    from .training.tuning import search

    command_line = list(HydraConfig.get().overrides.task)

    def compose_trial(overrides):
        return compose(config_name="tune", overrides=[*command_line, *overrides])

    # An error's message and exit code (a trial's failure is the trial's): errors.reported.
    require_validated(cfg)  # every trial trains on data that passed validation
    study = search(cfg, compose_trial)
    states: dict[str, int] = {}
    for trial in study.trials:
        states[trial.state.name] = states.get(trial.state.name, 0) + 1
    counts = ", ".join(f"{n} {state.lower()}" for state, n in sorted(states.items()))
    print(f"study {study.study_name}: {counts}")
    if states.get("COMPLETE"):
        best = study.best_trial
        params = " ".join(f"{k}={v}" for k, v in best.params.items())
        print(f"best: trial {best.number}, {cfg.hparams_search.metric}={best.value:.4g}: {params}")
    print(f"wrote {cfg.hparams_search.output_dir}/best.json")


if __name__ == "__main__":
    main()
