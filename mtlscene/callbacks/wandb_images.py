"""Logs a few validation images with predicted and true masks to Weights & Biases."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from mtlscene.tasks.kinds import HeadKind
from mtlscene.uncertainty.aleatoric import aleatoric_key
from mtlscene.viz.colorize import colorize_disparity, to_uint8_image
from mtlscene.viz.panels import with_colorbar


class WandbValidationImages(Callback):
    """Each validation epoch, logs the first ``num_images`` images of the first batch.

    Semantic prediction and ground truth are attached as W&B masks with class names (so
    they can be toggled in the UI); the predicted disparity is logged as a colour map, and
    each ``aleatoric`` head's per-pixel sigma as a colour map with a colour bar.
    Does nothing without a ``WandbLogger``.

    Args:
        num_images: images to log per epoch.
    """

    def __init__(self, num_images: int = 4) -> None:
        self.num_images = num_images

    @rank_zero_only
    def on_validation_batch_end(
        self,
        trainer: Trainer,
        pl_module: LightningModule,
        outputs,
        batch,
        batch_idx,
        dataloader_idx: int = 0,
    ) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, WandbLogger)]
        if batch_idx != 0 or not loggers or trainer.sanity_checking or not outputs:
            return
        count = min(self.num_images, batch["image"].shape[0])
        images, masks, captions, depth = [], [], [], []
        # Outputs are found by what the heads produce, not by task name.
        by_kind = {getattr(h, "output_kind", None): n for n, h in pl_module.heads.items()}
        semantic = by_kind.get(HeadKind.CLASS_LOGITS_TRAINID) or by_kind.get(
            HeadKind.CLASS_LOGITS_CATEGORY
        )
        disparity_name = by_kind.get(HeadKind.DISPARITY)
        class_labels = None
        if semantic in outputs:
            names = pl_module.heads[semantic].class_names
            class_labels = {i: name for i, name in enumerate(names)} | {255: "ignore"}
        for index in range(count):
            images.append(to_uint8_image(batch["image"][index].float().cpu()))
            captions.append(batch["name"][index])
            if class_labels is not None:
                predicted = outputs[semantic][index].argmax(0).cpu().numpy()
                masks.append(
                    {
                        "prediction": {"mask_data": predicted, "class_labels": class_labels},
                        "ground_truth": {
                            "mask_data": batch["semantic"][index].cpu().numpy(),
                            "class_labels": class_labels,
                        },
                    }
                )
            if disparity_name in outputs:
                disparity = outputs[disparity_name][index, 0].float().clamp_min(0).cpu().numpy()
                depth.append(colorize_disparity(disparity))
        # Per-pixel sigma of aleatoric heads (outputs are the raw network outputs).
        sigma = {
            name: [
                with_colorbar(
                    head.sigma(outputs[key][:count])[i].float().cpu().numpy(),
                    cmap="viridis",
                    min_width=0,
                )
                for i in range(count)
            ]
            for name, head in pl_module.heads.items()
            if getattr(head, "aleatoric", False) and (key := aleatoric_key(name)) in outputs
        }
        for logger in loggers:
            kwargs = {"caption": captions}
            if masks:
                kwargs["masks"] = masks
            logger.log_image("val/examples", images, step=trainer.global_step, **kwargs)
            if depth:
                logger.log_image(
                    "val/predicted_disparity", depth, step=trainer.global_step, caption=captions
                )
            for name, pictures in sigma.items():
                logger.log_image(
                    f"val/{name}_sigma", pictures, step=trainer.global_step, caption=captions
                )
