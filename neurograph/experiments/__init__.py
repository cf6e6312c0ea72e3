"""Experiments: the Hydra app over ``configs/`` (an adapter: it drives engines from outside).

- :mod:`~neurograph.experiments.config`: the structured configs, where ``configs/`` is, the checks;
- :mod:`~neurograph.experiments.sources`: data sources behind one interface;
- :mod:`~neurograph.experiments.runner`: ``run(cfg)``, one experiment into its run directory;
- :mod:`~neurograph.experiments.report`, :mod:`~neurograph.experiments.loggers`: ``report.html``,
  ``metrics.jsonl`` and W&B;
- :mod:`~neurograph.experiments.collect`: a multirun as one table;
- :mod:`~neurograph.experiments.run`: the ``@hydra.main`` entry point.

Hydra, plotly and wandb are imported inside the functions that use them; nothing here is imported by
``import neurograph``. ``run`` is :func:`neurograph.experiments.runner.run` (the module
``neurograph.experiments.run`` is the command line).
"""
