"""Official CityScapes benchmark result files and evaluations."""

from mtlscene.evaluation.cityscapes_format import (
    evaluate_instance_level,
    evaluate_pixel_level,
    write_instance_result,
    write_semantic_result,
)
from mtlscene.evaluation.cityscapes_panoptic import (
    evaluate_panoptic,
    merge_panoptic_results,
    prepare_panoptic_ground_truth,
    write_panoptic_result,
)

__all__ = [
    "evaluate_instance_level",
    "evaluate_panoptic",
    "evaluate_pixel_level",
    "merge_panoptic_results",
    "prepare_panoptic_ground_truth",
    "write_instance_result",
    "write_panoptic_result",
    "write_semantic_result",
]
