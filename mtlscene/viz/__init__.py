"""Pictures: colour maps of inputs, targets and predictions, panels, and figures of sigma,
weights and calibration (plain numpy, PIL and matplotlib; no Lightning)."""
