"""Experiments: commands that train and score several runs to choose between them. `tunesmith sweep` searches
hyperparameters on the validation split (Optuna) and finishes the best trial through the pipeline;
`tunesmith compare-rag` measures base, base+RAG, SFT and SFT+RAG on the same test questions."""

from tunesmith.experiments.rag_comparison import ARMS, compare_rag, comparison_folder
from tunesmith.experiments.sweep import finish, prepare_sweep, run_sweep, work

__all__ = ["ARMS", "compare_rag", "comparison_folder", "finish", "prepare_sweep", "run_sweep", "work"]
