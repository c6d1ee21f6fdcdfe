"""A sweep directory holds runs of one config: refusals name the keys that differ; --new_sweep puts it beside."""

import dataclasses
import json

import pytest

from helmjax import config as config_lib
from helmjax.errors import UserError
from helmjax.sweeps import identity


def _config(*overrides):
    return config_lib.apply_overrides(config_lib.load_experiment("demo_q_sweep"), list(overrides))


def _write_sweep(sweep_dir, config):
    sweep_dir.mkdir(parents=True)
    (sweep_dir / "sweep.json").write_text(json.dumps(dict(config.to_dict(), **identity.record(config))))


def test_the_digest_follows_what_shapes_a_result_and_nothing_else():
    base = identity.config_digest(_config())
    for shaping in ("train.lr=0.5", "data.photons=100.0", "quantizer.subsampling=4:4:4", "model.width=0.5",
                    "train.epochs=2"):
        assert identity.config_digest(_config(shaping)) != base, shaping
    for speed_or_grid in ("train.stack=4", "train.micro_batches=2", "train.eval_batch_size=500",
                          "grid.level=raw,10", "grid.seed=[0,1]", "analysis.margin=2.0", "tolerance=0.1"):
        assert identity.config_digest(_config(speed_or_grid)) == base, speed_or_grid
    assert identity.config_digest(_config("train.lr=0.002")) == base  # the same value spelled as an override


def test_a_rerun_with_another_config_is_refused_naming_the_keys(tmp_path):
    old = _config("grid.level=raw,50", "train.epochs=1")
    _write_sweep(tmp_path / "demo_q_sweep", old)
    assert identity.resolve_sweep_dir(tmp_path, _config("grid.level=raw,50,10", "train.epochs=1")) == \
        tmp_path / "demo_q_sweep"  # more levels of the same config: the same sweep
    new = _config("grid.level=raw,50,10", "train.epochs=1", "train.lr=0.5")
    with pytest.raises(UserError) as info:
        identity.resolve_sweep_dir(tmp_path, new)
    message = str(info.value)
    assert "train.lr: 0.002 -> 0.5" in message and "--new_sweep" in message and "\n" not in message
    assert "epochs" not in message and "grid" not in message
    with pytest.raises(UserError, match="no sweep of this config to analyse: .*train.lr: 0.002 -> 0.5"):
        identity.find_sweep_dir(tmp_path, new)


def test_new_sweep_goes_beside_and_is_found_again_without_the_flag(tmp_path):
    _write_sweep(tmp_path / "demo_q_sweep", _config("train.epochs=1"))
    new = _config("train.epochs=1", "train.lr=0.5")
    own = identity.resolve_sweep_dir(tmp_path, new, new_sweep=True)
    assert own == tmp_path / f"demo_q_sweep-{identity.config_digest(new)}"
    _write_sweep(own, new)
    assert identity.resolve_sweep_dir(tmp_path, new) == own  # the same command again resumes it
    assert identity.find_sweep_dir(tmp_path, new) == own
    assert identity.find_sweep_dir(tmp_path, _config("train.epochs=1")) == tmp_path / "demo_q_sweep"


def test_sweeps_written_before_the_digest_are_read_from_their_config(tmp_path):
    old = _config("train.epochs=1")
    (tmp_path / "demo_q_sweep").mkdir()
    (tmp_path / "demo_q_sweep" / "sweep.json").write_text(json.dumps(old.to_dict()))  # no digest in it
    assert identity.resolve_sweep_dir(tmp_path, old) == tmp_path / "demo_q_sweep"
    with pytest.raises(UserError, match="train.epochs: 1 -> 2"):
        identity.resolve_sweep_dir(tmp_path, _config("train.epochs=2"))


@pytest.mark.slow
def test_run_py_refuses_a_changed_config_and_new_sweep_puts_it_beside(tmp_path):
    import subprocess
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    small = ["--set", "data.n_train=240", "--set", "data.n_test=120", "--set", "grid.level=raw,20", "--set",
             "grid.reference_seed=[]", "--set", "train.epochs=1", "--set", "train.max_steps_per_epoch=2",
             f"--workdir={tmp_path}", "--noprogress"]
    run = lambda *extra: subprocess.run([sys.executable, "run.py", *small, *extra], cwd=root, capture_output=True,
                                        text=True, timeout=600)
    assert run().returncode == 0
    refused = run("--set", "train.lr=0.5")
    assert refused.returncode == 2 and "train.lr: 0.002 -> 0.5" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not list(tmp_path.glob("demo_q_sweep-*"))
    beside = run("--set", "train.lr=0.5", "--new_sweep")
    assert beside.returncode == 0, beside.stderr[-2000:]
    new_dir = tmp_path / f"demo_q_sweep-{identity.config_digest(_config(*small[1::2][:6], 'train.lr=0.5'))}"
    assert (new_dir / "results.jsonl").is_file()
    assert all(json.loads(line)["run"] for line in (new_dir / "results.jsonl").read_text().splitlines())
    analyzed = run("--set", "train.lr=0.5", "--analyze")  # finds the sweep of exactly this config
    assert analyzed.returncode == 0 and f"report: {new_dir}" in analyzed.stdout


def test_a_changed_version_of_a_quantizer_an_axis_brings_in_is_refused(tmp_path, monkeypatch):
    """The learned setting of learned_jpeg_demo had runs of the old tables; a rerun after the quantizer changed
    must not skip them as finished (and then leave them out as foreign): it is refused like any other change."""
    from helmjax.quantizers import registry
    config = config_lib.load_experiment("learned_jpeg_demo")
    _write_sweep(tmp_path / "learned_jpeg_demo", config)
    assert identity.resolve_sweep_dir(tmp_path, config) == tmp_path / "learned_jpeg_demo"
    spec = registry.get("learned_jpeg")
    monkeypatch.setitem(registry._REGISTRY, "learned_jpeg", dataclasses.replace(spec, version="changed"))
    with pytest.raises(UserError, match="quantizer.versions.learned_jpeg: .* -> \"changed\".*--new_sweep"):
        identity.resolve_sweep_dir(tmp_path, config)
    # a sweep recorded before these keys were kept still resumes
    before = identity.shaping(config)
    before = {k: v for k, v in before.items() if not k.startswith("quantizer.versions.")}
    (tmp_path / "learned_jpeg_demo" / "sweep.json").write_text(json.dumps(dict(shaping=before)))
    assert identity.resolve_sweep_dir(tmp_path, config) == tmp_path / "learned_jpeg_demo"
