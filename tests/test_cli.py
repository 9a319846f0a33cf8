"""The real entry point: `aejax-train` in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO, TINY

# Every bad command line the pre-check must stop: one line naming the setting and what is
# allowed, exit 2, nothing created. Checked in-process (a second each would add minutes).
BAD_INPUTS = {
    "model.code_size=0": "model.code_size=0",
    "model.code_size=2.5": "model.code_size=2.5 is not allowed; expected an integer",
    "model.foo=1": "model.foo is not a setting; allowed model.* keys: family, architecture, hidden",
    "+model.foo=1": "model.foo is not a setting; allowed model.* keys: family",
    "model.nope=1": "model.nope is not a setting; allowed model.* keys: family",
    "foo=1": "foo is not a setting; allowed top-level keys: model, data, optim, trainer, logger, population",
    "+foo=1": "foo is not a setting; allowed: data, logger",
    "model.noise_level=-0.5": "model.noise_level=-0.5",
    "model.corruption=mask model.noise_level=1.5": "model.noise_level=1.5",
    "model=sparse model.sparsity=kl model.code_activation=sigmoid model.sparsity_target=1.2": "model.sparsity_target=1.2",
    "model=sparse model.sparsity=kl": "model.code_activation='relu'",
    "model=nonexistent": "Could not find 'model/nonexistent'",
    "experiment=nope": "Could not find 'experiment/nope'",
    "task=nope": "task='nope' is not allowed; expected one of train",
    "+population.grid.model.code_size=[2,4]": "population.grid key='model.code_size'",
    # Sparse autoencoders, their data, and the settings added with them.
    "model=sae model.sae=foo": "model.sae='foo' is not allowed; expected one of relu, topk, batchtopk, jumprelu, gated, "
                               "matryoshka",
    "model=sae_topk model.k=600": "model.k=600 is not allowed; expected an integer in [1, model.code_size=512]",
    "model=sae_relu model.sparsity_coefficient=-1": "model.sparsity_coefficient=-1.0 is not allowed; expected a number >= 0",
    "model=sae_matryoshka model.matryoshka_widths=[64,32,512]": "model.matryoshka_widths=[64, 32, 512] is not allowed; "
                                                                "expected strictly increasing widths ending at",
    "model=sae model.decoder_norm=half": "model.decoder_norm='half' is not allowed; expected one of auto, unit, free",
    "model=sae model.hidden=[64]": "model.hidden=[64] is not allowed; expected [] for model.family=sae",
    "data=synthetic_features data.firing_min=0": "data.firing_min=0.0 is not allowed; expected a probability in (0, 1]",
    "data=activations": "data.path=None is not allowed; expected a folder of .npy shards",
    "data=activations data.path=/x data.block_rows=0": "data.block_rows=0 is not allowed; expected an integer > 0",
    "optim.decay_steps=5": "optim.decay_steps=5 is not allowed; expected 0 unless optim.schedule=warmup_decay",
    "trainer.figure_members=some": "trainer.figure_members='some' is not allowed; expected one of auto, all",
    "metrics.preset=fast": "metrics.preset='fast' is not allowed; expected one of paper, quick",
    "+population.grid.model.noise_level=[0.1,-1]": "population.grid.model.noise_level=-1.0",
    "+population.grid.model.top_k=[5,10]": "model.sparsity='none' is not allowed; expected topk",
    "model=sparse model.sparsity=topk model.top_k=5 +population.grid.model.top_k=[5,2.5]":
        "population.grid.model.top_k=2.5 is not allowed; expected integers",
    "+population.grid.optim.learning_rate=[abc,0.01]": "population.grid.optim.learning_rate='abc' is not allowed",
    "+population.grid.model.beta=[0.5,2.0]": "population.grid.model.beta is not allowed; expected no grid over "
                                             "model.beta unless model.family=vae",
    # Booleans are true or false, nothing else.
    "model.tied_weights=no": "model.tied_weights='no' is not allowed; expected true or false",
    "trainer.resume=maybe": "trainer.resume='maybe' is not allowed; expected true or false",
    "data.download=yes": "data.download='yes' is not allowed; expected true or false",
    # Integers reject fractions and strings; numbers reject strings.
    "trainer.epochs=1.5": "trainer.epochs=1.5 is not allowed; expected an integer",
    "trainer.epochs=abc": "trainer.epochs='abc' is not allowed; expected an integer",
    "trainer.batch_size=0": "trainer.batch_size=0",
    "data.train_size=abc": "data.train_size='abc' is not allowed; expected an integer or null",
    "optim.clip_norm=abc": "optim.clip_norm='abc' is not allowed; expected a finite number or null",
    "optim.learning_rate=abc": "optim.learning_rate='abc' is not allowed; expected a finite number",
    "optim.learning_rate=-1": "optim.learning_rate=-1.0",
    "model.hidden=abc": "model.hidden='abc' is not allowed; expected a list",
    "model.hidden=5": "model.hidden=5 is not allowed; expected a list",
    "model.hidden=[256,abc]": "model.hidden=[256, 'abc'] is not allowed; expected a list of positive integers",
    "population.seeds=abc": "population.seeds='abc' is not allowed; expected an integer n > 0",
    "population.seeds=[0.5]": "population.seeds=[0.5] is not allowed; expected an integer n > 0",
    "population.seeds=0": "population.seeds=0 is not allowed",
    "population.seeds=-2": "population.seeds=-2 is not allowed",
    "population.seeds=[1,1]": "population.seeds=[1, 1] is not allowed",
    "population.seeds=4 population.shards=3": "population.shards=3 is not allowed; expected 1, or an integer in [2, 2]",
    "population.seeds=4 population.shards=2 population.shard=2": "population.shard=2 is not allowed",
    "population.shards=1.5": "population.shards=1.5 is not allowed; expected an integer",
    # Choices name every allowed value.
    "model.activation=foo": "model.activation='foo' is not allowed; expected one of relu, tanh",
    "trainer.on_divergence=maybe": "trainer.on_divergence='maybe' is not allowed; expected one of auto, mask, stop",
    "trainer.progress=maybe": "trainer.progress='maybe' is not allowed; expected one of auto, on, log, off",
    "trainer.eval_every=-1": "trainer.eval_every=-1 is not allowed; expected an integer >= 0",
    "trainer.figure_formats=[gif]": "trainer.figure_formats=['gif'] is not allowed; expected a non-empty list of png, pdf, svg",
    "trainer.figure_formats=png": "trainer.figure_formats='png' is not allowed; expected a list",
    "trainer.progress_interval_s=0": "trainer.progress_interval_s=0.0 is not allowed; expected seconds > 0",
    "logger.mode=foo": "logger.mode='foo' is not allowed; expected one of offline, online, disabled",
    "data.binarize=maybe": "data.binarize='maybe' is not allowed",
    "data.val_fraction=1.5": "data.val_fraction=1.5",
    "optim.name=lion": "optim.name='lion' is not allowed; expected one of adam",
    # Combinations that would do nothing, while summary.json would record them.
    "model=vae model.sparsity=topk model.top_k=4": "model.sparsity='topk' is not allowed; expected none unless model.family=autoencoder",
    "model=vae model.sparsity=l1": "model.sparsity='l1' is not allowed; expected none unless model.family=autoencoder",
    "model.top_k=4": "model.top_k=4 is not allowed; expected 0 unless model.sparsity=topk",
    "model.sparsity_weight=0.1": "model.sparsity_weight=0.1 is not allowed; expected 0 with model.sparsity=none",
    "model.beta=4": "model.beta=4.0 is not allowed; expected 1.0 unless model.family=vae",
    "model=vae model.tied_weights=true": "model.tied_weights=True is not allowed; expected false unless model.family=autoencoder",
    # The VAE objectives (aejax/families/vae.py, disentangling.py): weights that would train but mean nothing, and
    # settings of another objective.
    "model=factor_vae model.gamma=-1": "model.gamma=-1.0 is not allowed; expected a number >= 0",
    "model=annealed_vae model.c_max=-5": "model.c_max=-5.0 is not allowed; expected a number >= 0",
    "model=dip_vae_i model.lambda_od=-1": "model.lambda_od=-1.0 is not allowed; expected a number >= 0",
    "model=dip_vae_ii model.lambda_d_factor=-1": "model.lambda_d_factor=-1.0 is not allowed; expected null (10",
    "model=annealed_vae model.iteration_threshold=0": "model.iteration_threshold=0 is not allowed; expected an integer > 0",
    "model=annealed_vae model.iteration_threshold=1.5": "model.iteration_threshold=1.5 is not allowed; expected an integer",
    "model=factor_vae model.gamma=abc": "model.gamma='abc' is not allowed; expected a finite number",
    "model=factor_vae +population.grid.model.gamma=[10,-1]": "population.grid.model.gamma=-1.0 is not allowed",
    "model=vae model.objective=nope": "model.objective='nope' is not allowed; expected one of beta_vae, beta_tc_vae, "
                                      "factor_vae, dip_vae_i, dip_vae_ii, annealed_vae",
    "model.objective=factor_vae": "model.objective='factor_vae' is not allowed; expected beta_vae unless model.family=vae",
    "model=vae model.gamma=10": "model.gamma=10.0 is not allowed; expected 1.0 unless model.objective=factor_vae or annealed_vae",
    "model=factor_vae model.beta=4": "model.beta=4.0 is not allowed; expected 1.0 unless model.objective=beta_vae or beta_tc_vae",
    "model=dip_vae_i +population.grid.model.beta=[1,2]": "expected no grid over model.beta unless "
                                                         "model.objective=beta_vae or beta_tc_vae",
    "model=factor_vae +population.grid.model.lambda_od=[1,2]": "expected no grid over model.lambda_od unless "
                                                              "model.objective=dip_vae_i or dip_vae_ii",
    "model=vae model.c_max=5": "model.c_max=5.0 is not allowed; expected 0.0 unless model.objective=annealed_vae",
    "model=beta_tc_vae model.iteration_threshold=5": "model.iteration_threshold=5 is not allowed; expected 100000 unless",
    "model=vae model.lambda_d_factor=5": "model.lambda_d_factor=5.0 is not allowed; expected null unless model.objective=dip_vae_i",
    # The other numeric model settings.
    "model.init_scale=0": "model.init_scale=0.0 is not allowed; expected a number > 0",
    "model=sparse model.sparsity_weight=-1": "model.sparsity_weight=-1.0 is not allowed; expected a number >= 0",
    "model.contractive_weight=-1": "model.contractive_weight=-1.0 is not allowed; expected a number >= 0",
    "model=vae model.beta=-1": "model.beta=-1.0 is not allowed; expected a number >= 0",
    "model=sparse model.sparsity=topk model.sparsity_weight=0 model.top_k=1000":
        "model.top_k=1000 is not allowed; expected an integer in [1, model.code_size=512]",
    "model.channels=[]": "model.channels=[] is not allowed; expected a non-empty list of positive integers",
    "model.conv_impl=cudnn": "model.conv_impl='cudnn' is not allowed; expected one of auto, matmul, xla",
    "model.imports=[no_such_module_xyz]": "model.imports=['no_such_module_xyz'] is not allowed; expected importable modules",
    "model.imports=5": "model.imports=5 is not allowed; expected a list of module names",
    "model.reconstruction_loss=cross_entropy model.output_activation=linear":
        "model.output_activation='linear' is not allowed; expected sigmoid",
    "model=conv model.kernel_sizes=[0]": "model.kernel_sizes=[0] is not allowed; expected positive integers, one per conv",
    "model=conv model.strides=[2,2,2]": "model.strides=[2, 2, 2] is not allowed; expected positive integers, one per conv",
    "model=conv model.dense=[0]": "model.dense=[0] is not allowed; expected a list of positive integers",
    "model=conv model.decoder_kernel_sizes=[1]": "model.decoder_kernel_sizes=[1, 1] is not allowed; expected kernels at least",
    # NaN and infinities are refused for every number, where no check would see them (nan >= 0 is False,
    # but so is nan < 0).
    "model=vae model.beta=nan": "model.beta=nan is not allowed; expected a finite number",
    "optim.learning_rate=inf": "optim.learning_rate=inf is not allowed; expected a finite number",
    "model=vae +population.grid.model.beta=[1,-inf]": "population.grid.model.beta=-inf is not allowed",
    "model=vae +population.grid.model.beta=[]": "population.grid.model.beta=() is not allowed; expected a non-empty list",
    # The optimiser, trainer and logger numbers.
    "optim=sgd optim.momentum=1": "optim.momentum=1.0 is not allowed; expected a number in [0, 1)",
    "optim=adamw optim.weight_decay=-0.1": "optim.weight_decay=-0.1 is not allowed; expected a number >= 0",
    "optim.warmup_steps=100": "optim.warmup_steps=100 is not allowed; expected 0 unless optim.schedule=warmup_cosine",
    "optim.clip_norm=0": "optim.clip_norm=0.0 is not allowed; expected null or a number > 0",
    "trainer.log_every=0": "trainer.log_every=0 is not allowed; expected an integer > 0",
    "trainer.checkpoint_every=-1": "trainer.checkpoint_every=-1 is not allowed; expected an integer >= 0",
    "trainer.call_seconds=0": "trainer.call_seconds=0.0 is not allowed; expected seconds > 0",
    "trainer.shuffle=random": "trainer.shuffle='random' is not allowed; expected one of sort, feistel",
    "trainer.cpu_devices=0": "trainer.cpu_devices=0 is not allowed; expected null or an integer > 0",
    "logger.max_member_runs=0": "logger.max_member_runs=0 is not allowed; expected an integer >= 1",
    # Synthetic data.
    "data=synthetic data.dim=0": "data.dim=0 is not allowed; expected an integer > 0",
    "data=synthetic data.intrinsic_dim=65": "data.intrinsic_dim=65 is not allowed; expected an integer in [1, data.dim=64]",
    "data=synthetic data.num_samples=1": "data.num_samples=1 is not allowed; expected an integer > 1",
    "data=synthetic data.noise=-0.1": "data.noise=-0.1 is not allowed; expected a number >= 0",
    "data=synthetic data.generator=cosine_pairs data.similarity=1.5": "data.similarity=1.5 is not allowed; expected a cosine",
    "data=synthetic data.seed=-1": "data.seed=-1 is not allowed; expected an integer >= 0",
    # Your own data (aejax/data/arrays.py, images.py): the settings' own checks.
    "data=array data.path=x.npz data.test_fraction=1": "data.test_fraction=1.0 is not allowed; expected a number in (0, 1)",
    "data=array": "data.path=None is not allowed; expected a .npy or .npz file for data.name=array",
    "data=array data.path=x.txt": "data.path='x.txt' is not allowed; expected a .npy or .npz file",
    "data=images data.path=photos data.color=cmyk": "data.color='cmyk' is not allowed; expected one of grayscale, rgb",
    "data=images data.path=photos data.image_size=-3": "data.image_size=-3 is not allowed",
    "data=array data.path=x.npz data.image_shape=[0,4]": "data.image_shape=[0, 4] is not allowed",
    "data.loader=nocolon": "data.loader='nocolon' is not allowed; expected null or 'package.module:function'",
    "data.name=nope": "data.name='nope' is not allowed; expected one of",
    # Ground-truth data (aejax/data/dsprites.py, arrays.py): limits of the grid, settings that mean nothing.
    "data=dsprites data.train_size=737281": "data.train_size=737281 is not allowed; expected null (all 737280 images",
    "data=shapes_toy data.train_size=169": "data.train_size=169 is not allowed; expected null (all 168 images",
    "data=dsprites data.test_size=null": "data.test_size=None is not allowed; expected an integer in [1, 737280]",
    "data=dsprites data.test_size=800000": "data.test_size=800000 is not allowed",
    "data=shapes_toy data.test_size=0": "data.test_size=0 is not allowed",
    "data=dsprites data.val_fraction=-0.1": "data.val_fraction=-0.1 is not allowed",
    "data=dsprites data.binarize=dynamic": "data.binarize='dynamic' is not allowed; expected none for data.name=dsprites",
    "data=dsprites data.path=/nonexistent/dsprites.npz":
        "data.path='/nonexistent/dsprites.npz' is not allowed; expected the dSprites file",
    "data=shapes_toy +data.path=x.npz": "data.path='x.npz' is not allowed; expected null for data.name=shapes_toy",
    "data.factors_key=f": "data.factors_key='f' is not allowed; expected null for data.name=digits",
    "data=dsprites data.test_factors_key=f": "data.test_factors_key='f' is not allowed; expected null",
    "data=array data.path=x.npz data.factors_key=''": "data.factors_key='' is not allowed",
    # The disentanglement metrics (metrics.*, aejax/disentanglement.py).
    "metrics.disentanglement=maybe": "metrics.disentanglement='maybe' is not allowed; expected one of auto, true, false",
    "metrics.disentanglement=true": "metrics.disentanglement=True is not allowed with data.name=digits; expected auto or false",
    "metrics.mode=slow": "metrics.mode='slow' is not allowed; expected one of exact, fast",
    "metrics.seed=-1": "metrics.seed=-1 is not allowed; expected an integer >= 0",
    "metrics.workers=-1": "metrics.workers=-1 is not allowed; expected an integer >= 0",
    "metrics.seed=abc": "metrics.seed='abc' is not allowed; expected an integer",
    "metrics.sizes=5": "metrics.sizes=5 is not allowed; expected a mapping or null",
    "metrics.sizes={nope:5}": "metrics.sizes key='nope' is not allowed; expected one of batch_size, num_eval",
    "metrics.sizes={num_train:0}": "metrics.sizes.num_train=0 is not allowed; expected an integer > 0",
    "metrics.sizes={dci:{num_eval:5}}": "metrics.sizes key='dci.num_eval' is not allowed",
    "metrics.nope=1": "metrics.nope is not a setting; allowed metrics.* keys: disentanglement, preset, mode, seed, sizes",
    "experiment=disentanglement metrics.sizes={dci:{num_train:5}}":
        "metrics.sizes has no such key to set in this config; expected ++metrics.sizes=...",
    # Run directories Hydra could not create.
    "hydra.run.dir=/proc/x": "hydra.run.dir=/proc/x cannot be created",
    # Settings that would do nothing, or freeze what they set, in the generative families.
    "model=vqvae model.decay=0.5": "model.decay=0.5 is not allowed; expected 0.99 (its default) unless "
                                   "model.codebook_update=ema",
    "optim=sgd optim.eps=1e-4": "optim.eps=0.0001 is not allowed; expected 1e-08 (its default) unless optim.name=adam",
    "model=vamp model.pseudo_init_mean=-0.05": "model.pseudo_init_mean=-0.05 is not allowed; expected a number in (0, 1) "
                                               "when model.pseudo_clip=true",
    "model=vamp model.pseudo_init_std=0": "model.pseudo_init_std=0.0 is not allowed; expected a number > 0",
}


@pytest.mark.parametrize("args", BAD_INPUTS)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(args, tmp_path, capsys, monkeypatch):
    from aejax.cli import precheck

    monkeypatch.chdir(tmp_path)
    run_dir = [] if "hydra.run.dir" in args else [f"hydra.run.dir={tmp_path}/run"]
    with pytest.raises(SystemExit) as exit_:
        precheck([*args.split(), "logger=none", *run_dir])
    assert exit_.value.code == 2
    errors = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("aejax-train: error: "), errors
    assert BAD_INPUTS[args] in errors[0]
    assert list(tmp_path.iterdir()) == []


def test_a_run_dir_under_a_regular_file_is_one_line(tmp_path, capsys):
    from aejax.cli import precheck

    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit) as exit_:
        precheck(["logger=none", f"hydra.run.dir={tmp_path}/file/run"])
    assert exit_.value.code == 2
    (line,) = [l for l in capsys.readouterr().err.splitlines() if l.strip()]
    assert f"hydra.run.dir={tmp_path}/file/run cannot be created" in line


# Bad inputs found only when the run loads its data: same rules, through the console script.
TASK_BAD_INPUTS = {
    "trainer.batch_size=5000": "trainer.batch_size=5000",
    "experiment=sparse_codes data=synthetic": "data.name='synthetic' is not allowed with task=sparse_codes",
    # The studies' own settings (study.*), checked when the task starts, before it trains.
    "experiment=single_vector_similarity study.mnist_perturbation=-0.1":
        "study.mnist_perturbation=-0.1 is not allowed; expected a number >= 0",
    "task=mnist_vae model=vae +study.samples=100": "study.samples=100 is not allowed; expected a positive multiple of 250",
    "task=mnist_vae model=wae": "model.family='wae' is not allowed; expected vae or iwae or vamp for task=mnist_vae",
    "experiment=wae_mnist study.samples=100": "study.samples=100 is not allowed; expected an integer >= "
                                              "study.mmd_images=2000 and >= 40",
    "data=mnist data.root=/nonexistent/mnist data.download=false": "train-images-idx3-ubyte.gz is missing",
    # A setting of other datasets, which Hydra's struct config refuses before aejax sees it.
    "data=mnist data.path=/x": "data.path='/x' is not allowed; expected null for data.name=mnist, which does not read "
                               "it (data.root sets where MNIST's files are; data.path is for array: a .npy or .npz",
    # population.grid starts empty: its keys need a leading +.
    "population.grid.model.noise_level=[0,0.1]": "population.grid.model.noise_level=[0,0.1] is not allowed; expected "
                                                 "+population.grid.model.noise_level=[0,0.1] (the key is new",
    # A cap above what the data holds is refused, not silently lowered.
    "data.train_size=100000": "data.train_size=100000 is not allowed; expected at most the 1294 training examples of "
                              "data.name=digits (or null: all of them)",
}


@pytest.mark.parametrize("args", TASK_BAD_INPUTS)
def test_bad_input_is_one_line_and_writes_no_result(args, tmp_path):
    result = aejax_train([*args.split(), "logger=none", f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert result.returncode == 2
    errors = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(errors) == 1 and errors[0].startswith("aejax-train: error: "), result.stderr
    assert TASK_BAD_INPUTS[args] in errors[0]
    assert "Traceback" not in result.stderr + result.stdout
    # No run directory: an error found before the run started (in the settings, or while loading the
    # data) takes this attempt's lock and log with it.
    assert not (tmp_path / "run").exists()


SBATCH_UNREACHABLE = """#!/bin/sh
echo 'sbatch: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host' >&2
echo 'sbatch: fatal: Could not establish a configuration source' >&2
exit 1
"""


@pytest.mark.parametrize("sbatch, says", [
    (None, "SLURM: no cluster reachable (sbatch: command not found)"),
    (SBATCH_UNREACHABLE, "SLURM: no cluster reachable (sbatch: fatal: Could not establish a configuration source)"),
])
def test_a_slurm_sweep_without_a_reachable_cluster_is_one_line(sbatch, says, tmp_path):
    """`hydra/launcher=slurm` where sbatch is missing, or answers that no controller is reachable (a fake
    sbatch here, so the test does not depend on this machine's SLURM)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    if sbatch:
        for name, text in (("sbatch", sbatch), ("srun", "#!/bin/sh\nexit 0\n")):
            (bin_ / name).write_text(text)
            (bin_ / name).chmod(0o755)
    result = aejax_train(["-m", "hydra/launcher=slurm", "model.code_size=2,3", "logger=none",
                          f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path, env={"PATH": str(bin_)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr == f"aejax-train: error: {says}\n" and "Traceback" not in result.stdout


def aejax_train(args, cwd, env=None):
    exe = Path(sys.executable).parent / "aejax-train"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}, **(env or {})}
    return subprocess.run([str(exe), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env=env, stdin=subprocess.DEVNULL)


def test_corrupted_mnist_file_names_file_and_checksum(tmp_path, mnist_root):
    for f in mnist_root.glob("*.gz"):
        (tmp_path / f.name).write_bytes(f.read_bytes())
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-10])
    result = aejax_train(["data=mnist", f"data.root={tmp_path}", "logger=none", f"hydra.run.dir={tmp_path}/run"],
                         tmp_path)
    assert result.returncode == 2
    assert "t10k-labels-idx1-ubyte.gz is corrupted" in result.stderr
    assert "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6" in result.stderr
    assert not (tmp_path / "run" / "summary.json").exists()


def test_diverged_run_exits_3_and_keeps_checkpoint(tmp_path):
    result = aejax_train([*TINY, "optim=sgd", "optim.learning_rate=1e12", "model.output_activation=linear",
                          f"hydra.run.dir={tmp_path}/run"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "diverged" in result.stderr and "member 0" in result.stderr
    assert (tmp_path / "run" / "checkpoints" / "0").is_dir()
    assert not (tmp_path / "run" / "summary.json").exists()


def test_end_to_end_run_writes_every_output(tmp_path):
    result = aejax_train([*TINY, "model.code_size=2", "population.seeds=2", "trainer.checkpoint_every=1",
                          "logger=wandb", f"hydra.run.dir={tmp_path}/run"], tmp_path)  # no WANDB_* set: offline, no prompt
    assert result.returncode == 0, result.stderr
    run = tmp_path / "run"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["num_members"] == 2 and summary["varied"] == ["seed"]
    for member in summary["members"]:
        assert 0 < member["test"]["mse"] < 0.2
        assert member["test"]["sse_per_image"] == pytest.approx(64 * member["test"]["mse"], rel=1e-5)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    assert {l["member"] for l in lines} == {0, 1} and all("train/loss" in l for l in lines)
    per_epoch = json.loads((run / "status.json").read_text())["steps_per_epoch"]  # checkpoints are numbered by steps
    assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [per_epoch, 2 * per_epoch]
    assert {p.name for p in (run / "figures").iterdir()} == {
        "training_curves.png", "reconstructions.png", "latent_scatter.png"}
    assert (run / "config.yaml").exists()
    assert len(list(run.glob("wandb/offline-run-*/run-*.wandb"))) == 2


def test_wandb_never_prompts_even_on_a_terminal(tmp_path):
    """With a terminal, no API key and no WANDB_MODE, wandb would ask for a login; aejax must not."""
    command = " ".join([str(Path(sys.executable).parent / "aejax-train"), *TINY[:-2], "logger=wandb",
                        "trainer.progress=on", f"hydra.run.dir={tmp_path}/run"])
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["HOME"] = str(tmp_path)  # no ~/.netrc with a key
    result = subprocess.run(["script", "-qec", command, "/dev/null"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=300, env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stdout[-2000:]
    assert "step 8/8" in result.stdout  # the progress line, shown on a terminal
    assert (tmp_path / "run" / "summary.json").exists()
    assert list((tmp_path / "run").glob("wandb/offline-run-*"))


def test_multirun_jobs_share_a_wandb_group(tmp_path):
    from aejax.wandb_records import read_records

    result = aejax_train(["-m", *TINY[:-2], "logger=wandb", "model.code_size=2,3",
                          f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path)
    assert result.returncode == 0, result.stderr
    groups, names = [], []
    for path in sorted(tmp_path.glob("sweep/*/wandb/offline-run-*/run-*.wandb")):
        run = next(r.run for r in read_records(path) if r.WhichOneof("record_type") == "run")
        groups.append(run.run_group)
        names.append(run.display_name)
    assert len(groups) == 2 and groups[0] == groups[1] == "autoencoder-digits-sweep"
    assert sorted("code_size=2" in n for n in names) == [False, True]  # the jobs' runs are told apart
    assert sorted("code_size=3" in n for n in names) == [False, True]


def test_progress_is_logged_in_steady_lines_without_a_terminal(tmp_path):
    """A SLURM job's .out is not a terminal: progress comes as log lines (and into Hydra's log file).
    The run folder is named from what was chosen, and the devices are named when training starts."""
    args = [a for a in TINY if not a.startswith("trainer.progress")]
    result = aejax_train([*args, "model=sparse", "trainer.epochs=4", "trainer.checkpoint_every=1",
                          "trainer.progress_interval_s=0.001"], tmp_path)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "outputs" / "sparse-digits").iterdir()
    assert "training 1 member(s) on 1 cpu device(s)" in result.stdout
    lines = [l for l in (result.stdout + result.stderr).splitlines() if "[aejax.progress]" in l]
    assert [l.split("epoch ")[1].split()[0] for l in lines] == ["1/4", "2/4", "3/4", "4/4"], lines
    assert all("loss " in l and "samples/s" in l and "ETA " in l for l in lines)
    assert "\r" not in result.stderr  # no bar redraws in a file
    assert lines[-1].split("] - ")[1] in (run / "aejax-train.log").read_text()


def test_hydras_own_flags_work_through_the_console_script(tmp_path):
    """--help, --cfg/-c, --info, -sc, -cn/-cp/-cd behave as in any Hydra app; overrides are still pre-checked."""
    extra = tmp_path / "extra" / "model"
    extra.mkdir(parents=True)
    (extra / "tiny5.yaml").write_text("defaults:\n  - autoencoder\n  - _self_\ncode_size: 5\n")
    # One process per path through aejax's precheck and Hydra (each costs a process start: about 6 s in CI):
    # --cfg's other modes and --info's take the same path as the ones here.
    cases = {
        "--help": "== Configuration groups ==", "--cfg all": "hydra:", "--info": "Hydra 1.3",
        "-sc install=bash": "complete", f"-cn config -cp {REPO / 'conf'} -c job": "code_size: 32",
        f"-cd {tmp_path / 'extra'} model=tiny5 -c job": "code_size: 5", "--cfg job model.code_size=7": "code_size: 7",
    }  # --multirun: test_multirun_jobs_share_a_wandb_group
    for args, expected in cases.items():
        result = aejax_train(args.split(), tmp_path)
        assert result.returncode == 0 and expected in result.stdout, (args, result.stderr[-500:])
        assert not list(tmp_path.glob("outputs")), args  # printing runs nothing
    bad = aejax_train(["--cfg", "job", "model.nope=1"], tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1


def test_help_lists_every_setting_of_the_chosen_family_with_its_meaning_and_values(tmp_path):
    """`aejax-train model=vae model.objective=factor_vae --help`: Hydra's help, whose settings part is one line a
    declared setting (the network's, the VAE's, FactorVAE's; every other section's) with its meaning and values."""
    from aejax.config import SPECS, ModelSpec
    from aejax.families import FAMILIES
    from aejax.settings import declared

    result = aejax_train(["model=vae", "model.objective=factor_vae", "--help"], tmp_path)
    assert result.returncode == 0 and "== Configuration groups ==" in result.stdout, result.stderr[-500:]
    settings = result.stdout.split("== Settings ==")[1]
    vae = FAMILIES["vae"]
    expected = {"model": [ModelSpec, vae.settings, vae.objectives["factor_vae"].settings],
                **{section: [cls] for section, cls in SPECS.items() if section != "model"}}
    for section, classes in expected.items():
        names = list(dict.fromkeys(f.name for cls in classes for f in declared(cls)))
        shown = [line.split()[0] for line in settings.splitlines() if line.startswith(f"  {section}.")]
        assert shown == [f"{section}.{name}" for name in names], section
    line = {l.split()[0]: l for l in settings.splitlines() if l.startswith("  ")}
    assert "the decoder's distribution p(x|z)" in line["model.likelihood"]
    assert "[one of bernoulli, gaussian]" in line["model.likelihood"]
    assert "model.gamma = " in line["model.gamma"] and "model.beta" not in line  # FactorVAE's, not beta-VAE's
    assert "[one of paper, quick]" in line["metrics.preset"]
    assert "$WANDB_MODE" in line["logger.mode"]  # Hydra's template would have refused a lone $
    assert not list(tmp_path.glob("outputs"))


def test_a_dry_run_lists_and_checks_every_job_and_submits_nothing(tmp_path):
    result = aejax_train(["-m", "--dry-run", "hydra/launcher=slurm", "model.code_size=2,0", "model.nope=1,2",
                          f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 5 and lines[0].startswith("job 0: model.code_size=2 model.nope=1  [error: model.nope is not")
    assert "[error: model.code_size=0 is not allowed" in lines[2] or "model.nope" in lines[2]
    assert lines[-1] == "4 job(s) for launcher slurm; 4 with a bad setting; nothing was submitted"
    good = aejax_train(["-m", "--dry-run", "model.code_size=2,3", f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path)
    assert good.returncode == 0 and good.stdout.splitlines()[-1].startswith("2 job(s) for launcher basic; 0 with")
    assert "[ok]" in good.stdout and not (tmp_path / "sweep").exists()
