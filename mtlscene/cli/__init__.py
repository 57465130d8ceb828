"""The commands: ``mtlscene`` (LightningCLI: fit, validate, test, predict) with its helpers
(config checks, one-line errors, checkpoint configs, quiet output, the list of outputs), and
``mtlscene-data`` (check, prepare, generate datasets)."""
