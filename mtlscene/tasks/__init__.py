"""Task heads as plugins: the TaskHead interface, likelihood types and the registry.

Importing this package registers the built-in tasks ``semantic``, ``instance`` and ``depth``
(CityScapes) and ``metric_depth`` and ``normal`` (NYUv2).
"""

from mtlscene.tasks.base import ConvDecoder, TaskHead, masked_l1
from mtlscene.tasks.depth import DepthHead  # noqa: E402  (registration side effect)
from mtlscene.tasks.instance import InstanceHead  # noqa: E402
from mtlscene.tasks.kinds import HeadKind
from mtlscene.tasks.likelihood import Likelihood
from mtlscene.tasks.metric_depth import MetricDepthHead  # noqa: E402
from mtlscene.tasks.normal import SurfaceNormalHead  # noqa: E402
from mtlscene.tasks.registry import available_tasks, get_task, import_task_modules, register_task
from mtlscene.tasks.semantic import SemanticHead  # noqa: E402
from mtlscene.tasks.table_metric import TableMetric

__all__ = [
    "ConvDecoder",
    "DepthHead",
    "HeadKind",
    "InstanceHead",
    "Likelihood",
    "MetricDepthHead",
    "SemanticHead",
    "SurfaceNormalHead",
    "TableMetric",
    "TaskHead",
    "available_tasks",
    "get_task",
    "import_task_modules",
    "masked_l1",
    "register_task",
]
