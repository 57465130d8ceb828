"""CityScapes: the official layout, label table and encodings, the dataset and data module,
the prepared cache, the checks, the device-side augmentation and the synthetic generator."""
