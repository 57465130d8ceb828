"""A user's own data: a folder of images and target folders described by ``dataset.yaml``."""
