"""Named experiments: rows of composed configs, run over seeds, summarised as the paper's
tables and figures (``mtlscene-experiment run table1``)."""

from mtlscene.experiments.definition import Experiment, Row, load_experiment
from mtlscene.experiments.runner import run_experiment
from mtlscene.experiments.summary import summarize

__all__ = ["Experiment", "Row", "load_experiment", "run_experiment", "summarize"]
