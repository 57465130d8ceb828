"""The ``mtlscene`` command (LightningCLI) and its helpers: config checks, one-line errors,
checkpoint configs, quiet output and the list of outputs printed after a run."""
