"""The experiment's configuration: structured-config dataclasses, their ConfigStore entry and the checks.

The YAML files under ``configs/`` (one group per swappable part) are merged into :class:`Config`, a tree
of plain dataclasses registered in Hydra's ConfigStore as ``config_schema`` (the first entry of the
root ``config.yaml``'s defaults list). Hydra then rejects an unknown key or a value of the wrong type
when it composes the config, before anything runs. :func:`validate` adds the checks a type cannot
express (a novelty threshold above the neighbour radius, a data file that does not exist, a name that is
not one of the choices) and raises :class:`~neurograph.errors.InvalidArgument` naming the key.

Where the configs are (:func:`config_dir`): ``$NEUROGRAPH_CONFIG_DIR`` when set, else
``neurograph/experiments/configs``, which is a symbolic link to the repository's ``configs/`` in a clone
(and an editable install) and a copy of it inside an installed wheel (``package-data``'s
``**/*.yaml`` follows the link when the wheel is built).

Nothing here imports Hydra at module import; :func:`register_configs` does, when called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from neurograph.errors import InvalidArgument

__all__ = [
    "CDNAConfig",
    "Config",
    "DatasetConfig",
    "DynamicsConfig",
    "EncoderConfig",
    "EngineConfig",
    "EvalConfig",
    "HierarchyConfig",
    "LoggerConfig",
    "ReportConfig",
    "config_dir",
    "register_configs",
    "validate",
]

DATASETS = ("digits", "iris", "blobs", "nested", "file", "text", "synthetic")
BASELINES = ("kmeans", "kmeans_true", "hdbscan", "som")
LOGGERS = ("jsonl", "wandb", "none")


@dataclass
class EngineConfig:
    """``Engine(...)`` options (group ``engine/``)."""

    device: str = "cpu"  # cpu | cuda | cuda:N
    index_backend: str = "auto"  # neighbour search backend (NeighborIndex)
    durability: str = "normal"  # store log: full | normal | off (quote "off" in YAML)
    store: str = "store"  # snapshot directory, relative to the run directory
    capacity: int = 1024  # initial token capacity (doubles when full)


@dataclass
class CDNAConfig:
    """The constitution (group ``cdna/``): a profile or ``auto``, and fields set on top of it."""

    profile: str = "auto"  # auto (CDNA.calibrate to the data) | default | explorer | analyst | ...
    base: str = "default"  # the profile ``auto`` scales to the data
    novelty_threshold: Optional[float] = None  # noqa: UP045  novel iff no token this close (None: profile's)
    neighbor_radius: Optional[float] = None  # noqa: UP045  neighbours lie within this distance
    temperature: Optional[float] = None  # noqa: UP045  Langevin temperature of the dynamics
    token_strength: Optional[float] = None  # noqa: UP045  field strength of a new signal token
    learning_rate: Optional[float] = None  # noqa: UP045  how far a resonance moves a token
    overrides: dict[str, Any] = field(default_factory=dict)  # any other CDNA field


@dataclass
class DynamicsConfig:
    """Force-field dynamics between batches (group ``dynamics/``)."""

    backend: str = "auto"  # auto | reference | eager | compiled | triton
    steps: int = 10  # dynamics steps after each batch (0: none)


@dataclass
class HierarchyConfig:
    """Hierarchy rebuilds (group ``hierarchy/``)."""

    every: int = 1  # rebuild after every this many batches (0: only at the end)
    max_levels: Optional[int] = None  # noqa: UP045  levels of fields (None: the profile's)
    min_field_size: Optional[int] = None  # noqa: UP045  members a basin needs (None: the profile's)


@dataclass
class EncoderConfig:
    """The gateway encoder of text data sets (group ``encoder/``): ``make_encoder({"name", **kwargs})``."""

    name: str = "hashed"  # hashed | semantic (MiniLM, offline)
    kwargs: dict[str, Any] = field(default_factory=dict)  # the encoder's arguments
    fit: bool = False  # semantic: fit its 8-D projection on the data set's own texts (no labels used)


@dataclass
class DatasetConfig:
    """The data source (group ``dataset/``); :mod:`neurograph.experiments.sources` reads it."""

    name: str = "digits"  # digits | iris | blobs | nested | file | text | synthetic
    n: Optional[int] = None  # noqa: UP045  samples: generated (blobs, nested, synthetic) or kept (others)
    batch_size: int = 256  # signals per emit_batch
    shuffle: bool = True  # stream in a seeded random order
    path: Optional[str] = None  # noqa: UP045  file: .npy, .csv or .parquet; text: a CSV (topic,text)
    columns: Optional[list[str]] = None  # noqa: UP045  file: feature columns (None: every numeric one)
    label_column: Optional[str] = None  # noqa: UP045  file: the label column (None: no labels)
    branching: list[int] = field(default_factory=lambda: [4, 5])  # nested: children per node, top first
    centers: int = 8  # blobs / synthetic: clusters
    spread: float = 0.04  # blobs / synthetic: standard deviation around a centre


@dataclass
class EvalConfig:
    """Scoring emergence against the baselines."""

    baselines: list[str] = field(default_factory=lambda: list(BASELINES))  # kmeans kmeans_true hdbscan som
    max_samples: int = 20_000  # score on a seeded subsample of at most this many signals
    som_iterations: int = 5000  # MiniSom training iterations


@dataclass
class ReportConfig:
    """``report.html``."""

    enabled: bool = True  # write report.html
    max_points: int = 5000  # tokens drawn in the 2-D projections
    plotlyjs: str = "inline"  # inline (opens offline, ~4 MB) | cdn (small file, needs the network)


@dataclass
class LoggerConfig:
    """Loggers (group ``logger/``): ``metrics.jsonl`` is always written; ``wandb`` adds W&B."""

    name: str = "jsonl"  # jsonl | wandb | none
    project: str = "neurograph"  # W&B project
    mode: str = "auto"  # W&B: auto (online with WANDB_API_KEY, else offline) | online | offline | disabled
    log_snapshot: bool = True  # W&B: the snapshot as an artifact


@dataclass
class Config:
    """The whole run (root ``config.yaml``)."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    cdna: CDNAConfig = field(default_factory=CDNAConfig)
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)
    hierarchy: HierarchyConfig = field(default_factory=HierarchyConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    name: str = "default"  # experiment name: the run directory's parent
    seed: int = 0  # engine, sample order, baselines
    output_dir: str = "${hydra:runtime.output_dir}"  # the run directory (tests set it)
    tags: list[str] = field(default_factory=list)  # W&B tags


def config_dir() -> Path:
    """The directory holding ``config.yaml`` and the groups (module docstring)."""
    env = os.environ.get("NEUROGRAPH_CONFIG_DIR")
    if env:
        return Path(env).resolve()
    here = Path(__file__).resolve().parent
    for candidate in (here / "configs", here.parents[1] / "configs"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"no experiment configs found under {here / 'configs'}; set NEUROGRAPH_CONFIG_DIR"
    )


def register_configs() -> None:
    """Store :class:`Config` in Hydra's ConfigStore as ``config_schema`` (idempotent)."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="config_schema", node=Config)


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidArgument(key, value, f"must be one of {list(choices)}")


def validate(cfg: Config) -> None:
    """Checks a type cannot express; raises :class:`InvalidArgument` naming the key (nothing has run).

    The threshold check against the radius of a calibrated (``auto``) profile runs again once the data
    are loaded (:func:`neurograph.experiments.runner.build_cdna`).
    """
    from neurograph.cdna import PROFILES

    _choice("dataset.name", cfg.dataset.name, DATASETS)
    _choice("logger.name", cfg.logger.name, LOGGERS)
    _choice("cdna.profile", cfg.cdna.profile, ("auto", *PROFILES))
    _choice("cdna.base", cfg.cdna.base, tuple(PROFILES))
    _choice("engine.durability", cfg.engine.durability, ("full", "normal", "off"))
    _choice("report.plotlyjs", cfg.report.plotlyjs, ("inline", "cdn"))
    for b in cfg.eval.baselines:
        _choice("eval.baselines", b, BASELINES)
    for key, value, low in (
        ("dataset.batch_size", cfg.dataset.batch_size, 1),
        ("dataset.n", cfg.dataset.n, 2),
        ("dynamics.steps", cfg.dynamics.steps, 0),
        ("hierarchy.every", cfg.hierarchy.every, 0),
        ("eval.max_samples", cfg.eval.max_samples, 2),
        ("report.max_points", cfg.report.max_points, 1),
    ):
        if value is not None and value < low:
            raise InvalidArgument(key, value, f"must be >= {low}")
    c = cfg.cdna
    for key in ("novelty_threshold", "neighbor_radius", "temperature", "token_strength", "learning_rate"):
        value = getattr(c, key)
        if value is not None and value < 0:
            raise InvalidArgument(f"cdna.{key}", value, "must be >= 0")
    radius = c.neighbor_radius
    if radius is None and c.profile != "auto":
        from neurograph.cdna import CDNA

        radius = CDNA.profile(c.profile).neighbor_radius
    if c.novelty_threshold is not None and radius is not None and c.novelty_threshold > radius:
        raise InvalidArgument(
            "cdna.novelty_threshold", c.novelty_threshold, f"must be <= the neighbour radius ({radius:g})"
        )
    d = cfg.dataset
    if d.name == "file":
        if not d.path:
            raise InvalidArgument("dataset.path", d.path, "dataset=file needs a path (.npy, .csv, .parquet)")
        if Path(d.path).suffix.lower() not in (".npy", ".csv", ".parquet"):
            raise InvalidArgument("dataset.path", d.path, "must end in .npy, .csv or .parquet")
    if d.path and not Path(d.path).expanduser().is_file():
        raise InvalidArgument("dataset.path", d.path, "no such file")
    if d.name == "nested" and (not d.branching or min(d.branching) < 1):
        raise InvalidArgument("dataset.branching", d.branching, "must be a non-empty list of ints >= 1")
