"""Official CityScapes benchmark result files and evaluations."""

from mtlscene.evaluation.cityscapes_format import (
    evaluate_instance_level,
    evaluate_pixel_level,
    write_instance_result,
    write_semantic_result,
)

__all__ = [
    "evaluate_instance_level",
    "evaluate_pixel_level",
    "write_instance_result",
    "write_semantic_result",
]
