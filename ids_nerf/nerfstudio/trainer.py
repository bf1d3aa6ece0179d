"""The ids-edit trainer: nerfstudio's Trainer, starting from a source model and stepping the edit.

What it changes, and why:
- ``--load-dir`` of a source run loads only the model's weights: optimizers, schedulers and the
  step counter start fresh, so the progress bar and ``max-num-iterations`` count edit steps.
  ``--load-dir`` of an ids-edit run resumes it (optimizers, step and source latents included).
- ``--edit-optimizer sgd`` replaces every group's Adam with plain SGD (``optimizers.py``).
- The training step does its own backward pass (deferred backpropagation, see ``rendering.py``).
- Bad input ends the run with one line and exit code 2, removing the run folder if nothing was
  trained in it yet.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Type

import torch
import tyro
import yaml
from nerfstudio.engine.optimizers import Optimizers
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.misc import step_check
from nerfstudio.utils.rich_utils import CONSOLE

from ids_nerf.errors import UserError, report
from ids_nerf.nerfstudio.checkpoints import latest_checkpoint, load_checkpoint, model_state
from ids_nerf.nerfstudio.memory_plan import plan_edit_memory
from ids_nerf.nerfstudio.optimizers import sgd_groups
from ids_nerf.nerfstudio.pipeline import IDSEditPipeline, IDSEditPipelineConfig, validate_edit_config

INITIAL_LOSS_SCALE = 2.0**20
"""The gradient scaler's first scale on CUDA (it halves on an overflow and doubles after 2000 clean steps)."""


@dataclass
class IDSEditTrainerConfig(TrainerConfig):
    """Trainer settings of an edit; ``--load-dir`` (the source run's nerfstudio_models) is required."""

    _target: Type = field(default_factory=lambda: IDSEditTrainer)
    use_source_model_config: bool = True
    """Take the model settings (nerfacto, nerfacto-big, ...) from the source run's config.yml next
    to --load-dir, so that its checkpoint fits; off: use --pipeline.model as given."""
    edit_optimizer: Literal["adam", "sgd"] = "adam"
    """adam: each group's optimizer as --optimizers sets it (nerfstudio's Adam, eps 1e-15, which moves
    every parameter a gradient reaches by about the learning rate); sgd: plain SGD on every group at
    --sgd-lr-scale times the group's learning rate, moving parameters in proportion to their gradient."""
    sgd_lr_scale: float = 10.0
    """With --edit-optimizer sgd: SGD's learning rate as a multiple of each group's (Adam's) rate, e.g.
    10 gives 0.01 on nerfacto's fields. Plain SGD at 0.1 diverged in a null edit (docs/results-nerf.md)."""
    sgd_momentum: float = 0.0
    """With --edit-optimizer sgd: heavy-ball momentum in [0, 1)."""
    edit_again: bool = False
    """With --load-dir of an edit run: start a new edit of the edited scene (its renders become the stored
    source latents, its optimizers and step start fresh) instead of resuming that run. Off, --load-dir of an
    edit run resumes it, and the method and prompts must be the run's."""
    edit_chain: tyro.conf.Suppress[List[Dict[str, Any]]] = field(default_factory=list)
    """The runs this edit's source came from, oldest first, as the edit records them (not a command-line
    setting): each link's run folder, method, steps and, for an edit, its prompts. Empty: no --load-dir
    config.yml was found."""

    def __post_init__(self) -> None:
        # Refuse several devices here, while parsing the command line: inside the processes that
        # nerfstudio spawns per device, a refusal would surface as the spawner's traceback.
        if self.machine.num_devices * self.machine.num_machines > 1:
            _exit_with(
                UserError(
                    "ids-edit runs on one device; use --machine.num-devices 1 and put the diffusion model "
                    "on a second GPU with --pipeline.diffusion-device cuda:1"
                )
            )


class IDSEditTrainer(Trainer):
    config: IDSEditTrainerConfig
    pipeline: IDSEditPipeline

    def __init__(self, config: IDSEditTrainerConfig, local_rank: int = 0, world_size: int = 1) -> None:
        if config.machine.device_type != "cuda":
            config.use_grad_scaler = False  # nerfstudio's GradScaler is CUDA's: elsewhere it warns and does nothing
        super().__init__(config, local_rank, world_size)
        # nerfstudio's scaler starts at 2^16; an edit's largest field gradient measured 8.2e-3 (docs/performance.md):
        # 2^20 keeps it at 8.6e3, below fp16's 65504, and lifts the median 16 times further from the flush
        self.grad_scaler = torch.amp.GradScaler("cuda", init_scale=INITIAL_LOSS_SCALE, enabled=self.use_grad_scaler)

    def setup(self, test_mode: Literal["test", "val", "inference"] = "val") -> None:
        try:
            self._check_and_adopt_source()
            super().setup(test_mode)
            self._begin_edit()
        except UserError as err:
            self._abandon_run_dir()
            _exit_with(err)

    def train(self) -> None:
        try:
            super().train()
        except UserError as err:
            self._abandon_run_dir()
            _exit_with(err)

    # ---- start ---------------------------------------------------------------------------------
    def _check_and_adopt_source(self) -> None:
        """Fail on bad input before anything heavy is built; decide between a new edit and a resume;
        adopt the source run's model config."""
        self._checkpoint_path = latest_checkpoint(self.config.load_dir, self.config.load_step)
        validate_edit_config(self.config.pipeline)
        self._resumed: Optional[bool] = None  # unknown without a config.yml: the checkpoint tells
        source_config = self._checkpoint_path.parent.parent / "config.yml"
        if not source_config.is_file():
            return
        source = yaml.load(source_config.read_text(), Loader=yaml.Loader)
        self._resumed = is_edit_run(source) and not self.config.edit_again
        if self._resumed:
            check_same_edit(source, self.config, source_config.parent)
            self.config.edit_chain = list(getattr(source, "edit_chain", []))
        else:
            if is_edit_run(source) and not edit_differences(source, self.config):
                CONSOLE.print(  # the resume command plus --edit-again: say which one this is
                    f"[bold yellow]Note: --edit-again True starts a new edit of the scene edited by "
                    f"'{source_config.parent}' with that run's own method and prompts; without it, it would be resumed."
                )
            last_step = int(self._checkpoint_path.stem.split("-")[1])
            self.config.edit_chain = [
                *getattr(source, "edit_chain", []),
                chain_link(source, source_config.parent, last_step),
            ]
        check_same_dataparser(source, self.config, source_config)
        if self.config.use_source_model_config:
            self._adopt_model(source, source_config)
        self.config.save_config()  # the edited run's config.yml: this very model, and the chain

    def _adopt_model(self, source: TrainerConfig, source_config: Path) -> None:
        model = getattr(getattr(source, "pipeline", None), "model", None)
        expected = type(self.config.pipeline.model)
        if not isinstance(model, expected):
            kind, other = self.config.pipeline.source_kind, self.config.pipeline.other_kind_method
            raise UserError(
                f"the run at '{source_config.parent}' is a {type(model).__name__}, not a {kind} model; "
                f"{self.config.method_name} edits {kind} scenes ({other} edits the other kind)"
            )
        if getattr(model, "background_color", None) == "random":
            # a random background is a training trick against haze; edit renders must be comparable
            # with the stored source renders and with images composited on white, so render on white
            model.background_color = "white"
        self.config.pipeline.model = model

    def _load_checkpoint(self) -> None:
        state = load_checkpoint(self._checkpoint_path)
        pipeline_state = state["pipeline"]
        if self._resumed is None:
            has_latents = any(k.endswith("source_latents") for k in pipeline_state)
            self._resumed = has_latents and not self.config.edit_again
        if self._resumed:
            self.pipeline.load_pipeline(pipeline_state, state["step"])
            # a model may replace its parameters while loading (splatfacto resizes to the checkpoint's
            # Gaussians): optimizers must be built on the loaded ones, or the edit changes nothing
            self.optimizers = self.setup_optimizers()
            self.optimizers.load_optimizers(state["optimizers"])
            if "schedulers" in state:
                self.optimizers.load_schedulers(state["schedulers"])
            if state.get("scalers") and self.grad_scaler.is_enabled():  # empty when saved disabled
                self.grad_scaler.load_state_dict(state["scalers"])
            self._start_step = state["step"] + 1
            CONSOLE.print(f"Resuming the edit from {self._checkpoint_path} (step {state['step']})")
            return
        weights = model_state(pipeline_state)
        check_checkpoint_fits(
            self.pipeline.model.state_dict(),
            weights,
            self.config.pipeline.comparable_shape,
            self._checkpoint_path,
            self.config.method_name,
        )
        self.pipeline.model.load_state_dict(weights)
        self.optimizers = self.setup_optimizers()  # on the loaded parameters (see above)
        # an edited source is still the model of the first source's training: keep that run's step
        source_step = int(pipeline_state.get("source_model_step", state["step"]))
        self.pipeline.source_model_step.fill_(source_step)
        self.pipeline.model.update_to_step(source_step)
        CONSOLE.print(
            f"Loaded the source model from {self._checkpoint_path} (its step {state['step']}); "
            "the edit starts at step 0"
        )
        if len(self.config.edit_chain) > 1:
            CONSOLE.print(f"Editing an edited scene: {describe_chain(self.config.edit_chain)} -> this edit")

    def _begin_edit(self) -> None:
        use_tf32_on_cuda(self.device, self.config.pipeline.diffusion_device)
        check_same_poses(self.pipeline, self._checkpoint_path.parent.parent / "dataparser_transforms.json")
        check_view_sizes(self.pipeline.datamanager.train_dataset.cameras)
        self._connect_edit_panel()
        self.pipeline.check_edit_masks()  # bad masks are refused before the weights load
        plan_edit_memory(self.pipeline)  # before the weights load; may refuse, or fit the settings to a budget
        self.pipeline.load_diffusion(keep_text_encoder=self.config.is_viewer_enabled())
        if self._resumed:
            # the loop runs max_num_iterations steps from _start_step: keep the total as asked
            self.config.max_num_iterations = max(0, self.config.max_num_iterations - self._start_step)
        else:
            self.pipeline.encode_views()
            figure = self.pipeline.mask_figure()
            if figure is not None:
                figure.save(Path(self.base_dir) / "edit_masks.png")
                CONSOLE.print(f"The edit masks of some views: {Path(self.base_dir) / 'edit_masks.png'}")

    def _connect_edit_panel(self) -> None:
        """Let the viewer's panel save checkpoints and the config, pause, and name the run folder."""
        hooks = self.pipeline.edit_panel.hooks
        hooks.run_dir = Path(self.base_dir)
        hooks.step = lambda: self.step
        hooks.save_checkpoint = lambda: self.save_checkpoint(self.step)
        hooks.save_config = self.config.save_config
        hooks.set_paused = lambda paused: setattr(self, "training_state", "paused" if paused else "training")

    def _abandon_run_dir(self) -> None:
        """Remove this run's folder when it holds no checkpoint (ns-train wrote config.yml first)."""
        base = Path(self.base_dir)
        if base.is_dir() and not any(base.glob("nerfstudio_models/*.ckpt")):
            shutil.rmtree(base, ignore_errors=True)

    def setup_optimizers(self) -> Optimizers:
        """nerfstudio's optimizers, or with --edit-optimizer sgd the same groups with plain SGD."""
        if self.config.edit_optimizer == "adam":
            return super().setup_optimizers()
        groups = sgd_groups(self.config.optimizers, self.config.sgd_lr_scale, self.config.sgd_momentum)
        return Optimizers(groups, self.pipeline.get_param_groups())

    # ---- step ----------------------------------------------------------------------------------
    def train_iteration(self, step: int):
        """One edit step; the pipeline backpropagates itself, chunk by chunk. Its parts are timed on the
        steps nerfstudio logs (as its ``train`` decides), where timing is worth a CUDA synchronisation.

        With ``--use-grad-scaler`` (on for NeRF edits; it acts on CUDA only, as nerfstudio's own) the
        backward is scaled by nerfstudio's GradScaler and unscaled before each optimizer's step, which
        it skips, lowering the scale, when a gradient overflowed: tiny-cuda-nn's hash grid backpropagates
        in fp16, below whose range most of an edit's gradients fall (docs/performance.md)."""
        self.optimizers.zero_grad_all()
        timed = step_check(step, self.config.logging.steps_per_log, run_at_zero=True)
        # scale() of a one also starts the scaler's state; disabled, it returns the one itself
        loss_scale = self.grad_scaler.scale(torch.ones((), device=self.device))
        loss_dict, metrics_dict, applied = self.pipeline.edit_step(step, timed=timed, loss_scale=loss_scale)
        if applied and not self.grad_scaler.is_enabled():
            self.optimizers.optimizer_step_all()
            self.optimizers.scheduler_step_all(step)
        elif applied:
            scale = self.grad_scaler.get_scale()
            self.optimizers.optimizer_scaler_step_all(self.grad_scaler)
            self.grad_scaler.update()
            if scale <= self.grad_scaler.get_scale():  # lowered: the step was skipped, so is the schedule's
                self.optimizers.scheduler_step_all(step)
        loss = sum(loss_dict.values(), torch.zeros((), device=self.device))
        return loss, loss_dict, metrics_dict


def is_edit_run(config: Any) -> bool:
    """Whether a run's config is an edit (ids-edit, dds-edit, the splat ones) rather than a trained source."""
    return isinstance(getattr(config, "pipeline", None), IDSEditPipelineConfig)


def chain_link(config: Any, run_dir: Path, last_step: int) -> Dict[str, Any]:
    """One link of an edit chain: the run folder, its method, its steps and, for an edit, its prompts."""
    link: Dict[str, Any] = {"run": str(run_dir), "method": getattr(config, "method_name", None), "steps": last_step + 1}
    if is_edit_run(config):
        link["source_prompt"] = config.pipeline.source_prompt
        link["target_prompt"] = config.pipeline.target_prompt
    return link


def describe_chain(chain: List[Dict[str, Any]]) -> str:
    """``nerfacto (600 steps) -> ids-edit 'a' -> 'b' (120 steps) -> ...``, for the console."""
    parts = []
    for link in chain:
        prompts = f" '{link['source_prompt']}' -> '{link['target_prompt']}'" if "target_prompt" in link else ""
        parts.append(f"{link['method']}{prompts} ({link['steps']} steps)")
    return " -> ".join(parts)


def edit_differences(saved: Any, edit: TrainerConfig) -> List[str]:
    """What differs between a saved edit run and this edit: its method and prompts, one phrase each."""
    ours, theirs = edit.pipeline, saved.pipeline
    differing = (
        [] if edit.method_name == saved.method_name else [f"method {edit.method_name} (saved: {saved.method_name})"]
    )
    for name in ("source_prompt", "target_prompt"):
        if getattr(ours, name).strip() != getattr(theirs, name).strip():
            flag = f"--pipeline.{name.replace('_', '-')}"
            differing.append(f"{flag} {getattr(ours, name)!r} (saved: {getattr(theirs, name)!r})")
    return differing


def check_same_edit(saved: Any, edit: TrainerConfig, run_dir: Path) -> None:
    """A resume must repeat the saved edit: its method and both prompts. Otherwise the user meant either
    the saved edit (resume with its settings) or a new edit of its result (--edit-again True); say both."""
    differing = edit_differences(saved, edit)
    if not differing:
        return
    theirs = saved.pipeline
    resume = (
        f"ns-train {saved.method_name} --pipeline.source-prompt {shlex.quote(theirs.source_prompt)} "
        f"--pipeline.target-prompt {shlex.quote(theirs.target_prompt)}"
    )
    raise UserError(
        f"--load-dir holds the edit run '{run_dir}', which a resume repeats, but this one differs: "
        f"{'; '.join(differing)}; to resume it use {resume}, to edit the edited scene again add --edit-again True"
    )


DATAPARSER_FIELDS_ANY = {"_target", "data"}
"""Dataparser settings an edit may change: the folder may have moved (its poses are checked instead)."""


def check_same_dataparser(source: TrainerConfig, edit: TrainerConfig, source_config: Path) -> None:
    """The edit must read the data as its source run did: the same dataparser with the same settings
    (scale, orientation, centring, downscale, ...), or the poses and images would not be the source's."""
    theirs = getattr(getattr(getattr(source, "pipeline", None), "datamanager", None), "dataparser", None)
    ours = edit.pipeline.datamanager.dataparser
    if theirs is None:
        return
    if type(theirs) is not type(ours):
        raise UserError(
            f"the source run ({source_config}) read its data with {type(theirs).__name__}, this edit with "
            f"{type(ours).__name__}; pass the source run's dataparser subcommand and settings (see its config.yml)"
        )
    differing = [
        f"{name} {getattr(ours, name)!r} (source: {getattr(theirs, name)!r})"
        for name in vars(theirs)
        if name not in DATAPARSER_FIELDS_ANY and hasattr(ours, name) and getattr(ours, name) != getattr(theirs, name)
    ]
    if Path(ours.data).resolve() != Path(theirs.data).resolve():
        CONSOLE.print(
            f"[bold yellow]Note: the source run read its data from '{theirs.data}', this edit from "
            f"'{ours.data}'; their camera poses are compared before the edit starts."
        )
    if differing:
        raise UserError(
            f"this edit reads the data with other dataparser settings than its source run: {'; '.join(differing)}; "
            f"pass the source run's settings (see {source_config})"
        )


def check_same_poses(pipeline, source_transforms: Path, atol: float = 1e-5) -> None:
    """The dataparser's world transform and scale must be the source run's (``dataparser_transforms.json``):
    the same settings on other data (another scene, changed images) give other poses."""
    if not source_transforms.is_file():
        return
    saved = json.loads(source_transforms.read_text())
    outputs = pipeline.datamanager.train_dataparser_outputs
    transform = outputs.dataparser_transform.detach().cpu().double()
    if not (
        torch.allclose(transform, torch.tensor(saved["transform"], dtype=torch.float64), atol=atol)
        and abs(float(outputs.dataparser_scale) - float(saved["scale"])) <= atol
    ):
        data = pipeline.config.datamanager.dataparser.data
        raise UserError(
            f"the data at '{data}' gives other camera poses than the source run's ({source_transforms}); "
            "pass the --data the source run was trained on"
        )


def check_checkpoint_fits(
    expected: dict, loaded: dict, shape: Callable[[str, torch.Tensor], tuple], checkpoint: Path, method: str
) -> None:
    """Refuse a source checkpoint whose weights do not fit the edit's model, naming the cause: most often
    the other hash-grid implementation (tiny-cuda-nn vs nerfstudio's torch grid), else another model."""
    mismatch = _state_mismatch(expected, loaded, shape)
    if not mismatch:
        return
    ours, theirs = hash_grid_implementation(expected), hash_grid_implementation(loaded)
    if (ours, theirs) == ("torch", "tcnn"):  # nerfstudio falls back to its torch grid without tiny-cuda-nn
        raise UserError(
            f"checkpoint '{checkpoint}' holds tiny-cuda-nn's hash grid and this edit builds nerfstudio's torch "
            "hash grid: install tiny-cuda-nn, or train the source with --pipeline.model.implementation torch"
        )
    if (ours, theirs) == ("tcnn", "torch"):
        raise UserError(
            f"checkpoint '{checkpoint}' holds nerfstudio's torch hash grid and this edit builds tiny-cuda-nn's: "
            "pass --pipeline.model.implementation torch (with --use-source-model-config False when the "
            "source's config.yml says tcnn), or train the source with tiny-cuda-nn installed"
        )
    raise UserError(
        f"checkpoint '{checkpoint}' does not fit the model of this edit ({mismatch}); "
        f"pass the nerfstudio_models folder of a run of the model {method} edits"
    )


def hash_grid_implementation(state: dict) -> Optional[str]:
    """The hash grid a nerfacto-like state dict comes from: nerfstudio's torch grid keeps ``hash_table``
    tensors, tiny-cuda-nn one flat ``params`` tensor per encoding or network; None: neither."""
    names = {key.rsplit(".", 1)[-1] for key in state}
    return "torch" if "hash_table" in names else "tcnn" if "params" in names else None


def use_tf32_on_cuda(*devices: Optional[str]) -> None:
    """TF32 matmuls for an edit's fp32 work (the NeRF's MLPs, an fp32 score model) when any of it runs on
    CUDA: several times the fp32 rate on Ampere and later, at a 10-bit mantissa that a NeRF's and a score
    distillation's noise outweigh. Off the GPU it changes nothing, so CPU results stay as they were."""
    if any(device is not None and torch.device(device).type == "cuda" for device in devices):
        torch.set_float32_matmul_precision("high")


def check_view_sizes(cameras) -> None:
    """Refuse training views of different aspect ratios (mixed sizes or orientations) before the diffusion
    model loads: the edit stores all views' latents in one tensor, and only views of one aspect ratio are
    all scaled to one diffusion size (``fit_short_side``); one ratio at several resolutions is fine."""
    sizes = [(int(h), int(w)) for h, w in zip(cameras.height.flatten(), cameras.width.flatten())]
    first = sizes[0]
    for index, (h, w) in enumerate(sizes):
        if h * first[1] != w * first[0]:
            raise UserError(
                f"training views 0 and {index} have different aspect ratios ({first[1]}x{first[0]} and {w}x{h} "
                "pixels); an edit stores one latent size for all views: crop the images to one aspect ratio "
                "and orientation"
            )


def _state_mismatch(expected: dict, loaded: dict, shape: Callable[[str, torch.Tensor], tuple]) -> str:
    """Empty when ``loaded`` fits ``expected`` key for key and ``shape`` for shape; else a summary."""
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    reshaped = [k for k in expected if k in loaded and shape(k, expected[k]) != shape(k, loaded[k])]
    if not (missing or unexpected or reshaped):
        return ""
    example = (missing or unexpected or reshaped)[0]
    return f"{len(missing)} missing, {len(unexpected)} unexpected, {len(reshaped)} reshaped weights, e.g. '{example}'"


def _exit_with(err: UserError) -> None:
    """End ns-train with the one line (``report``) and exit code 2. Also used while the command line is
    parsed: there a raised error would reach the user as nerfstudio's traceback."""
    sys.exit(report(err, "ids-edit"))
