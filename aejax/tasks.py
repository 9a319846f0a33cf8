"""What `aejax-train` runs, by `task` in the config: a training run, or a study.

Each entry is `module:function` with the signature `(config: dict, workdir) -> dict`, imported only
when chosen (studies pull in their own dependencies). `workdir` is a path, or the run directory that
aejax-train opened and will close (`aejax.rundir.hold`). A study's task has the study's
name, which is also that of its config (`conf/experiment/<name>.yaml`), its report
(`experiments/<name>/`) and its code (`aejax/studies/<name>`).
"""

TASKS = {
    "train": "aejax.run:train_and_evaluate",
    "single_vector_similarity": "aejax.studies.single_vector_similarity:run",
    "linear_pca": "aejax.studies.linear_pca:run",
    "mnist_deep_autoencoder": "aejax.studies.linear_pca:run",  # the same comparison with PCA, for a deep autoencoder
    "denoising": "aejax.studies.denoising:run",
    "denoising_field": "aejax.studies.denoising:field",
    "mnist_vae": "aejax.studies.mnist_vae:run",
    "vampprior_mnist": "aejax.studies.mnist_vae:run",  # the same test NLL, for the VampPrior and its baseline
    "sparse_codes": "aejax.studies.sparse_codes:run",
    "wae_mnist": "aejax.studies.wae_mnist:run",
}
# Former task names: the config.yaml of a run directory written under one still loads
# (`aejax.trained.load_run`, a resume) and runs the same study.
FORMER_NAMES = {"pca_comparison": "linear_pca", "denoising_curve": "denoising", "vae_likelihood": "mnist_vae"}
TASKS.update({old: TASKS[new] for old, new in FORMER_NAMES.items()})


def load_task(name: str):
    import importlib

    module, function = TASKS[name].split(":")
    return getattr(importlib.import_module(module), function)
