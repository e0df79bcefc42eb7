"""Experiments: commands that train and score several runs to choose between them, each in its module, which is its
public face (each needs an extra of its own, so importing one does not import the other):

- `tunesmith.experiments.sweep` (`tunesmith sweep`, the ``sweep`` extra): a hyperparameter search on the validation
  split (Optuna); `run_sweep`, `prepare_sweep`, `work`, `finish`. Its best trial finishes through the pipeline.
- `tunesmith.experiments.rag_comparison` (`tunesmith compare-rag`, the ``rag`` extra): base, base+RAG, SFT and
  SFT+RAG on the same test questions; `compare_rag`, `comparison_folder`, `ARMS`.
"""
