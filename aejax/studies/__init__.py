"""The studies, one module (or a folder, when a study spans several files) per study, named as its
report `experiments/<name>/`, its `conf/experiment/<name>.yaml` and its task (`aejax/tasks.py`).

A study that trains goes through `aejax.run.train_and_evaluate` with its `analyse` hook (its metrics
join summary.json, which is written last); the others hold the analyses that a report's
`experiments/<name>/make_report.py` runs on a finished run.
"""
