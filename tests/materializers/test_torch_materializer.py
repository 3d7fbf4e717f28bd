"""PyTorch tensors, state_dicts and modules as safetensors."""

from __future__ import annotations

import re
import sys
from collections import OrderedDict

import pytest

torch = pytest.importorskip("torch", reason="the torch extra is not installed")
safetensors = pytest.importorskip("safetensors", reason="the torch extra is not installed")

from branchwork import pipeline, step  # noqa: E402
from branchwork.artifact_stores import artifact_store_for_uri  # noqa: E402
from branchwork.exceptions import ArtifactError  # noqa: E402
from branchwork.materializers import (  # noqa: E402
    CollectionMaterializer,
    cloudpickle_materializer,
    load_artifact,
    materializer_for,
    register_materializer,
    registry,
    save_artifact,
)
from branchwork.materializers.base import BaseMaterializer  # noqa: E402
from branchwork.materializers.registry import materializer_path  # noqa: E402
from branchwork.materializers.torch_materializer import (  # noqa: E402
    STATS_VALUES,
    TorchMaterializer,
    _file_content,
)

# Details of the format are checked on the local store only; the round trips run on S3 too.
LOCAL_ONLY = pytest.mark.parametrize("artifact_store", ["local"], indirect=True)


class TinyNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = torch.nn.Linear(3, 4)
        self.out = torch.nn.Linear(4, 2)
        self.register_buffer("steps", torch.tensor(0))

    def forward(self, x):
        return self.out(torch.relu(self.hidden(x)))


class WithExtraState(TinyNet):
    def get_extra_state(self):
        return {"epoch": 3}

    def set_extra_state(self, state):
        self.epoch = state["epoch"]


class Tagged(torch.Tensor):
    """A tensor subclass: safetensors would drop the class."""


class SizedNet(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, width)


def same_bytes(a, b) -> bool:
    return torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))


def assert_same_tensor(loaded, tensor):
    assert type(loaded) is type(tensor)
    assert (loaded.dtype, loaded.shape, loaded.requires_grad) == (
        tensor.dtype,
        tensor.shape,
        tensor.requires_grad,
    )
    assert same_bytes(loaded.detach(), tensor.detach().contiguous())


DTYPES = [
    *(torch.float64, torch.float32, torch.float16, torch.bfloat16, torch.complex64),
    *(torch.float8_e4m3fn, torch.float8_e5m2, torch.bool),
    *(torch.int64, torch.int32, torch.int16, torch.int8),
    *(torch.uint64, torch.uint32, torch.uint16, torch.uint8),
]


@LOCAL_ONLY
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_tensors_of_every_safetensors_dtype_round_trip(round_trip, dtype):
    tensor = torch.arange(-6, 6, dtype=torch.float32).reshape(3, 4).to(dtype)
    result = round_trip(tensor)
    assert result.materializer is TorchMaterializer
    assert (result.files, result.warnings) == (["tensor.safetensors"], [])
    assert_same_tensor(result.loaded, tensor)


@pytest.mark.parametrize(
    "tensor",
    [
        torch.arange(12.0).reshape(3, 4).T,  # not contiguous
        torch.arange(12.0)[2:5],  # a view of a larger storage
        torch.tensor(2.5),  # 0-d
        torch.empty(0, 3),
        torch.ones(2, 2, requires_grad=True),
        torch.nn.Parameter(torch.ones(3)),
        torch.nn.Parameter(torch.ones(3), requires_grad=False),
    ],
    ids=["transposed", "view", "scalar", "empty", "requires_grad", "parameter", "frozen"],
)
def test_tensors_keep_type_dtype_shape_values_and_requires_grad(round_trip, tensor):
    result = round_trip(tensor)
    assert (result.files, result.warnings) == (["tensor.safetensors"], [])
    assert_same_tensor(result.loaded, tensor)


@LOCAL_ONLY
@pytest.mark.parametrize(
    ("tensor", "warning"),
    [
        (torch.eye(3).to_sparse(), "torch.Tensor values with layout torch.sparse_coo"),
        (torch.ones(2, dtype=torch.complex128), "torch.Tensor values with dtype torch.complex128"),
        (torch.ones(2).as_subclass(Tagged), f"{__name__}.Tagged values of type {__name__}.Tagged"),
    ],
    ids=["sparse", "complex128", "subclass"],
)
def test_tensors_safetensors_cannot_hold_are_pickled_with_a_warning(
    round_trip, monkeypatch, tensor, warning
):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(tensor)
    assert result.files == ["data.pkl"]
    assert result.warnings[0].startswith(f"{warning} are stored as cloudpickles")
    assert torch.equal(result.loaded.to_dense(), tensor.to_dense())


def test_a_state_dict_keeps_its_container_key_order_and_tensors(round_trip):
    state_dict = TinyNet().state_dict()
    result = round_trip(state_dict)
    loaded = result.loaded
    assert result.materializer is TorchMaterializer
    assert (result.files, result.warnings) == (["state_dict.safetensors"], [])
    assert type(loaded) is OrderedDict
    assert list(loaded) == ["steps", "hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    for key, tensor in state_dict.items():
        assert_same_tensor(loaded[key], tensor)


def test_a_dict_of_parameters_keeps_them_parameters_that_require_grad(round_trip):
    """`dict(model.named_parameters())` used to load as plain tensors without grad."""
    parameters = dict(TinyNet().named_parameters())
    parameters["hidden.bias"].requires_grad_(False)
    mixed = {**parameters, "grad": torch.ones(2, requires_grad=True), "plain": torch.zeros(2)}
    result = round_trip(mixed)
    assert (result.files, result.warnings) == (["state_dict.safetensors"], [])
    assert list(result.loaded) == list(mixed)
    for key, tensor in mixed.items():
        assert_same_tensor(result.loaded[key], tensor)
    assert [key for key, t in result.loaded.items() if t.requires_grad] == [
        "hidden.weight",
        "out.weight",
        "out.bias",
        "grad",
    ]


def test_a_plain_dict_of_tensors_sharing_storage_loads_as_separate_copies(round_trip):
    base = torch.arange(6.0)
    state_dict = {"z": base, "tied": base, "view": base[1:3], "t": base.reshape(2, 3).T}
    result = round_trip(state_dict)
    loaded = result.loaded
    assert (result.materializer, result.files, type(loaded), list(loaded)) == (
        TorchMaterializer,
        ["state_dict.safetensors"],
        dict,
        ["z", "tied", "view", "t"],
    )
    for key, tensor in state_dict.items():
        assert_same_tensor(loaded[key], tensor)
    storages = {tensor.untyped_storage().data_ptr() for tensor in loaded.values()}
    assert len(storages) == 4


@pytest.mark.parametrize("value", [{"a": 1}, {}, {"a": torch.ones(1), "b": 2}, {1: torch.ones(1)}])
def test_dicts_that_are_not_state_dicts_stay_with_the_builtin_materializer(value):
    assert materializer_for(dict, value) is CollectionMaterializer


class DictMaterializer(CollectionMaterializer):
    ASSOCIATED_TYPES = (dict,)


def test_a_registration_for_dict_wins_over_the_state_dict_claim(monkeypatch):
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_resolved", {})
    register_materializer(DictMaterializer)
    assert materializer_for(dict, {"w": torch.ones(1)}) is DictMaterializer


@LOCAL_ONLY
def test_the_same_values_give_the_same_content_hash(round_trip):
    state_dict = TinyNet().state_dict()
    first = round_trip(state_dict).content_hash
    assert round_trip(OrderedDict(state_dict)).content_hash == first
    assert round_trip(dict(state_dict)).content_hash != first  # another container
    changed = OrderedDict(state_dict, steps=torch.tensor(1))
    assert round_trip(changed).content_hash != first


def test_a_module_is_rebuilt_from_its_class_and_state_dict(round_trip):
    model = TinyNet().eval()
    result = round_trip(model)
    loaded = result.loaded
    assert result.materializer is TorchMaterializer
    assert (result.files, result.warnings) == (["module.json", "state_dict.safetensors"], [])
    assert type(loaded) is TinyNet and loaded.training is False
    for key, tensor in model.state_dict().items():
        assert_same_tensor(loaded.state_dict()[key], tensor)
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), model(x))


@LOCAL_ONLY
@pytest.mark.parametrize(
    ("model", "reason"),
    [
        (SizedNet(3), r"SizedNet\(\) needs arguments \(width\)"),
        (TinyNet().half(), r"TinyNet\(\) makes weight 'hidden.weight' \[4, 3\] float32, the "),
        (torch.nn.Sequential(torch.nn.Linear(2, 2)), "Sequential\\(\\) makes weight '0.weight'"),
        (WithExtraState(), "its state_dict holds a value of type dict"),
    ],
    ids=["arguments", "dtype", "structure", "extra_state"],
)
def test_a_module_its_class_cannot_rebuild_is_pickled_with_a_warning(
    round_trip, monkeypatch, model, reason
):
    monkeypatch.setattr(cloudpickle_materializer, "_warned", set())
    result = round_trip(model)
    assert result.files == ["data.pkl"]
    assert re.search(f"whose model cannot be rebuilt \\({reason}.*state_dict", result.warnings[0])
    assert type(result.loaded) is type(model)


MODEL_SOURCE = """
import torch

class Net(torch.nn.Module):
    def __init__(self{parameters}):
        super().__init__()
        self.layer = torch.nn.Linear(2, 3)
"""


@LOCAL_ONLY
def test_loading_a_module_whose_class_now_needs_arguments_says_to_return_the_state_dict(
    artifact_store, tmp_path, monkeypatch
):
    """The class changed between saving and loading: its constructor gained a parameter."""
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    monkeypatch.syspath_prepend(str(tmp_path))
    source = tmp_path / "changing_model.py"
    source.write_text(MODEL_SOURCE.format(parameters=""))
    from changing_model import Net

    uri = artifact_store.new_artifact_uri("model")
    save_artifact(Net(), uri, artifact_store, TorchMaterializer)
    assert sorted(artifact_store.listdir(uri)) == ["module.json", "state_dict.safetensors"]
    source.write_text(MODEL_SOURCE.format(parameters=", width: int"))
    monkeypatch.delitem(sys.modules, "changing_model")
    with pytest.raises(ArtifactError) as error:
        load_artifact(uri, materializer_path(TorchMaterializer), store=artifact_store)
    assert (
        "Cannot rebuild the torch module changing_model:Net: Net() needs arguments (width). "
        "Return `model.state_dict()` from the step instead "
        "(stored as safetensors) and build the model where it is loaded."
    ) in str(error.value)


@LOCAL_ONLY
def test_tensor_preview_gives_shape_dtype_and_statistics(round_trip):
    tensor = torch.tensor([[1.0, 2.0], [3.0, float("nan")]])
    preview = round_trip(tensor).preview
    assert preview == {
        "text": "tensor [2, 2] float32",
        "metadata": {
            "shape": [2, 2],
            "dtype": "float32",
            "numel": 4,
            "device": "cpu",
            "min": None,  # NaN, which JSON cannot hold
            "max": None,
            "mean": None,
        },
    }
    preview = round_trip(torch.arange(4.0)).preview
    assert {key: preview["metadata"][key] for key in ("min", "max", "mean")} == {
        "min": 0.0,
        "max": 3.0,
        "mean": 1.5,
    }
    assert "min" not in round_trip(torch.arange(4)).preview["metadata"]


@LOCAL_ONLY
@pytest.mark.parametrize("transposed", [False, True], ids=["contiguous", "transposed"])
def test_a_big_tensor_preview_gives_statistics_of_evenly_spaced_values(round_trip, transposed):
    values = torch.arange(3.0 * STATS_VALUES)
    tensor = values.reshape(STATS_VALUES, 3).T.contiguous().T if transposed else values
    metadata = round_trip(tensor).preview["metadata"]
    assert metadata["stats_values"] == STATS_VALUES  # every third value, in index order
    assert {key: metadata[key] for key in ("min", "max", "mean")} == {
        "min": 0.0,
        "max": 3.0 * STATS_VALUES - 3,
        "mean": pytest.approx(1.5 * (STATS_VALUES - 1), rel=1e-5),  # 6 significant digits
    }
    assert "stats_values" not in round_trip(torch.arange(float(STATS_VALUES))).preview["metadata"]


def state_dict_of_every_dtype() -> dict[str, torch.Tensor]:
    """1.3 MB (a big file) of tensors of every dtype, named with quotes and accents."""
    values = torch.arange(-50_000, 50_000, dtype=torch.float32)
    return {f'w "{dtype}" é': values.to(dtype) for dtype in DTYPES}


def test_the_file_safetensors_will_write_is_known_before_it_writes():
    # hashed from the tensors' memory as safetensors writes them: the same bytes, in order
    tensors = state_dict_of_every_dtype()
    header = {"branchwork": '{"keys": ["a\\"b"]}'}
    foretold = b"".join(bytes(part) for part in _file_content(tensors, header))
    assert foretold == safetensors.torch.save(tensors, header)


@LOCAL_ONLY
def test_a_big_state_dict_is_hashed_as_its_file_is(round_trip, artifact_store):
    result = round_trip(state_dict_of_every_dtype())
    assert result.files == ["state_dict.safetensors"]
    assert result.content_hash == BaseMaterializer(result.uri, artifact_store).content_hash()
    assert all(same_bytes(result.loaded[k], v) for k, v in state_dict_of_every_dtype().items())


@LOCAL_ONLY
def test_state_dict_preview_lists_keys_with_shapes_bounded(round_trip):
    state_dict = {f"layer{i}.weight": torch.zeros(i + 1, 2) for i in range(45)}
    preview = round_trip(state_dict).preview
    metadata = preview["metadata"]
    assert (metadata["tensors"], metadata["numel"]) == (45, sum(2 * (i + 1) for i in range(45)))
    assert len(metadata["keys"]) == 40
    assert metadata["keys"]["layer1.weight"] == "[2, 2] float32"
    assert preview["text"].splitlines()[0] == "layer0.weight: [1, 2] float32"
    assert preview["text"].splitlines()[-1] == "... 5 more"


@LOCAL_ONLY
def test_module_preview_gives_its_class_and_parameter_count(round_trip):
    model = TinyNet()
    model.hidden.requires_grad_(False)
    preview = round_trip(model).preview
    assert preview["metadata"] == {
        "class": f"{__name__}:TinyNet",
        "parameters": 3 * 4 + 4 + 4 * 2 + 2,
        "trainable": 4 * 2 + 2,
        "training": True,
    }
    assert preview["text"].startswith("TinyNet(\n  (hidden): Linear(in_features=3")


@step
def train() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@step
def weights(model: TinyNet) -> dict[str, torch.Tensor]:
    return model.state_dict()


@step
def predict(model: TinyNet, state_dict: dict[str, torch.Tensor]) -> torch.Tensor:
    rebuilt = TinyNet()
    rebuilt.load_state_dict(state_dict)
    x = torch.ones(2, 3)
    assert torch.equal(rebuilt(x), model(x))
    return model(x).detach()


@step
def total(prediction: torch.Tensor) -> float:
    return float(prediction.sum())


@pipeline(enable_cache=False)
def modelling():
    model = train()
    return total(predict(model, weights(model)))


def test_modules_state_dicts_and_tensors_pass_between_steps():
    result = modelling()
    torch.manual_seed(0)
    with torch.no_grad():
        assert result == pytest.approx(float(TinyNet()(torch.ones(2, 3)).sum()))
    steps = modelling.last_run.steps
    files = {
        "train": ["module.json", "state_dict.safetensors"],
        "weights": ["state_dict.safetensors"],
        "predict": ["tensor.safetensors"],
    }
    for name, expected in files.items():
        output = steps[name].output
        assert output.materializer == materializer_path(TorchMaterializer)
        assert sorted(artifact_store_for_uri(output.uri).listdir(output.uri)) == expected
    assert type(steps["weights"].output.load()) is OrderedDict
    assert steps["train"].output.preview["metadata"]["class"] == f"{__name__}:TinyNet"
