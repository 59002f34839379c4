"""Usage errors of every entry point, run as a user runs them: exit status 2, one `error:` line
naming the setting or file, no traceback, and nothing written (issue 29)."""

import pytest

from conftest import tiny_model_config
from entry_points import TINY, run, train_refused

ENTRY_POINTS = [
    "rarl_tf.train",
    "rarl_tf.evaluate",
    "rarl_tf.predict",
    "export.tflite",
    "export.saved_model",
    "tools.paired",
    "tools.export_accuracy",
    "tools.benchmark",
    "tools.ablate",
    "tools.policy_report",
]


def one_error(result) -> str:
    """The single `error:` line of a refused command (exit 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "FATAL" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_unknown_flags_and_missing_flagfiles_exit_2_like_other_usage_errors(module, tmp_path):
    unknown = run(module, "--no_such_flag=1", data_dir=tmp_path)
    assert "Unknown command line flag 'no_such_flag'" in one_error(unknown)
    missing = run(module, f"--flagfile={tmp_path / 'nope.flags'}", data_dir=tmp_path)
    assert (
        f"Unable to open flagfile: [Errno 2] No such file or directory: '{tmp_path}/nope.flags'"
        in (one_error(missing))
    )
    malformed = run(module, "--flagfile", data_dir=tmp_path)
    assert one_error(malformed)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--eval_batch_size=0", "--eval_batch_size=0 is not allowed"),
        ("--eval_batch_size=-3", "--eval_batch_size=-3 is not allowed"),
        ("--image_size=3", "--image_size=3 is not allowed: expected training crops"),
        ("--crop_margin=39", "--image_size=40 is not allowed: expected training crops"),
        ("--backbone_widths=8,0", "--backbone_widths=[8, 0] is not allowed"),
        ("--embed_dim=0", "--embed_dim=0 is not allowed"),
        ("--lstm_units=-1", "--lstm_units=-1 is not allowed"),
        ("--beta_1=1", "--beta_1=1.0 is not allowed"),
        ("--beta_2=-0.5", "--beta_2=-0.5 is not allowed"),
        ("--warmup_epochs=-1", "--warmup_epochs=-1.0 is not allowed"),
        ("--seed=-1", "--seed=-1 is not allowed"),
    ],
)
def test_train_checks_every_number_before_any_work(tmp_path, flag, says):
    # --eval_batch_size=0 used to train every step, write the weights, then fail at the
    # evaluation; --image_size=3 --crop_margin=2 failed in MaxPooling2D after config.json was
    # written: a rerun with a valid value was then refused as another configuration.
    extra = ["--crop_margin=2"] if flag == "--image_size=3" else []
    stderr = train_refused(tmp_path, *TINY, flag, *extra)
    assert says in stderr and stderr.count("error:") == 1, stderr


def test_the_smallest_image_the_backbone_pools_is_allowed(tmp_path):
    # The bound is the backbone's stride, not more: small_vgg of two blocks pools once (2 px).
    from rarl_tf.config.experiment import ExperimentConfig, ModelConfig, backbone_stride

    model = tiny_model_config(image_size=10, anchor_sizes=(4.0,), aspect_ratios=(1.0,))
    assert backbone_stride(model) == 2
    ExperimentConfig(model=model).validate()
    assert backbone_stride(ModelConfig()) == 16


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--eval_batch_size=0", "--eval_batch_size=0 is not allowed"),
        ("--top_k=0", "--top_k=0 is not allowed"),
        ("--threshold=1.5", "--threshold=1.5 is not allowed"),
    ],
)
def test_evaluate_checks_its_settings_before_loading_the_model(tmp_path, flag, says):
    # The folder does not exist: the setting is named first, before any model is read.
    result = run("rarl_tf.evaluate", f"--model_dir={tmp_path / 'missing'}", flag, data_dir=tmp_path)
    assert says in one_error(result)


def test_predict_output_dir_that_is_a_file_is_one_line(tiny_model_dir, tmp_path):
    image = tmp_path / "image.png"
    image.write_bytes(b"")
    taken = tmp_path / "taken"
    taken.write_text("a file")
    for output_dir, says in [
        (taken, f"--output_dir={taken} is a file, not a folder"),
        (taken / "sub", f"--output_dir={taken / 'sub'} cannot be made: {taken} is not a folder"),
    ]:
        result = run(
            "rarl_tf.predict",
            f"--model_dir={tiny_model_dir}",
            f"--output_dir={output_dir}",
            image,
            data_dir=tmp_path,
        )
        assert says in one_error(result)
        assert result.stdout == ""
    assert taken.read_text() == "a file"


@pytest.mark.parametrize(
    "flag, says",
    [
        ("--top_k=0", "--top_k=0 is not allowed"),
        ("--threshold=-0.1", "--threshold=-0.1 is not allowed"),
        ("--max_pixels=0", "--max_pixels=0 is not allowed"),
    ],
)
def test_predict_checks_its_numbers_before_loading(tmp_path, flag, says):
    result = run(
        "rarl_tf.predict",
        f"--model_dir={tmp_path / 'missing'}",
        f"--output_dir={tmp_path / 'out'}",
        flag,
        tmp_path / "x.png",
        data_dir=tmp_path,
    )
    assert says in one_error(result)
    assert not (tmp_path / "out").exists()


def test_every_output_path_that_cannot_be_written_is_one_line(tiny_model_dir, tmp_path):
    # Each of these ended in a traceback (IsADirectoryError after evaluate's scoring,
    # FileExistsError from os.makedirs); now each stops before the work.
    folder, taken = tmp_path / "folder", tmp_path / "taken"
    folder.mkdir()
    taken.write_text("a file")
    model = f"--model_dir={tiny_model_dir}"
    cases = [
        ("rarl_tf.evaluate", f"--output={folder}", f"--output={folder} is a folder, not a file"),
        (
            "export.tflite",
            f"--output={taken / 'm.tflite'}",
            f"--output={taken / 'm.tflite'}'s folder {taken} is a file, not a folder",
        ),
        ("export.saved_model", f"--export_base={taken}", f"--export_base={taken} is a file"),
        (
            "export.saved_model",
            f"--export_base={taken / 'x'}",
            f"--export_base={taken / 'x'} cannot be made: {taken} is not a folder",
        ),
        ("export.saved_model", "--top_k=0", "--top_k=0 is not allowed"),
    ]
    for module, flag, says in cases:
        args = [model, flag] + ([f"--export_base={tmp_path / 'sm'}"] if "top_k" in flag else [])
        assert says in one_error(run(module, *args, data_dir=tmp_path)), (module, flag)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder", "taken"]
    assert taken.read_text() == "a file" and not any(folder.iterdir())


@pytest.mark.slow  # evaluate loads TensorFlow and the model (~17 s on a loaded machine)
def test_weights_of_another_model_name_both_files(tiny_model_dir, tmp_path):
    import json
    import shutil

    model_dir = tmp_path / "run"
    shutil.copytree(tiny_model_dir, model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    config["model"]["agent"]["lstm_units"] += 8
    (model_dir / "config.json").write_text(json.dumps(config))
    result = run("rarl_tf.evaluate", f"--model_dir={model_dir}", data_dir=tmp_path)
    error = one_error(result)
    assert f"{model_dir / 'model.weights.h5'} does not hold the weights of the model" in error
    assert f"{model_dir / 'config.json'} describes" in error
