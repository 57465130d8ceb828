"""NYUv2 in the mtan layout: the dataset and data module, its checks, its augmentation and the
synthetic indoor generator."""
