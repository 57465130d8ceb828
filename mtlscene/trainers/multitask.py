"""The LightningModule: shared encoder + registered task heads + a loss weighting."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from mtlscene.metrics.instance_ap import InstanceAveragePrecision
from mtlscene.models.encoder import DeepLabEncoder
from mtlscene.models.network import MultiTaskNetwork
from mtlscene.postprocess.clustering import CentroidVoteClustering
from mtlscene.tasks import TaskHead, get_task, import_task_modules
from mtlscene.trainers.finite_check import NonFiniteLossMonitor
from mtlscene.weighting import LossWeighting, UncertaintyWeighting
from mtlscene.weighting.scalars import weighting_scalars

DEFAULT_TASKS: dict[str, dict[str, Any]] = {"semantic": {}, "instance": {}, "depth": {}}


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-4)


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
            (default CentroidVoteClustering when both tasks are trained on trainIds).
        instance_ap: evaluate CityScapes-style instance AP in validate/test (needs
            clustering); prediction always clusters.
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
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            ignore=["backbone", "weighting", "optimizer", "lr_scheduler", "clustering"]
        )
        self.optimizer_factory = optimizer
        self.scheduler_factory = lr_scheduler
        self.check_finite = check_finite
        self.finite_monitor = NonFiniteLossMonitor()
        self.latest_losses: dict[str, Tensor] = {}
        import_task_modules(task_modules or [])
        self.configure_network(
            backbone or DeepLabEncoder(),
            dict(tasks or DEFAULT_TASKS),
            weighting or UncertaintyWeighting(),
        )
        self.clustering = clustering
        if clustering is None and self.can_cluster:
            self.clustering = CentroidVoteClustering()
        self.instance_ap = instance_ap and self.clustering is not None
        self.configure_metrics()

    def configure_network(
        self, backbone: nn.Module, tasks: dict[str, Mapping[str, Any]], weighting: LossWeighting
    ) -> None:
        """Build each registered head for the backbone and drop tasks weighted zero."""
        if not tasks:
            raise ValueError("model.tasks is empty: name at least one registered task")
        heads: dict[str, TaskHead] = {}
        for name, kwargs in tasks.items():
            head_cls = get_task(name)
            try:
                heads[name] = head_cls(in_channels=backbone.out_channels, **dict(kwargs or {}))
            except TypeError as error:
                raise TypeError(f"model.tasks.{name}: {error}") from error
        weighting.bind({name: head.likelihood for name, head in heads.items()})
        active = {name: head for name, head in heads.items() if weighting.is_active(name)}
        self.network = MultiTaskNetwork(backbone, active)
        self.weighting = weighting

    @property
    def heads(self) -> Mapping[str, TaskHead]:
        return self.network.heads

    @property
    def can_cluster(self) -> bool:
        """Instances need the centroid votes and a trainId semantic prediction."""
        semantic = self.heads["semantic"] if "semantic" in self.heads else None
        return "instance" in self.heads and getattr(semantic, "label_set", None) == "trainid"

    def configure_metrics(self) -> None:
        """One metric per task and evaluation stage (states sum across DDP processes)."""
        self.stage_metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict({n: h.make_metrics() for n, h in self.heads.items()})
                for stage in ("val", "test")
            }
        )
        if self.instance_ap:
            for stage in ("val", "test"):
                self.stage_metrics[stage]["instance_ap"] = InstanceAveragePrecision()

    def cluster_instances(self, outputs: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
        """Instance masks, trainIds and scores per image from the raw network outputs."""
        probs = outputs["semantic"].float().softmax(dim=1)
        return self.clustering(probs.argmax(dim=1), outputs["instance"].float(), probs)

    def forward(self, image: Tensor) -> dict[str, Tensor]:
        return self.network(image)

    def task_losses(self, outputs: Mapping[str, Tensor], batch: Mapping[str, Any]):
        losses = {}
        for name, head in self.heads.items():
            head.check_batch(batch, name)
            losses[name] = head.loss(outputs[name], batch)
        return losses

    def _check_finite(self, losses: Mapping[str, Tensor], stage: str) -> None:
        # Queued on the device and read back only every few steps (on_train_batch_end):
        # a read-back here would stall the GPU every step.
        self.finite_monitor.update(losses, self.global_step)

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> Tensor:
        outputs = self(batch["image"])
        losses = self.task_losses(outputs, batch)
        if self.check_finite:
            self._check_finite(losses, "training")
        if self.weighting.requires_gradients:
            total = self.weighting(losses, shared=self.network.encoder, heads=self.heads)
        else:
            total = self.weighting(losses)
        self.latest_losses = {name: loss.detach() for name, loss in losses.items()}
        batch_size = batch["image"].shape[0]
        self.log_dict(
            {f"train/loss/{n}": loss.detach() for n, loss in losses.items()},
            batch_size=batch_size,
        )
        self.log("train/loss_total", total.detach(), prog_bar=True, batch_size=batch_size)
        self.log_dict(
            weighting_scalars(self.weighting),
            batch_size=batch_size,
            on_step=True,
            on_epoch=False,
        )
        return total

    def on_fit_start(self) -> None:
        self.weighting.check_trainer_options(self.trainer.accumulate_grad_batches)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self.check_finite and (batch_idx + 1) % self.trainer.log_every_n_steps == 0:
            self.finite_monitor.check("training")

    def on_train_epoch_end(self) -> None:
        if self.check_finite:
            self.finite_monitor.check("training")
        self.weighting.on_train_epoch_end()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # RNG states (dropout) make a resumed run continue exactly where it stopped.
        checkpoint["rng_states"] = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            checkpoint["rng_states"]["cuda"] = torch.cuda.get_rng_state_all()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self._pending_rng_states = checkpoint.get("rng_states")

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # Checkpoints are written only after this batch finishes (callbacks run before this
        # module's batch-end hook), so count it as consumed already.
        loader = self.trainer.train_dataloader
        if hasattr(loader, "mark_consumed"):
            loader.mark_consumed(batch_idx + 1)
        states = getattr(self, "_pending_rng_states", None)
        if states is not None:
            torch.set_rng_state(states["torch"])
            if "cuda" in states and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(states["cuda"])
            self._pending_rng_states = None

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
        if self.instance_ap:
            instances = self.cluster_instances(outputs)
            self.stage_metrics[stage]["instance_ap"].update(instances, batch["instance_ids"])
        return outputs

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step("val", batch)

    def test_step(self, batch: Mapping[str, Any], batch_idx: int) -> dict[str, Tensor]:
        return self._evaluation_step("test", batch)

    def _log_metrics(self, stage: str) -> None:
        for name, metric in self.stage_metrics[stage].items():
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
        outputs = self(batch["image"])
        prediction = {name: head.postprocess(outputs[name]) for name, head in self.heads.items()}
        if self.clustering is not None:
            prediction["instances"] = self.cluster_instances(outputs)
        return {"batch": batch, "prediction": prediction}

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
        return {"optimizer": optimizer, "lr_scheduler": self.scheduler_factory(optimizer)}
