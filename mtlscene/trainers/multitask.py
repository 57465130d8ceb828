"""The LightningModule: shared encoder + registered task heads + a loss weighting."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities.rank_zero import rank_zero_debug, rank_zero_info
from torch import Tensor, nn

from mtlscene.callbacks.exact_resume import ExactResume
from mtlscene.callbacks.training_cost import TrainingCost
from mtlscene.callbacks.uncertainty_figures import UncertaintyFigures
from mtlscene.metrics.instance_ap import InstanceAveragePrecision
from mtlscene.metrics.panoptic_quality import CityscapesPanopticQuality
from mtlscene.models.encoder import DeepLabEncoder
from mtlscene.models.network import MultiTaskNetwork, branch_heads
from mtlscene.postprocess.base import bind_or_disable
from mtlscene.postprocess.clustering import CentroidVoteClustering
from mtlscene.postprocess.panoptic import PanopticFusion
from mtlscene.tasks import TableMetric, TaskHead, get_task, import_task_modules
from mtlscene.tasks.epistemic import check_mc_dropout, epistemic_uncertainty
from mtlscene.tasks.sampling import MC_SEED
from mtlscene.trainers.checkpoint import record_parts
from mtlscene.trainers.data_keys import check_heads_against_data
from mtlscene.trainers.finite_check import NonFiniteLossMonitor
from mtlscene.trainers.step_log import DeviceLogWindow
from mtlscene.uncertainty.aleatoric import aleatoric_key
from mtlscene.weighting import LossWeighting, UncertaintyWeighting
from mtlscene.weighting.scalars import weighting_scalars

# Panoptic quality is computed from the fused heads, not by one head: the model declares it.
PANOPTIC_QUALITY_COLUMN = TableMetric("pq", "PQ %", True, scale=100.0, in_delta=False)
# The window's key for the weighted total (no task may be called this: names are identifiers).
TOTAL_LOSS = "<total>"
DEFAULT_TASKS: dict[str, dict[str, Any]] = {"semantic": {}, "instance": {}, "depth": {}}


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


def _flat_value(value: Any) -> bool:
    """A batch entry that holds no tensor but itself: a tensor, a scalar or a list of names."""
    if isinstance(value, Tensor | str | int | float):
        return True
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def select_tasks(
    tasks: dict[str, Mapping[str, Any]], active: list[str] | None
) -> dict[str, Mapping[str, Any]]:
    """The entries of ``tasks`` named in ``active`` (all when None), in ``tasks``' order."""
    if active is None:
        return tasks
    unknown = sorted(set(active) - set(tasks))
    if unknown:
        raise ValueError(
            f"model.active_tasks names {unknown}, which model.tasks does not define "
            f"(it defines {sorted(tasks)}); add them to model.tasks or fix the task set"
        )
    if not active:
        raise ValueError("model.active_tasks is empty: name at least one task of model.tasks")
    return {name: kwargs for name, kwargs in tasks.items() if name in active}


class MultiTaskModule(LightningModule):
    """Trains a shared encoder and per-task heads with a pluggable loss weighting.

    Every part is injectable from YAML (``class_path``/``init_args``). Tasks are named by
    their registry name with the head's keyword arguments, e.g.
    ``tasks: {semantic: {label_set: trainid}, depth: {likelihood: laplace}}``.

    Args:
        backbone: shared encoder exposing ``out_channels`` (default DeepLabEncoder).
        tasks: registered task name -> keyword arguments of its head.
        weighting: loss weighting strategy (default UncertaintyWeighting).
        optimizer: optimizer factory; the weighting's parameters get their own group with
            no weight decay (and the weighting's ``lr`` when it sets one).
        lr_scheduler: optional scheduler factory (stepped per epoch unless configured).
        task_modules: modules to import before building heads, so that external tasks
            registered with ``@register_task`` become available.
        check_finite: stop with an error naming the task and step when a loss is NaN/inf
            (checked without stalling the step: every ``log_every_n_steps`` batches and at
            each epoch end).
        clustering: turns centroid votes and the semantic prediction into instance masks
            (default CentroidVoteClustering). Off unless the active heads include trainId
            class logits and centroid vectors (found by head kind); being off is said at info
            level when the config names a clustering, else at debug level.
        instance_ap: evaluate CityScapes-style instance AP in validate/test (needs
            clustering); prediction always clusters.
        active_tasks: the subset of ``tasks`` to train (None: all). Task-set presets set only
            this key, so they compose with any weighting preset and keep each head's settings.
        panoptic: fuses the semantic prediction and the instances into a panoptic map
            (default PanopticFusion); off when clustering is off or its heads are missing.
        panoptic_quality: evaluate panoptic quality (``{stage}/panoptic/pq`` ...) in
            validate/test (needs panoptic fusion); prediction always fuses.
        branch_point: where the task heads split from the shared encoder: "aspp" (the
            default: ResNet and ASPP shared, the heads are the decoders), "layer4" (shared up
            to ResNet layer4, each head owns a copy of ASPP) or "layer3" (shared up to
            layer3, each head owns copies of layer4 and ASPP). ``network.encoder`` is the
            shared part; the copies live in the heads (``heads[task].trunk``).
        calibration: also measure the calibration of heads without per-pixel sigma
            (``{val,test}/<task>/nll`` ..., as aleatoric heads always do): the softmax of
            class logits (NLL, ECE), and for a regression head its likelihood family with
            the weighting's task sigma (NLL, AUSE, coverage; only under a weighting with a
            task sigma, see ``LossWeighting.error_scales``; not defined under the others).
            Adds those columns to experiment tables.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        tasks: Mapping[str, Mapping[str, Any]] | None = None,
        weighting: LossWeighting | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        task_modules: list[str] | None = None,
        check_finite: bool = True,
        clustering: CentroidVoteClustering | None = None,
        instance_ap: bool = True,
        active_tasks: list[str] | None = None,
        panoptic: PanopticFusion | None = None,
        panoptic_quality: bool = True,
        branch_point: str = "aspp",
        calibration: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=[
                "backbone",
                "weighting",
                "optimizer",
                "lr_scheduler",
                "clustering",
                "panoptic",
            ]
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.check_finite = check_finite
        self.finite_monitor = NonFiniteLossMonitor()
        self.log_window = DeviceLogWindow()
        # training_objective compiled into one graph (set by CaptureTrainingStep), else None.
        self.compiled_objective: Callable | None = None
        self.latest_losses: dict[str, Tensor] = {}
        # MC-dropout passes per predict batch (0: off); set by ``mtlscene predict
        # --mc_dropout`` through use_mc_dropout, never saved with the model.
        self.mc_dropout = 0
        # This step's task losses with their graph, between the training step and its
        # backward: callbacks that look at per-task gradients (gradient diagnostics) read
        # them in ``on_before_backward``; cleared at batch end so no graph outlives its step.
        self.step_losses: dict[str, Tensor] = {}
        import_task_modules(task_modules or [])
        self.configure_network(
            backbone or DeepLabEncoder(),
            select_tasks(dict(tasks or DEFAULT_TASKS), active_tasks),
            weighting or UncertaintyWeighting(),
            branch_point,
        )
        self.configure_postprocessing(clustering, panoptic)
        self.instance_ap = instance_ap and self.clustering is not None
        self.panoptic_quality = panoptic_quality and self.panoptic is not None
        self.calibration = calibration
        self.configure_metrics()
        # As plain data, so load_from_checkpoint rebuilds the same parts (weights_only=True).
        record_parts(
            self.hparams,
            backbone=self.network.encoder,
            weighting=self.weighting,
            clustering=self.clustering,
            panoptic=self.panoptic,
        )

    def configure_network(
        self,
        backbone: nn.Module,
        tasks: dict[str, Mapping[str, Any]],
        weighting: LossWeighting,
        branch_point: str = "aspp",
    ) -> None:
        """Build each registered head for the backbone, drop tasks weighted zero, and split
        the backbone at ``branch_point`` (each head then owns a copy of the later stages)."""
        if not tasks:
            raise ValueError("model.tasks is empty: name at least one registered task")
        heads: dict[str, TaskHead] = {}
        for name, kwargs in tasks.items():
            head_cls = get_task(name)
            try:
                heads[name] = head_cls(in_channels=backbone.out_channels, **dict(kwargs or {}))
            except TypeError as error:
                raise TypeError(f"model.tasks.{name}: {error}") from error
        # Heads with per-pixel sigma first: weightings built on task sigma give them weight 1.
        weighting.set_per_pixel_tasks(name for name, head in heads.items() if head.aleatoric)
        weighting.bind({name: head.likelihood for name, head in heads.items()})
        active = {name: head for name, head in heads.items() if weighting.is_active(name)}
        # The checkpoint describes the whole backbone (its init arguments); branch_point, an
        # hparam, redoes the same split when the checkpoint is rebuilt.
        self.network = MultiTaskNetwork(
            branch_heads(backbone, active, branch_point),
            active,
            keep_representation=getattr(weighting, "rep_grad", False),  # for its gradients
        )
        self.weighting = weighting

    @property
    def heads(self) -> Mapping[str, TaskHead]:
        return self.network.heads

    @property
    def monitored_metric(self) -> tuple[str, str]:
        """``(validation metric key, "min"|"max")`` of the first active task: what a checkpoint
        callback with ``monitor: auto`` tracks."""
        name, head = next(iter(self.heads.items()))
        return f"val/{name}/{head.monitor_metric}", head.monitor_mode

    def table_metrics(self) -> dict[str, tuple[TableMetric, ...]]:
        """Task (or post-processing group) -> the test metrics it puts in a results table."""
        metrics = {name: tuple(head.table_metrics) for name, head in self.heads.items()}
        for name in self.task_calibration:  # aleatoric heads declare theirs already
            metrics[name] += self.heads[name].calibration_table_metrics()
        if self.panoptic_quality:
            metrics["panoptic"] = (PANOPTIC_QUALITY_COLUMN,)
        return metrics

    def configure_postprocessing(
        self, clustering: CentroidVoteClustering | None, panoptic: PanopticFusion | None
    ) -> None:
        """Bind clustering and panoptic fusion to the heads they declare; off when missing.

        Being off is said at info level only when the config names the post-processor
        (the user asked for it); task sets without an instance head (NYUv2, own data,
        semantic and depth) would otherwise be told on every run: debug level there.
        """
        self.clustering, message = bind_or_disable(
            "model.clustering", clustering or CentroidVoteClustering(), self.heads
        )
        self.panoptic: PanopticFusion | None = None
        if self.clustering is None:
            if message:
                say = rank_zero_info if clustering is not None else rank_zero_debug
                say(f"{message}; instance AP and panoptic fusion are off too")
            return
        self.panoptic, message = bind_or_disable(
            "model.panoptic", panoptic or PanopticFusion(), self.heads
        )
        if message:
            (rank_zero_info if panoptic is not None else rank_zero_debug)(message)

    @property
    def aleatoric_tasks(self) -> list[str]:
        """Tasks whose head predicts a per-pixel uncertainty (``aleatoric: true``)."""
        return [name for name, head in self.heads.items() if head.aleatoric]

    def configure_metrics(self) -> None:
        """One metric per task and evaluation stage (states sum across DDP processes)."""
        self.stage_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({n: h.make_metrics() for n, h in self.heads.items()})
                for stage in ("val", "test")
            }
        )
        # Calibration of the per-pixel uncertainty (and with ``calibration`` of the other
        # heads' predictive distributions), logged beside the task's own metrics
        # (``{stage}/<task>/nll``...). Metric states are not saved in checkpoints.
        self.task_calibration = self._task_calibration_heads()
        self.calibration_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        n: self.heads[n].make_aleatoric_metrics()
                        if self.heads[n].aleatoric
                        else self.heads[n].make_calibration_metrics()
                        for n in self.heads
                        if n in self.aleatoric_tasks or n in self.task_calibration
                    }
                )
                for stage in ("val", "test")
            }
        )
        for stage in ("val", "test"):
            if self.instance_ap:
                self.stage_metrics[stage]["instance_ap"] = InstanceAveragePrecision()
            if self.panoptic_quality:
                self.stage_metrics[stage]["panoptic"] = CityscapesPanopticQuality()

    def _task_calibration_heads(self) -> list[str]:
        """Heads without per-pixel sigma whose calibration ``calibration`` measures: those
        with a predictive distribution (a regression needs the weighting's task sigma)."""
        if not self.calibration:
            return []
        scales = self.weighting.error_scales()
        return [
            name
            for name, head in self.heads.items()
            if not head.aleatoric
            and head.make_calibration_metrics() is not None
            and (name in scales or not head.calibration_needs_error_scale)
        ]

    def cluster_instances(self, outputs: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        """Instance masks, trainIds and scores per image from the raw network outputs."""
        return self.clustering.from_outputs(outputs)

    def panoptic_segmentation(
        self, outputs: Mapping[str, Tensor], instances: list[dict[str, Tensor]]
    ) -> dict[str, Tensor]:
        """Panoptic ``category`` and ``instance`` maps (BxHxW) from outputs and instances."""
        return self.panoptic.from_outputs(outputs, instances)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.network(image)

    def task_losses(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]):
        losses = {}
        for name, head in self.heads.items():
            head.check_batch(batch, name)
            losses[name] = head.compute_loss(outputs[name], batch, outputs.get(aleatoric_key(name)))
        return losses

    def training_objective(self, batch: Mapping[str, Any]) -> tuple[Tensor, dict[str, Tensor]]:
        """Forward pass, task losses and the weighted total of one training batch.

        Device work only (no logging, no read-back): this is the part that
        `CaptureTrainingStep` compiles into one graph with its
        backward. Returns ``(total, task -> raw loss)``.
        """
        outputs = self(batch["image"])
        scales = self.weighting.prediction_scales()  # empty unless the exact Boltzmann term
        if scales:
            outputs = {n: o * scales[n] if n in scales else o for n, o in outputs.items()}
        losses = self.task_losses(outputs, batch)
        present = {n: h.target_present(batch) for n, h in self.heads.items()}
        present = {n: p for n, p in present.items() if p is not None}
        if self.weighting.requires_gradients:
            total = self.weighting(
                losses,
                present,
                shared=self.network.encoder,
                heads=self.heads,
                representation=self.network.take_representation(),
            )
        else:
            total = self.weighting(losses, present)
        return total, losses

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        objective = self.compiled_objective or self.training_objective
        total, losses = objective(batch)
        self.latest_losses = {name: loss.detach() for name, loss in losses.items()}
        self.step_losses = dict(losses)
        # Device work only on this path: one stack feeds both the log window and the finite
        # check; values reach self.log (host work) only on the steps a logger writes.
        stacked = self.log_window.add({**losses, TOTAL_LOSS: total})
        if self.check_finite:
            self.finite_monitor.update_stacked(list(losses), stacked[:-1], self.global_step)
        if self._log_due():
            self._log_training_window(batch["image"].shape[0])
        return total

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int):
        # Every data module here yields a flat dict of tensors plus the frames' names: moved
        # in one comprehension instead of Lightning's generic walk of any nesting, which costs
        # host time on every batch. Anything else takes Lightning's path.
        if not (isinstance(batch, dict) and all(map(_flat_value, batch.values()))):
            return super().transfer_batch_to_device(batch, device, dataloader_idx)
        non_blocking = device.type != "cpu"
        return {
            key: value.to(device, non_blocking=non_blocking) if isinstance(value, Tensor) else value
            for key, value in batch.items()
        }

    def _log_due(self) -> bool:
        """Whether this step's scalars reach the loggers: Lightning's own rule (every
        ``log_every_n_steps`` and when stopping), plus the epoch's and the run's last step so
        that short runs and ``callback_metrics`` always see the latest window."""
        trainer = self._trainer
        if trainer is None:  # called by hand (tests, benchmarks): nothing to log to
            return False
        last_step = 0 < trainer.max_steps <= self.global_step + 1
        return trainer._logger_connector.should_update_logs or trainer.is_last_batch or last_step

    def _log_training_window(self, batch_size: int) -> None:
        """Log the window's mean losses and the weighting's current scalars (on the device)."""
        means = self.log_window.means()
        total = means.pop(TOTAL_LOSS)
        self.log_dict({f"train/loss/{n}": v for n, v in means.items()}, batch_size=batch_size)
        self.log("train/loss_total", total, prog_bar=True, batch_size=batch_size)
        self.log_dict(weighting_scalars(self.weighting), batch_size=batch_size)

        return total

    def configure_callbacks(self) -> list[Callback]:
        # Exact mid-epoch resume (RNG states, the loader's position) lives in a callback.
        # Parameters and FLOPs printed at fit start, batch times kept for result files.
        callbacks: list[Callback] = [ExactResume(), TrainingCost()]
        # Reliability and sparsification figures beside the run.
        if self.aleatoric_tasks or self.task_calibration:
            callbacks.append(UncertaintyFigures())
        return callbacks

    def setup(self, stage: str) -> None:
        # After the data module's setup, before the first step: a task whose targets the
        # data does not serve stops here, naming both, not at its first batch.
        if stage != "predict":
            datamodule = getattr(self.trainer, "datamodule", None)
            if datamodule is not None:
                check_heads_against_data(self.heads, datamodule)

    def on_fit_start(self) -> None:
        self.weighting.check_trainer_options(self.trainer.accumulate_grad_batches)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        self.step_losses = {}
        if self.check_finite and (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.finite_monitor.check("training")

    def on_train_epoch_end(self) -> None:
        if self.check_finite:
            self.finite_monitor.check("training")
        self.weighting.on_train_epoch_end()

    def _evaluation_step(self, stage: str, batch: Mapping[str, Any]) -> dict[str, Tensor]:
        outputs = self(batch["image"])
        losses = self.task_losses(outputs, batch)
        batch_size = batch["image"].shape[0]
        self.log_dict(
            {f"{stage}/loss/{n}": loss for n, loss in losses.items()},
            batch_size=batch_size,
            sync_dist=True,
        )
        for name, head in self.heads.items():
            head.update_metrics(self.stage_metrics[stage][name], outputs[name], batch)
        self._update_calibration(stage, outputs, batch)
        if self.instance_ap or self.panoptic_quality:
            instances = self.cluster_instances(outputs)
            metrics = self.stage_metrics[stage]
            if self.instance_ap:
                metrics["instance_ap"].update(instances, batch["instance_ids"])
            if self.panoptic_quality:
                panoptic = self.panoptic_segmentation(outputs, instances)
                metrics["panoptic"].update(
                    panoptic["category"], panoptic["instance"], batch["instance_ids"]
                )
        return outputs

    def _update_calibration(
        self, stage: str, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]
    ) -> None:
        """Feed the calibration metrics: per-pixel sigma for aleatoric heads; for the others
        (``calibration``) the distribution the weighting trained, read off it now."""
        metrics = self.calibration_metrics[stage]
        scales = self.weighting.error_scales() if self.task_calibration else {}
        logit_scales = self.weighting.prediction_scales() if self.task_calibration else {}
        for name, metric in metrics.items():
            head = self.heads[name]
            if head.aleatoric:
                head.update_aleatoric_metrics(
                    metric, outputs[name], outputs[aleatoric_key(name)], batch
                )
                continue
            # Under the exact Boltzmann form the trained softmax is that of the scaled logits.
            prediction = (
                outputs[name] * logit_scales[name] if name in logit_scales else outputs[name]
            )
            head.update_calibration_metrics(metric, prediction, batch, scales.get(name))

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step("test", batch)

    def _log_metrics(self, stage: str) -> None:
        metrics = [*self.stage_metrics[stage].items(), *self.calibration_metrics[stage].items()]
        for name, metric in metrics:
            values = metric.compute()
            if not isinstance(values, Mapping):  # a plain metric such as MeanMetric
                values = {"value": values}
            # AP is an instance metric: log it beside the instance head's offset error.
            group = "instance" if name == "instance_ap" else name
            for key, value in values.items():
                self.log(f"{stage}/{group}/{key.replace(' ', '_')}", value)
            metric.reset()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def predict_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Any]:
        """One batch's results, for a writer callback to save at batch end.

        The CLI runs ``predict`` with ``return_predictions=False``, so Lightning drops each
        result once the callbacks have seen it; nothing accumulates over the dataset.
        """
        outputs = self(batch["image"])
        prediction = {name: head.postprocess(outputs[name]) for name, head in self.heads.items()}
        sigma = self.uncertainty_maps(outputs)
        if sigma:
            prediction["sigma"] = sigma
        if self.mc_dropout:  # task -> {"mutual_information" | "epistemic_variance"...: BxHxW}
            prediction["epistemic"] = epistemic_uncertainty(
                self.network, batch["image"], self.mc_dropout
            )
        if self.clustering is not None:
            prediction["instances"] = self.cluster_instances(outputs)
            if self.panoptic is not None:
                prediction["panoptic"] = self.panoptic_segmentation(
                    outputs, prediction["instances"]
                )
        return {"batch": batch, "prediction": prediction}

    def use_mc_dropout(self, passes: int, source: str = "this model") -> None:
        """Add epistemic maps from ``passes`` MC-dropout passes to every predict batch (0:
        off). Refused (ValueError naming ``source``, e.g. the checkpoint, and the fix) when
        no head trained with dropout: no dropout is ever run at a rate a head did not learn.
        """
        if passes:
            check_mc_dropout(self.heads, int(passes), source)
        self.mc_dropout = int(passes)

    def uncertainty_maps(self, outputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Task -> per-pixel sigma (BxHxW) of every aleatoric head, from raw outputs."""
        return {
            name: self.heads[name].sigma(outputs[aleatoric_key(name)])
            for name in self.aleatoric_tasks
        }

    @torch.no_grad()
    def predict_with_uncertainty(
        self, images: Tensor, mc_dropout: int = 0, seed: int = MC_SEED
    ) -> dict[str, dict[str, Tensor]]:
        """Prediction and per-pixel uncertainty of every task, for use from Python.

        ``model = MultiTaskModule.load_from_checkpoint(path); model.predict_with_uncertainty(x)``
        with images Bx3xHxW in [0, 1]. The model is put in eval mode.

        Args:
            images: the batch.
            mc_dropout: N > 0 also runs N passes with the dropout each head trained with
                (its ``dropout`` option, before the decoder's final projection), only those
                dropout layers active (BatchNorm stays in eval), for the epistemic part of
                the heads that trained with dropout. Refused (ValueError) when none did.
            seed: the seed of the passes' own generator (the global random stream is not
                used, so the same call gives the same maps).

        Returns:
            task -> ``{"prediction": ...}`` (the task's postprocessed prediction, as
            ``predict`` gives it) plus, for aleatoric heads, ``"sigma"`` (BxHxW std of one
            component: target units for regressions, logit-noise std for semantics) and
            ``"log_scale"`` (the bounded s). With ``mc_dropout``, for the heads that
            trained with dropout: ``"epistemic_variance"``
            (regressions: variance of the N means, summed over components) or
            ``"mutual_information"`` (semantics, nats), and for regressions
            ``"total_variance"`` = aleatoric variance (sigma^2 per component, summed) +
            epistemic.
        """
        if mc_dropout:
            check_mc_dropout(self.heads, mc_dropout, "this model")
        self.eval()
        images = images.to(self.device)
        outputs = self(images)
        result: dict[str, dict[str, Tensor]] = {}
        for name, head in self.heads.items():
            entry = {"prediction": head.postprocess(outputs[name])}
            if head.aleatoric:
                entry["sigma"] = head.sigma(outputs[aleatoric_key(name)])
                entry["log_scale"] = outputs[aleatoric_key(name)][:, 0]
            result[name] = entry
        if mc_dropout:
            maps = epistemic_uncertainty(self.network, images, mc_dropout, seed)
            for name, entry in maps.items():
                result[name].update(entry)
        return result

    def configure_optimizers(self):
        groups: list[dict[str, Any]] = [
            {"params": list(self.network.parameters()), "name": "network"}
        ]
        weighting_params = list(self.weighting.parameters())
        if weighting_params:
            # Weight decay would pull s = log sigma^2 toward 0, i.e. sigma toward 1.
            group = {"params": weighting_params, "weight_decay": 0.0, "name": "uncertainty"}
            if self.weighting.lr is not None:
                group["lr"] = self.weighting.lr
            groups.append(group)
        optimizer = self.optimizer_factory(groups)
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        if hasattr(scheduler, "bind_total_steps"):  # e.g. PolynomialDecay without a budget
            scheduler.bind_total_steps(int(self.trainer.estimated_stepping_batches))
        # Schedules declare their own interval (PolynomialDecay: every step); default epoch.
        interval = getattr(scheduler, "interval", "epoch")
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": interval},
        }
