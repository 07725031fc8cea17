"""`Project.train`: one pipeline run on the project made by `driftloop init` — train,
evaluate against the champion, gate, register, move aliases.

The example data is written as of a fixed time ``T0``: the first batch is ingested a
week before it (right after its last event), the second at ``T0``, so every training
below sees the same rows and the tests can compare versions exactly. DuckDB computes
the features with one thread: with several, a windowed float sum may add in another
order and differ in its last bits from one call to the next, which changes the
training set's id.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from driftloop import ModelSpec, Threshold, __version__
from driftloop.cli.init import write_example
from driftloop.core.clock import SimulatedClock, use_clock
from driftloop.errors import NotFoundError, StateError
from driftloop.loop.pipeline import TrainOutcome, code_version
from driftloop.monitoring.references import load_reference
from driftloop.monitoring.statistics import CategoricalReference, NumericReference
from driftloop.project import Project
from driftloop.training import _testing
from driftloop.training.flavors import load_model

T0 = datetime(2025, 3, 3, 12, 0, tzinfo=UTC)
FIRST_BATCH_AT = T0 - timedelta(days=7) + timedelta(minutes=1)
"""When the first batch (events from T0-14d to T0-7d) is ingested."""
AS_OF = T0 + timedelta(hours=1)
LABEL_DELAY = timedelta(days=1)
"""The example spec's ``Label(known_after="1d")``."""
SMALL_PARAMS = {"max_iter": 30, "learning_rate": 0.1}
REF = re.compile(r"^(last_transaction|customer_spend)@[0-9a-f]{16}:\w+$")


@dataclasses.dataclass(frozen=True)
class Example:
    """A project folder with both example batches ingested."""

    folder: Path
    first_batch: str
    second_batch: str

    def copy(self, tmp_path: Path) -> Path:
        return Path(shutil.copytree(self.folder, tmp_path / "shop"))


@dataclasses.dataclass(frozen=True)
class Trained:
    """The example after two trainings: v1 (promoted to champion) and v2 with other params."""

    example: Example
    first: TrainOutcome
    second: TrainOutcome

    @property
    def folder(self) -> Path:
        return self.example.folder


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> Example:
    folder = tmp_path_factory.mktemp("pipeline") / "shop"
    write_example(folder, now=T0)
    settings = folder / "driftloop.yaml"
    text = settings.read_text()
    assert "  threads: 0\n" in text
    settings.write_text(text.replace("  threads: 0\n", "  threads: 1\n"))
    clock = SimulatedClock(FIRST_BATCH_AT)
    with use_clock(clock), Project(folder) as project:
        project.apply()
        first = project.ingest("transactions", folder / "data" / "transactions-1.csv")
        clock.set(T0)
        second = project.ingest("transactions", folder / "data" / "transactions-2.csv")
    return Example(folder, first.id, second.id)


@pytest.fixture(scope="module")
def trained(example: Example, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    folder = Path(shutil.copytree(example.folder, tmp_path_factory.mktemp("trained") / "shop"))
    with Project(folder) as project:
        first = project.train("fraud", as_of=AS_OF, promote=True)
        spec = dataclasses.replace(project.model_spec("fraud"), params=SMALL_PARAMS)
        second = project.train(spec, as_of=AS_OF)
    return Trained(dataclasses.replace(example, folder=folder), first, second)


@pytest.fixture
def project(trained: Trained, tmp_path: Path) -> Iterator[Project]:
    """A copy of the trained project, free to change."""
    with Project(trained.example.copy(tmp_path)) as opened:
        yield opened


@pytest.fixture
def fresh(example: Example, tmp_path: Path) -> Iterator[Project]:
    """A copy of the example with data but no model version yet."""
    with Project(example.copy(tmp_path)) as opened:
        yield opened


def _git(folder: Path, *args: str) -> str:
    command = ["git", "-C", str(folder), "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, check=True)
    return done.stdout.strip()


# -- registration -------------------------------------------------------------------


def test_a_training_registers_a_version_with_its_run_metrics_signature_and_lineage(
    trained: Trained,
) -> None:
    """Version 1 carries its run id, the run's metrics, a signature of pinned feature
    references and the output schema, its lineage and the verdict tag."""
    with Project(trained.folder) as project:
        version = project.model_version("fraud", 1)
        run = project.run(trained.first.run.id)
        views = {v.name: v.version for v in project.feature_views() if v.current}
        stored_report = json.loads(project.artifacts.get_bytes(trained.first.report_digest))
    assert trained.first.version == version
    assert (version.model, version.version, version.run_id) == ("fraud", 1, run.id)
    assert version.metrics == run.metrics
    assert {"roc_auc", "log_loss", "ece"} <= version.metrics.keys()
    assert version.artifact_digest == run.artifact_digest
    inputs = version.signature["inputs"]
    assert [i["name"] for i in inputs] == [
        "amount",
        "channel",
        "amount_sum_1d",
        "amount_sum_7d",
        "amount_count_7d",
        "amount_max_28d",
    ]
    for column in inputs:
        assert REF.match(column["ref"]), column["ref"]
        view, _, rest = column["ref"].partition("@")
        assert rest.split(":")[0] == views[view]
    assert version.signature["entity_keys"] == ["customer_id"]
    assert version.signature["output"]["task"] == "binary"
    assert version.signature["output"]["classes"] == [False, True]
    assert version.lineage["run"] == run.id
    assert version.lineage["training_set"] == run.training_set_id
    assert version.lineage["views"] == [
        {"name": "last_transaction", "version": views["last_transaction"]},
        {"name": "customer_spend", "version": views["customer_spend"]},
    ]
    assert version.lineage["dataset_versions"] == {
        "transactions": sorted([trained.example.first_batch, trained.example.second_batch])
    }
    assert version.lineage["evaluation_report"] == trained.first.report_digest
    assert stored_report["verdict"] == trained.first.report.to_dict()["verdict"]
    assert version.tags["verdict"] == "pass"
    assert version.tags["trainer"] == "hist_gradient_boosting"


def test_a_version_stores_the_reference_profile_monitoring_compares_it_with(
    trained: Trained,
) -> None:
    """Its inputs over the training set, its predictions on the validation rows and the
    labels, fitted once and stored by digest in the version's lineage."""
    with Project(trained.folder) as project:
        version = project.model_version("fraud", 1)
        reference = load_reference(project.artifacts, version.lineage["reference"])
        ts = project.training_set(version.lineage["training_set"])
    names = [i["name"] for i in version.signature["inputs"]]
    assert set(reference.columns) == {*(f"feature.{n}" for n in names), "prediction", "label"}
    amount = reference.columns["feature.amount"]
    assert isinstance(amount, NumericReference)
    assert amount.size == ts.table.num_rows
    channel = reference.columns["feature.channel"]
    assert isinstance(channel, CategoricalReference)
    assert channel.size == ts.table.num_rows
    assert reference.columns["prediction"].size == trained.first.run.split["validation"]["rows"]
    assert set(reference.columns["label"].counts) == {"0", "1"}  # type: ignore[union-attr]


def test_the_run_records_params_data_code_and_library_versions_and_the_split(
    trained: Trained,
) -> None:
    """The run keeps its params, seed, training set, views, dataset versions, code and
    library versions, fit cost, the time split and the version it became."""
    with Project(trained.folder) as project:
        run = project.run(trained.first.run.id)
        rows = project.training_set(str(run.training_set_id)).table.num_rows
    assert run.status == "succeeded"
    assert run.error is None
    assert run.model_version == 1
    assert (run.model, run.trainer, run.task) == ("fraud", "hist_gradient_boosting", "binary")
    assert run.params == {"max_iter": 100, "learning_rate": 0.05}
    assert run.seed == 0
    assert run.training_set_id == trained.first.version.lineage["training_set"]
    assert [v["name"] for v in run.views] == ["last_transaction", "customer_spend"]
    assert run.dataset_versions == trained.first.version.lineage["dataset_versions"]
    assert run.code_version == {"driftloop": __version__, "git_sha": None, "git_dirty": None}
    assert {"python", "numpy", "scikit-learn"} <= run.library_versions.keys()
    assert run.fit_seconds is not None
    assert run.fit_seconds > 0
    assert run.peak_memory_mb is not None
    assert run.peak_memory_mb > 0
    assert run.finished_at is not None
    assert run.finished_at >= run.started_at
    split = run.split
    train, valid = split["train"], split["validation"]
    assert train["rows"] > 0
    assert valid["rows"] > 0
    assert train["rows"] + valid["rows"] + split["unused"] == rows
    assert train["start"] <= train["end"] < split["cutoff"] <= valid["start"] <= valid["end"]
    assert datetime.fromisoformat(valid["end"]) <= AS_OF - LABEL_DELAY
    assert datetime.fromisoformat(split["as_of"]) == AS_OF
    assert trained.first.to_dict()["split"] == split


def test_a_run_in_a_git_repository_records_its_commit_and_dirty_flag(fresh: Project) -> None:
    """In a git work tree the run keeps HEAD's sha and whether tracked files changed."""
    _git(fresh.root, "init", "-q")
    _git(fresh.root, "add", "-A")
    _git(fresh.root, "commit", "-q", "-m", "example")
    head = _git(fresh.root, "rev-parse", "HEAD")
    assert code_version(fresh.root) == {
        "driftloop": __version__,
        "git_sha": head,
        "git_dirty": False,
    }
    definitions = fresh.root / "definitions.py"
    definitions.write_text(definitions.read_text() + "\n# tuning\n")
    outcome = fresh.train("fraud", as_of=AS_OF)
    assert outcome.run.code_version == {
        "driftloop": __version__,
        "git_sha": head,
        "git_dirty": True,
    }
    assert outcome.version.lineage["code_version"] == outcome.run.code_version


def test_training_twice_on_the_same_inputs_gives_the_same_artifact_and_training_set(
    project: Project, trained: Trained
) -> None:
    """The same spec, data and as_of give the same artifact digest and training set id."""
    again = project.train("fraud", as_of=AS_OF)
    assert again.version.version == 3
    assert again.version.artifact_digest == trained.first.version.artifact_digest
    assert again.run.training_set_id == trained.first.run.training_set_id
    assert again.version.metrics == trained.first.version.metrics


# -- the champion and the gates -----------------------------------------------------


def test_the_first_model_has_no_champion_so_change_gates_are_skipped(trained: Trained) -> None:
    """Without a champion the Change gate is SKIP with the reason, and the others decide."""
    first = trained.first
    assert first.champion is None
    assert first.report.champion is None
    assert first.report.champion_metrics is None
    results = {r.gate: r for r in first.report.verdict.results}
    change = [r for gate, r in results.items() if "vs champion" in gate]
    assert len(change) == 1
    assert change[0].passed is None
    assert "no champion" in change[0].reason
    assert any(reason.startswith("SKIP:") for reason in first.report.verdict.reasons)
    assert first.passed
    assert first.version.lineage["champion_version"] is None


def test_promote_makes_the_first_passing_version_champion(trained: Trained) -> None:
    """promote=True moves challenger and champion to the new version, with the run as reason."""
    moves = [(m.alias, m.from_version, m.to_version) for m in trained.first.aliases]
    assert moves == [("challenger", None, 1), ("champion", None, 1)]
    assert all(trained.first.run.id in m.reason for m in trained.first.aliases)
    with Project(trained.folder) as project:
        history = project.alias_history("fraud", "champion")
    assert [(m.from_version, m.to_version) for m in history] == [(None, 1)]


def test_the_next_training_is_compared_with_the_champion_on_the_same_rows(
    trained: Trained,
) -> None:
    """Version 2 is scored beside champion v1 on its validation rows: the champion's
    metrics there are its own registered ones, and each difference has an interval."""
    second = trained.second
    assert second.champion is not None
    assert second.champion.version == 1
    report = second.report.to_dict()
    assert report["champion"] == {
        "label": "fraud/1 (champion)",
        "version": 1,
        "run_id": trained.first.run.id,
    }
    assert report["challenger"]["run_id"] == second.run.id
    assert report["rows"] == second.run.split["validation"]["rows"]
    assert report["rows"] == trained.first.run.split["validation"]["rows"]
    assert report["resamples"] == 1000
    champion = {m["name"]: m["champion"] for m in report["metrics"]}
    assert champion == pytest.approx(trained.first.version.metrics)
    assert second.version.metrics != trained.first.version.metrics
    for metric in report["metrics"]:
        difference = metric["difference"]
        assert difference is not None
        assert difference["low"] <= difference["observed"] <= difference["high"]
        assert difference["observed"] == pytest.approx(metric["challenger"] - metric["champion"])
    assert second.version.lineage["champion_version"] == 1
    assert report["slices"]
    assert all(s["champion"] is not None for s in report["slices"] if not s["too_small"])


def test_a_passing_challenger_moves_the_challenger_alias_but_not_the_champion(
    trained: Trained,
) -> None:
    """Without promote, passing gates move `challenger` only; champion stays where it was."""
    assert trained.second.passed
    assert [(m.alias, m.from_version, m.to_version) for m in trained.second.aliases] == [
        ("challenger", 1, 2)
    ]
    with Project(trained.folder) as project:
        assert project.model_aliases("fraud") == {"champion": 1, "challenger": 2}


def test_failing_gates_register_the_version_but_move_no_alias(project: Project) -> None:
    """A version below a gate is registered with verdict "fail"; even with promote=True
    no alias moves and the champion stays."""
    strict = dataclasses.replace(
        project.model_spec("fraud"), gates=[Threshold("roc_auc", min=0.99)]
    )
    history = project.alias_history("fraud")
    outcome = project.train(strict, as_of=AS_OF, promote=True)
    assert not outcome.passed
    assert outcome.aliases == []
    assert outcome.report.verdict.reasons[0].startswith("FAIL: roc_auc >= 0.99")
    version = project.model_version("fraud", "latest")
    assert (version.version, version.tags["verdict"]) == (3, "fail")
    assert project.model_aliases("fraud") == {"champion": 1, "challenger": 2}
    assert project.alias_history("fraud") == history
    assert project.run(outcome.run.id).evaluation["passed"] is False


def test_a_champion_with_other_features_is_scored_with_its_own_features(
    fresh: Project,
) -> None:
    """A champion trained on fewer (and other) features is scored on the challenger's
    validation rows through its own pinned references, fetching the feature the
    challenger does not have."""
    spec = fresh.model_spec("fraud")
    small = dataclasses.replace(
        spec, features=["last_transaction:amount", "last_transaction:is_large"], gates=[]
    )
    champion = fresh.train(small, as_of=AS_OF, promote=True)
    assert fresh.model_aliases("fraud")["champion"] == 1
    assert [i["name"] for i in champion.version.signature["inputs"]] == ["amount", "is_large"]
    outcome = fresh.train("fraud", as_of=AS_OF)
    assert "is_large" not in [i["name"] for i in outcome.version.signature["inputs"]]
    assert outcome.champion == champion.version
    assert outcome.report.rows == champion.run.split["validation"]["rows"]
    assert outcome.report.champion_metrics == pytest.approx(champion.version.metrics)
    assert outcome.report.challenger_metrics != outcome.report.champion_metrics


# -- failures and user trainers -------------------------------------------------------


def test_a_trainer_that_raises_fails_the_run_and_registers_nothing(project: Project) -> None:
    """The run ends failed with the trainer's error, StateError is raised, no version."""
    spec = dataclasses.replace(
        project.model_spec("fraud"),
        trainer=_testing.failing_trainer,
        params={"message": "no good data"},
    )
    with pytest.raises(StateError, match="ValueError: no good data"):
        project.train(spec, as_of=AS_OF, promote=True)
    run = project.runs("fraud")[0]
    assert run.status == "failed"
    assert run.error is not None
    assert "ValueError: no good data" in run.error
    assert run.trainer == "driftloop.training._testing.failing_trainer"
    assert run.finished_at is not None
    assert run.model_version is None
    assert [v.version for v in project.model_versions("fraud")] == [1, 2]
    assert project.model_aliases("fraud") == {"champion": 1, "challenger": 2}


USER_TRAINER = '''

def shallow_tree(X, y, params):
    """A user trainer: a decision tree of params["max_depth"]."""
    from sklearn.tree import DecisionTreeClassifier

    return DecisionTreeClassifier(max_depth=params["max_depth"], random_state=0).fit(X, y)


fraud_tree = ModelSpec(
    "fraud_tree",
    task="binary",
    features=["last_transaction:amount", "customer_spend:*"],
    label=Label("transactions", "is_fraud", entity=customer, known_after="1d"),
    trainer=shallow_tree,
    params={"max_depth": 3},
    split=TimeSplit(fraction=0.3),
)
'''


def test_a_trainer_defined_in_the_definitions_module_is_run_from_its_file(
    fresh: Project,
) -> None:
    """A function in definitions.py trains the model in the child, with the spec's params."""
    definitions = fresh.root / "definitions.py"
    definitions.write_text(definitions.read_text() + USER_TRAINER)
    outcome = fresh.train("fraud_tree", as_of=AS_OF)
    assert outcome.run.status == "succeeded"
    assert outcome.run.trainer == "definitions.shallow_tree"
    assert outcome.version.tags["trainer"] == "definitions.shallow_tree"
    assert (outcome.version.model, outcome.version.version) == ("fraud_tree", 1)
    model: Any = load_model(
        fresh.artifacts, outcome.version.artifact_digest, outcome.version.flavor
    )
    assert type(model).__name__ == "DecisionTreeClassifier"
    assert model.get_depth() <= 3


# -- reports, cards, diffs, as_of -----------------------------------------------------


def test_the_stored_report_and_card_of_a_trained_version_can_be_read_back(
    trained: Trained,
) -> None:
    """evaluation_report gives the stored report naming the version; model_card gathers
    the run, the data, the features and the report."""
    with Project(trained.folder) as project:
        report = project.evaluation_report("fraud", 2)
        card = project.model_card("fraud", "champion")
    expected = trained.second.report.to_dict()
    assert report["challenger"]["version"] == 2
    assert report["challenger"]["label"] == "fraud/2 (challenger)"
    assert {k: v for k, v in report.items() if k != "challenger"} == {
        k: v for k, v in expected.items() if k != "challenger"
    }
    first = trained.first
    assert (card["model"], card["version"], card["aliases"]) == ("fraud", 1, {"champion": 1})
    assert card["run"]["id"] == first.run.id
    assert card["params"] == {"max_iter": 100, "learning_rate": 0.05}
    assert card["intended_use"].startswith("Rank payments")
    assert [f["name"] for f in card["features"]][:2] == ["amount", "channel"]
    assert card["training_data"]["training_set"] == first.run.training_set_id
    assert card["training_data"]["validation"] == first.run.split["validation"]
    assert card["evaluation"]["verdict"] == first.report.to_dict()["verdict"]


def test_a_version_registered_by_hand_has_no_evaluation_report(project: Project) -> None:
    """register_model stores no report, so evaluation_report raises NotFoundError."""
    project.register_model("fraud", artifact_digest="0" * 64, flavor="sklearn")
    with pytest.raises(NotFoundError, match="evaluation report"):
        project.evaluation_report("fraud", 3)
    assert project.model_card("fraud", 3)["evaluation"] is None


def test_a_champion_registered_without_a_signature_stops_training_with_the_remedy(
    project: Project,
) -> None:
    """A hand-registered champion has no task or inputs to be scored with: the training
    stops saying so, and how to go on; no version is registered."""
    before = len(project.model_versions("fraud"))
    by_hand = project.register_model("fraud", artifact_digest="0" * 64, flavor="sklearn")
    project.set_alias("fraud", "champion", by_hand.version)
    with pytest.raises(StateError, match="registered without a signature") as raised:
        project.train("fraud")
    assert "driftloop models alias fraud champion N" in str(raised.value)
    assert len(project.model_versions("fraud")) == before + 1


def test_diff_of_versions_trained_with_other_params_shows_the_params(trained: Trained) -> None:
    """diff_models lists each hyperparameter that changed between the two runs."""
    with Project(trained.folder) as project:
        diff = project.diff_models("fraud", 1, 2)
        same = project.diff_models("fraud", 2, 2)
    assert diff.params == {"learning_rate": (0.05, 0.1), "max_iter": (100, 30)}
    assert diff.to_dict()["params"] == {"learning_rate": [0.05, 0.1], "max_iter": [100, 30]}
    assert same.params == {}
    assert same.same


def test_training_as_of_the_past_uses_only_the_data_and_labels_known_then(
    fresh: Project, trained: Trained
) -> None:
    """as_of a few hours after the first batch: only that batch is read, and only its
    rows whose label was known by then, so there are fewer rows and none after as_of
    minus the label delay."""
    as_of = FIRST_BATCH_AT + timedelta(hours=2)
    outcome = fresh.train("fraud", as_of=as_of)
    split = outcome.run.split
    now_split = trained.first.run.split
    assert datetime.fromisoformat(split["as_of"]) == as_of
    rows = split["train"]["rows"] + split["validation"]["rows"]
    assert 0 < rows < now_split["train"]["rows"] + now_split["validation"]["rows"]
    assert datetime.fromisoformat(split["validation"]["end"]) <= as_of - LABEL_DELAY
    assert outcome.run.training_set_id != trained.first.run.training_set_id
    assert outcome.run.dataset_versions == {"transactions": [trained.example.first_batch]}
    assert outcome.version.lineage["dataset_versions"] == outcome.run.dataset_versions


def test_an_unknown_model_spec_is_not_found_with_the_known_ones(fresh: Project) -> None:
    """train("nope") raises NotFoundError listing the declared specs."""
    with pytest.raises(NotFoundError, match=r"unknown model spec 'nope' \(known: fraud\)"):
        fresh.train("nope")
    assert isinstance(fresh.model_spec("fraud"), ModelSpec)
    assert fresh.runs() == []
