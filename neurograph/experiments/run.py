"""The Hydra app: ``python -m neurograph.experiments.run [overrides]`` (``neurograph run`` calls it).

``@hydra.main`` only wraps :func:`~neurograph.experiments.runner.run`: Hydra composes ``configs/``
(:func:`~neurograph.experiments.config.config_dir`), creates the run directory (``outputs/<name>/<time>``,
``multirun/<name>/<time>/<job>`` for ``-m``), writes ``.hydra/`` there, and returns the run's level-1 NMI
to a sweeper (the Optuna sweeper maximises it).
"""

from __future__ import annotations

from typing import Any

from neurograph.experiments.config import config_dir, register_configs

__all__ = ["main"]


def _app() -> Any:
    import hydra

    register_configs()

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="config")
    def app(cfg: Any) -> float:
        from neurograph.experiments.runner import run

        return float(run(cfg)["objective"])

    return app


def main() -> None:
    """Parse ``sys.argv`` as Hydra overrides and run (one job, or a sweep with ``-m``)."""
    _app()()


if __name__ == "__main__":
    main()
