"""Stage: tune. `tunesmith sweep`: a hyperparameter search on Optuna that chooses by the validation split, then
evaluates, exports and reports the best trial."""

from tunesmith.tune.sweep import finish, prepare_sweep, run_sweep, work

__all__ = ["finish", "prepare_sweep", "run_sweep", "work"]
