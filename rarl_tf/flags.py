"""Command-line flags shared by the entry points, and their translation into a frozen config.

Only entry points (train.py, evaluate.py, predict.py, tools/) import this module; library code
takes the `ExperimentConfig` it builds.
"""

from __future__ import annotations

from absl import flags

from rarl_tf.config import DataConfig, EvalConfig, ExperimentConfig, ModelConfig, TrainConfig

FLAGS = flags.FLAGS
_M, _D, _T, _E = ModelConfig(), DataConfig(), TrainConfig(), EvalConfig()


def define_model_dir_flag(required: bool = True) -> None:
    flags.DEFINE_string("model_dir", None, "Directory of checkpoints, logs and results.",
                        required=required)


def define_experiment_flags() -> None:
    """Flags of everything in `ExperimentConfig`; defaults are the paper's VOC 512 recipe."""
    # Data.
    flags.DEFINE_string("dataset", _D.dataset, "Data source name (see rarl_tf/data/sources.py).")
    flags.DEFINE_string("data_dir", _D.data_dir, "tensorflow-datasets data_dir, or the folder of "
                        "a VOC-layout dataset.")
    flags.DEFINE_bool("download", _D.download, "Let tensorflow-datasets download and prepare "
                      "voc2007 / coco2014 into --data_dir if they are not there.")
    flags.DEFINE_integer("shuffle_buffer", _D.shuffle_buffer, "Shuffle buffer, in images.")
    flags.DEFINE_integer("max_pixels", _D.max_pixels, "Skip (and count) images whose header "
                         "declares more pixels than this, before decoding them.")
    # Model.
    flags.DEFINE_string("backbone", _M.backbone, "vgg16 (conv5_3) or small_vgg.")
    flags.DEFINE_string("backbone_weights", _M.backbone_weights,
                        "imagenet, none, or a path to a .weights.h5 file.")
    flags.DEFINE_list("backbone_widths", [str(w) for w in _M.backbone_widths],
                      "Channel widths of small_vgg's blocks.")
    flags.DEFINE_integer("image_size", _M.image_size, "N: images are resized to N x N pixels.")
    flags.DEFINE_integer("crop_margin", _M.crop_margin,
                         "m: training crops and evaluation views are (N - m) pixels wide.")
    flags.DEFINE_list("anchor_sizes", [f"{s:g}" for s in _M.anchor_sizes],
                      "Square roots of the anchor areas, in pixels.")
    flags.DEFINE_list("aspect_ratios", [f"{r:g}" for r in _M.aspect_ratios],
                      "Anchor width / height ratios.")
    flags.DEFINE_integer("crop_size", _M.crop_size, "s: regions are resampled to s x s cells.")
    flags.DEFINE_enum("region_pool", _M.region_pool, ["flatten", "max"],
                      "flatten: dense layer over the s x s grid (paper); max: max over the grid "
                      "first.")
    flags.DEFINE_integer("embed_dim", _M.embed_dim, "Width of the region embedding.")
    flags.DEFINE_integer("lstm_units", _M.lstm_units, "Width of the LSTM state.")
    flags.DEFINE_integer("num_steps", _M.num_steps, "T: attention iterations.")
    flags.DEFINE_string("architecture", _M.architecture,
                        "rarl, or global (backbone + global pooling + dense: the baseline).")
    flags.DEFINE_string("locations", _M.locations,
                        "policy (learned), or random (uniform centres: the paper's Table 3).")
    flags.DEFINE_string("recurrence", _M.recurrence,
                        "lstm (paper), localisation_only (an independent region classifier), "
                        "or none (no LSTM): the paper's Table 4.")
    flags.DEFINE_float("loc_std", _M.loc_std, "sigma of the location policy ([-1, 1] frame).")
    define_policy_flags()
    # Training.
    flags.DEFINE_integer("batch_size", _T.batch_size, "Global batch size.")
    flags.DEFINE_integer("epochs", _T.epochs, "Training epochs.")
    flags.DEFINE_float("learning_rate", _T.learning_rate, "Adam learning rate (peak).")
    flags.DEFINE_enum("lr_schedule", _T.lr_schedule, ["constant", "cosine"],
                      "Learning-rate schedule.")
    flags.DEFINE_float("warmup_epochs", _T.warmup_epochs, "Linear warm-up, in epochs.")
    flags.DEFINE_float("beta_1", _T.beta_1, "Adam beta_1.")
    flags.DEFINE_float("beta_2", _T.beta_2, "Adam beta_2.")
    flags.DEFINE_integer("steps_per_epoch", _T.steps_per_epoch,
                         "Steps per epoch; default one pass over the training split.")
    flags.DEFINE_integer("checkpoint_every_steps", _T.checkpoint_every_steps,
                         "Save a resumable checkpoint every this many steps.")
    flags.DEFINE_integer("seed", _T.seed, "Seed of data order, augmentation, init and sampling.")
    flags.DEFINE_bool("jit_compile", _T.jit_compile, "Compile the training step with XLA (the "
                      "crop becomes the matmul crop; see README, \"Speed\").")
    # Evaluation.
    define_eval_flags()


def define_policy_flags() -> None:
    """The location policy's flags (README, "The location policy"); defaults: the paper."""
    flags.DEFINE_float("discount", _M.discount, "gamma, the reward discount.")
    flags.DEFINE_string("reward", _M.reward, "top_n (the paper's eq. 5) or log_likelihood "
                        "(of the true labels; does not saturate).")
    flags.DEFINE_string("step_reward", _M.step_reward, "final (the paper: the reward at T "
                        "only) or improvement (step t earns what it added to the reward).")
    flags.DEFINE_integer("trajectories", _M.trajectories, "K location trajectories per training "
                         "image (one backbone pass); K > 1 uses a leave-one-out baseline.")
    flags.DEFINE_bool("location_input", _M.location_input,
                      "Feed l_t into the LSTM with every region.")
    flags.DEFINE_integer("loc_hidden", _M.loc_hidden,
                         "Hidden ReLU units in the location head (0: one layer, the paper).")
    flags.DEFINE_string("loc_head", _M.loc_head, "dense (the paper's f_loc(h_t)) or spatial "
                        "(cells of a G x G grid of the view score themselves; the mean is their "
                        "weighted position).")
    flags.DEFINE_integer("loc_grid", _M.loc_grid, "G: side of the spatial head's grid.")
    flags.DEFINE_float("inhibition_radius", _M.inhibition_radius, "rho ([-1, 1] view frame) of "
                       "the spatial head's inhibition of return; 0: none.")
    flags.DEFINE_bool("context_grid", _M.context_grid, "Embed the whole view of iteration 0 "
                      "from its flattened s x s grid (keeps where things are).")


def define_eval_flags() -> None:
    flags.DEFINE_integer("views", _E.views, "Evaluation views: 1 (whole image) or 10.")
    flags.DEFINE_integer("eval_batch_size", _E.batch_size, "Evaluation batch size.")
    flags.DEFINE_integer("top_k", _E.top_k, "Labels per image for CP/CR/CF1/OP/OR/OF1.")
    flags.DEFINE_float("threshold", _E.threshold, "Drop top-k labels scoring below this.")
    flags.DEFINE_bool("voc07_ap", _E.voc07_ap, "11-point AP of the VOC2007 devkit.")


def _numbers(name: str, values, kind=float) -> tuple:
    try:
        return tuple(kind(v) for v in values)
    except ValueError:
        raise ValueError(f"--{name}={','.join(values)}: expected a comma-separated list of "
                         f"{kind.__name__} values") from None


def eval_config_from_flags() -> EvalConfig:
    return EvalConfig(views=FLAGS.views, batch_size=FLAGS.eval_batch_size, top_k=FLAGS.top_k,
                      threshold=FLAGS.threshold, voc07_ap=FLAGS.voc07_ap)


def experiment_config_from_flags() -> ExperimentConfig:
    """The frozen config the flags describe (validated; ValueError names the bad flag)."""
    model = ModelConfig(
        backbone=FLAGS.backbone, backbone_weights=FLAGS.backbone_weights,
        backbone_widths=_numbers("backbone_widths", FLAGS.backbone_widths, int),
        image_size=FLAGS.image_size, crop_margin=FLAGS.crop_margin,
        anchor_sizes=_numbers("anchor_sizes", FLAGS.anchor_sizes),
        aspect_ratios=_numbers("aspect_ratios", FLAGS.aspect_ratios),
        crop_size=FLAGS.crop_size, region_pool=FLAGS.region_pool, embed_dim=FLAGS.embed_dim,
        lstm_units=FLAGS.lstm_units,
        num_steps=FLAGS.num_steps, loc_std=FLAGS.loc_std, discount=FLAGS.discount,
        reward=FLAGS.reward, step_reward=FLAGS.step_reward, trajectories=FLAGS.trajectories,
        location_input=FLAGS.location_input, loc_hidden=FLAGS.loc_hidden,
        context_grid=FLAGS.context_grid, loc_head=FLAGS.loc_head, loc_grid=FLAGS.loc_grid,
        inhibition_radius=FLAGS.inhibition_radius,
        architecture=FLAGS.architecture, locations=FLAGS.locations,
        recurrence=FLAGS.recurrence)
    data = DataConfig(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                      download=FLAGS.download, shuffle_buffer=FLAGS.shuffle_buffer,
                      max_pixels=FLAGS.max_pixels)
    train = TrainConfig(batch_size=FLAGS.batch_size, epochs=FLAGS.epochs,
                        learning_rate=FLAGS.learning_rate, lr_schedule=FLAGS.lr_schedule,
                        warmup_epochs=FLAGS.warmup_epochs, beta_1=FLAGS.beta_1,
                        beta_2=FLAGS.beta_2, steps_per_epoch=FLAGS.steps_per_epoch,
                        checkpoint_every_steps=FLAGS.checkpoint_every_steps, seed=FLAGS.seed,
                        jit_compile=FLAGS.jit_compile)
    config = ExperimentConfig(model=model, data=data, train=train, eval=eval_config_from_flags())
    config.validate()
    return config
