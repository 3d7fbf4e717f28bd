"""scikit-learn estimators through skops, trusting only scikit-learn, numpy and scipy types."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("sklearn", reason="the sklearn extra is not installed")
skops_io = pytest.importorskip("skops.io", reason="the sklearn extra is not installed")

import numpy as np  # noqa: E402
from sklearn.base import BaseEstimator, TransformerMixin  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline, make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402

from branchwork import pipeline, step  # noqa: E402
from branchwork.artifact_stores import artifact_store_for_uri  # noqa: E402
from branchwork.exceptions import ArtifactError  # noqa: E402
from branchwork.materializers import cloudpickle_materializer, load_artifact  # noqa: E402
from branchwork.materializers.registry import materializer_path  # noqa: E402
from branchwork.materializers.sklearn_materializer import SklearnMaterializer  # noqa: E402

X = np.random.default_rng(0).normal(size=(40, 3))
Y = (X[:, 0] + X[:, 1] > 0).astype(int)


def double(values):
    return values * 2


class Clipper(TransformerMixin, BaseEstimator):
    """A custom transformer: a type outside scikit-learn, numpy and scipy."""

    def fit(self, values, target=None):
        return self

    def transform(self, values):
        return np.clip(values, -1, 1)


@pytest.mark.parametrize(
    "model",
    [
        LogisticRegression(C=0.5),
        make_pipeline(StandardScaler(), LogisticRegression()),
        RandomForestClassifier(n_estimators=3, random_state=0),  # holds sklearn's Tree type
        FunctionTransformer(np.log1p),
    ],
    ids=["estimator", "pipeline", "forest", "numpy_function"],
)
def test_fitted_models_round_trip_through_skops(round_trip, model):
    model.fit(X, Y)
    result = round_trip(model)
    loaded = result.loaded
    assert result.materializer is SklearnMaterializer
    assert (result.files, result.warnings) == (["model.skops"], [])
    assert type(loaded) is type(model)
    assert repr(loaded.get_params()) == repr(model.get_params())
    if hasattr(model, "predict"):
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    else:
        np.testing.assert_array_equal(loaded.transform(abs(X)), model.transform(abs(X)))


@pytest.mark.parametrize(
    ("model", "untrusted"),
    [
        (make_pipeline(Clipper(), LogisticRegression()), f"{__name__}.Clipper"),
        (FunctionTransformer(double), f"{__name__}.double"),
        (FunctionTransformer(eval), "builtins.eval"),  # builtins' classes only are trusted
    ],
    ids=["custom_class", "custom_function", "builtin_function"],
)
def test_models_holding_untrusted_types_are_pickled_naming_them(
    round_trip, monkeypatch, model, untrusted
):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    model.fit(X, Y)
    result = round_trip(model)
    assert result.files == ["data.pkl"]
    assert (
        f" values holding {untrusted} (skops loads those unsafely) are stored as "
        in (result.warnings[0])
    )
    assert type(result.loaded) is type(model)


@pytest.mark.parametrize("artifact_store", ["local"], indirect=True)
def test_a_model_skops_cannot_store_is_pickled_saying_why(round_trip, monkeypatch):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    model = LogisticRegression().fit(X, Y)
    model.shift_ = 1 + 2j  # skops cannot store a complex number; a pickle can
    result = round_trip(model)
    assert result.files == ["data.pkl"]
    warning = result.warnings[0]
    assert "LogisticRegression values that skops cannot store (cannot pickle 'complex'" in warning
    assert result.loaded.shift_ == 1 + 2j


def test_a_skops_file_holding_untrusted_types_is_refused_naming_them(artifact_store):
    """Such a file was not written by branchwork (it pickles those models): loading it would
    let whoever wrote it choose the types that are built."""
    store = artifact_store
    uri = store.new_artifact_uri("model")
    store.makedirs(uri)
    model = make_pipeline(Clipper(), FunctionTransformer(double)).fit(X, Y)
    store.write_bytes(store.join(uri, "model.skops"), skops_io.dumps(model))
    with pytest.raises(ArtifactError) as error:
        load_artifact(uri, materializer_path(SklearnMaterializer), store=store)
    untrusted = [f"{__name__}.Clipper", f"{__name__}.double"]
    assert (
        f"Refusing to load the scikit-learn model at {store.join(uri, 'model.skops')}: it holds "
        f"types outside scikit-learn, numpy and scipy ({', '.join(untrusted)}), and loading "
        "them could run code from the artifact store. If you trust this file, load its bytes "
        f"yourself with skops.io.loads(data, trusted={untrusted!r})."
    ) in str(error.value)


def test_preview_gives_class_parameters_and_fitted(round_trip):
    preview = round_trip(LogisticRegression(C=0.5, solver="saga")).preview
    metadata = preview["metadata"]
    assert metadata["class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert (metadata["params"]["C"], metadata["params"]["solver"]) == ("0.5", "'saga'")
    assert metadata["fitted"] is False
    assert preview["text"] == "LogisticRegression(C=0.5, solver='saga')"


def test_pipeline_preview_lists_its_steps(round_trip):
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y)
    metadata = round_trip(model).preview["metadata"]
    assert metadata["steps"] == [
        ["standardscaler", "sklearn.preprocessing._data.StandardScaler"],
        ["logisticregression", "sklearn.linear_model._logistic.LogisticRegression"],
    ]
    assert metadata["fitted"] is True
    assert len(metadata["params"]["steps"]) <= 100


def test_without_skops_estimators_are_pickled_with_a_warning_naming_it(tmp_path):
    """A user with scikit-learn but not the extra: steps still run, their models pickled."""
    script = """
import sys, warnings

class NotInstalled:  # finds skops as Python does when it is not installed
    def find_spec(self, name, path, target=None):
        if name.partition(".")[0] == "skops":
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

sys.meta_path.insert(0, NotInstalled())
from sklearn.linear_model import LogisticRegression
from branchwork.materializers import materializer_for
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    cls = materializer_for(LogisticRegression, LogisticRegression())
print(cls.__name__)
print(*(str(warning.message) for warning in caught), sep="\\n")
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "CloudpickleMaterializer",
        "sklearn values will be stored as cloudpickles: their materializer "
        "branchwork.materializers.sklearn_materializer:SklearnMaterializer needs skops, which "
        "is not installed (install branchwork's extra for sklearn).",
    ]


@step
def train(c: float) -> Pipeline:
    return make_pipeline(StandardScaler(), LogisticRegression(C=c)).fit(X, Y)


@step
def evaluate(model: Pipeline) -> float:
    return float(model.score(X, Y))


@pipeline(enable_cache=False)
def training(c: float):
    return evaluate(train(c))


def test_a_model_passes_between_steps():
    score = training(c=1.0)
    assert score == make_pipeline(StandardScaler(), LogisticRegression()).fit(X, Y).score(X, Y)
    output = training.last_run.steps["train"].output
    assert output.materializer == materializer_path(SklearnMaterializer)
    assert artifact_store_for_uri(output.uri).listdir(output.uri) == ["model.skops"]
    assert output.preview["metadata"]["class"] == "sklearn.pipeline.Pipeline"
    assert [name for name, _ in output.load().steps] == ["standardscaler", "logisticregression"]
