"""What `aejax-train` runs, by `task` in the config: a training run, or a study.

Each entry is `module:function` with the signature `(config: dict, workdir: Path) -> dict`,
imported only when chosen (studies pull in their own dependencies).
"""

TASKS = {
    "train": "aejax.run:train_and_evaluate",
    "single_vector_similarity": "aejax.studies.single_vector_run:run",
    "pca_comparison": "aejax.studies.pca_comparison:run",
    "denoising_curve": "aejax.studies.denoising:curve",
    "denoising_field": "aejax.studies.denoising:field",
    "vae_likelihood": "aejax.studies.vae_likelihood:run",
    "sparse_codes": "aejax.studies.sparse_codes:run",
}


def load_task(name: str):
    import importlib

    module, function = TASKS[name].split(":")
    return getattr(importlib.import_module(module), function)
