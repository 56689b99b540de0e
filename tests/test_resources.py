"""Where the shipped files are found (resources folder, default model pointer)."""

from __future__ import annotations

from pathlib import Path

from vaereg_core.resources import default_model_path, default_sample_path, resources_dir


def test_environment_variable_moves_the_resources(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEREG_RESOURCES", str(tmp_path))
    assert resources_dir() == tmp_path
    assert default_sample_path() == tmp_path / "samples" / "default.vti"


def test_default_model_is_named_by_the_pointer_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEREG_RESOURCES", str(tmp_path))
    assert default_model_path() == tmp_path / "models" / "default.pt"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "DEFAULT").write_text("c11-two-morphology-gm.pt\n")
    assert default_model_path() == tmp_path / "models" / "c11-two-morphology-gm.pt"
    (tmp_path / "models" / "DEFAULT").write_text("../elsewhere.pt")  # only names inside the folder count
    assert default_model_path() == tmp_path / "models" / "default.pt"


def test_source_tree_resources_hold_the_samples():
    assert (resources_dir() / "samples" / "default.vti").is_file()


def test_every_shipped_training_configuration_loads():
    """The configurations the model card's commands name are valid (a typo in a key fails here, not after an hour of data loading)."""
    from vaereg_core.model.config import load_config

    configs = sorted((resources_dir() / "configs").glob("*.json"))
    assert len(configs) >= 8
    stages = {load_config(path).train.stage for path in configs}
    assert stages == {"joint", "decoder", "generative"}


def test_the_default_model_comes_with_its_forward_ensemble():
    from vaereg_core.model.inference import load_model

    model = load_model(default_model_path(), "cpu")
    assert model.forward is not None, model.forward_note
    assert model.describe_forward().startswith("ensemble of 4") and model.symmetries == "cyclic" and len(model.forward.heads) == 1
    fitted = model.forward.fitted
    assert fitted["split"] == "val" and set(fitted["test_MAPE"]) == set(model.property_names)
    # Its feature head also learnt from the fresh structures shipped beside the dataset (another seed of the recipe).
    assert [Path(p).name for p in fitted["feature_head_also_on"]] == ["elastic-seed31337.h5"]
    assert min(fitted["feature_head_also_on"].values()) > 1920


def shipped_generative_models() -> list:
    from vaereg_core.model.inference import load_model

    pairs = [(path, load_model(path, "cpu", ensemble=False)) for path in sorted((resources_dir() / "models").glob("*.pt"))]
    return [(path, model) for path, model in pairs if model.is_generative]


def test_every_shipped_generative_model_has_its_latent_map():
    """The explorer is ready at first launch: each map is bound to its model's weights and holds its training structures."""
    import numpy as np
    from vaereg_core.dataset import MicrostructureDataset
    from vaereg_core.inverse.latent_map import (
        MAP_STRUCTURES,
        LatentMap,
        map_path,
        map_rows,
    )
    from vaereg_core.resources import default_dataset_path

    found = shipped_generative_models()
    assert {path.name for path, _ in found} >= {"elastic-6-gm.pt", "c11-two-morphology-gm.pt"}
    for path, model in found:
        stored = LatentMap.load(map_path(path))
        assert stored.model_checksum == model.file.checksum, f"{map_path(path).name} was made by other weights"
        assert stored.latents.shape[1] == model.latent_dim and stored.property_names == tuple(model.property_names)
        assert map_path(path).stat().st_size < 2e6  # small enough for git
        train = model.file.config.train
        data = MicrostructureDataset(default_dataset_path(), split="train", properties=model.property_names, subset=train.subset, split_seed=train.split_seed)
        rows = map_rows(len(data), MAP_STRUCTURES)
        assert len(stored.latents) == rows.size
        np.testing.assert_allclose(stored.properties, data.properties.numpy()[rows], rtol=1e-6)
        for i in (0, rows.size - 1):  # the latents are these weights' encodings of those structures
            np.testing.assert_allclose(stored.latents[i], model.encode(data.voxels(int(rows[i])))[0], rtol=1e-3, atol=1e-3)


def test_the_shipped_samples_are_read_in_process_and_other_files_in_a_child(tmp_path, monkeypatch):
    """The start-up sample skips the sandbox's 0.7 s child process; the same file elsewhere does not."""
    import shutil
    from pathlib import Path

    import numpy as np
    from vaereg_core import voxel_io
    from vaereg_core.resources import is_shipped_sample

    children: list[Path] = []
    real = voxel_io.run_reader
    monkeypatch.setattr(voxel_io, "run_reader", lambda path, *args: children.append(path) or real(path, *args))
    shipped = voxel_io.read_voxels(default_sample_path())
    assert children == []
    copy = Path(shutil.copy(default_sample_path(), tmp_path / "default.vti"))
    np.testing.assert_array_equal(voxel_io.read_voxels(copy), shipped)
    assert children == [copy]
    assert not is_shipped_sample(resources_dir() / "samples" / ".." / "models" / "DEFAULT")


def test_vaereg_latent_map_stores_a_map_bound_to_the_model(tmp_path):
    import subprocess
    import sys

    from inverse_helpers import save_tiny_model
    from model_helpers import write_synthetic_dataset
    from vaereg_core.inverse.latent_map import LatentMap, map_path
    from vaereg_core.model.checkpoint import load_model_file

    model = save_tiny_model(tmp_path / "tiny.pt")
    data = write_synthetic_dataset(tmp_path / "synthetic.h5")
    r = subprocess.run([sys.executable, "-m", "vaereg_core.cli", "latent-map", "--model", str(model), "--data", str(data), "--structures", "10"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    stored = LatentMap.load(map_path(model))
    assert len(stored.latents) == 10 and stored.model_checksum == load_model_file(model).checksum != ""
    assert f"{map_path(model)}: 10 structures" in r.stdout
