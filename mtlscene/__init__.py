"""mtlscene: multi-task scene understanding with learned uncertainty loss weighting.

Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene
Geometry and Semantics", CVPR 2018.
"""

__version__ = "0.1.0"

from mtlscene.moved_modules import install as _install_moved_modules

_install_moved_modules()
