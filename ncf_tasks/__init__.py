"""NCF retraining pipeline stages: plain Python, no Airflow import (see DESIGN.md and the README).

Module map (one direction of dependency; the stages are siblings and never import each other):

* shared pieces: ``config`` (settings, ``NCF_*`` names), ``errors`` (exit codes), ``layout`` (every
  bucket key), ``storage`` (object I/O), ``artifacts`` (everything under ``runs/<run_id>/``: typed
  manifest, tensors, models and checkpoints bound to the training set, metrics, report, device set-up).
* ML building blocks: ``models`` (GMF, MLP, NeuMF), ``sampling`` (negatives), ``metrics`` (HR/NDCG),
  ``fitting`` (the epoch loop: optimisers, lazy L2, early stopping), ``scoring`` (the full-catalogue
  scorer in torch, with excluded pairs masked), ``serving`` (the published model as arrays, scored with
  numpy: publish on a CPU worker), ``profile`` (the tuned profile runs pick up).
* stages, one module each, ``run_<stage>(settings, ...) -> dict``: ``ingest`` (with ``rawio`` and
  ``parquet_stream``), ``validate``, ``build``, ``train``, ``evaluate`` (with ``gate`` and ``report``),
  ``publish``, ``tune`` (an Optuna study on the validation split).
* around them: ``reader`` (downstream jobs), ``generate`` and ``movielens`` (inputs), ``local_s3`` (the
  embedded endpoint), ``inventory``, and ``__main__`` (the CLI).
"""
