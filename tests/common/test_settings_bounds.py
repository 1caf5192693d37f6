"""Every setting a domain.yaml, the launchpad or a resource accepts is bounded, so a new field cannot
arrive unbounded: a number has a lower and an upper bound, a list a maximum length. The sections a
domain.yaml sets (written by anyone who can write to the landing folder) are typed strictly too: an
int takes ints only (not 1.0e+12, true or "8"), a float refuses NaN and inf, a string is a closed
choice or has a maximum length. (A resource is configured by the operator; its bounds suffice.)"""

import importlib
import inspect
import math
import pkgutil
import types
from typing import Literal, Union, get_args, get_origin

import annotated_types as at
import dagster as dg
import pytest
from pydantic import BaseModel, Strict, ValidationError
from pydantic.fields import FieldInfo

import assets.settings
import resources


def _models(package: types.ModuleType, base: type) -> list[type]:
    found = {}
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        for _, cls in inspect.getmembers(importlib.import_module(info.name), inspect.isclass):
            if issubclass(cls, base) and cls.__module__ == info.name:
                found[cls.__qualname__] = cls
    return [found[name] for name in sorted(found)]


SETTINGS = _models(assets.settings, BaseModel)  # the sections of domain.yaml and the launchpad
RESOURCES = _models(resources, dg.ConfigurableResource)
FIELDS = [
    pytest.param(model, name, field, id=f"{model.__name__}.{name}")
    for model in SETTINGS + RESOURCES
    for name, field in model.model_fields.items()
]


def test_the_sweep_sees_every_section_and_the_compute_settings() -> None:
    names = {model.__name__ for model in SETTINGS + RESOURCES}
    assert {"CleaningConfig", "TokenizationConfig", "QLoraConfig", "EvaluationConfig", "MergeConfig", "ComputeSettings"} <= names


def _kind(annotation: object) -> object:
    """int, float, str, list, bool or Literal, with `X | None` unwrapped."""
    if get_origin(annotation) in (Union, types.UnionType):
        (annotation,) = [arg for arg in get_args(annotation) if arg is not type(None)]
    return get_origin(annotation) or annotation


def _has(field: FieldInfo, *kinds: type) -> bool:
    return any(isinstance(item, kinds) for item in field.metadata)


@pytest.mark.parametrize(("model", "name", "field"), FIELDS)
def test_every_setting_is_bounded(model: type[BaseModel], name: str, field: FieldInfo) -> None:
    kind = _kind(field.annotation)
    if kind in (int, float):
        assert _has(field, at.Ge, at.Gt), f"{model.__name__}.{name} has no lower bound"
        assert _has(field, at.Le, at.Lt), f"{model.__name__}.{name} has no upper bound"
    if kind is int and model in SETTINGS:
        # Lax ints take 1.0e+12, true and "8": a float or a string in a domain.yaml is a mistake, said so.
        assert _has(field, Strict), f"{model.__name__}.{name} takes floats, booleans and strings as ints"
    if kind is float and model in SETTINGS:
        assert model.model_config.get("allow_inf_nan") is False, f"{model.__name__} accepts NaN and inf"
    if kind is str and model in SETTINGS:
        assert _has(field, at.MaxLen), f"{model.__name__}.{name}: a free string with no maximum length"
    if kind is list:
        assert _has(field, at.MaxLen), f"{model.__name__}.{name}: a list with no maximum length"
    assert kind in (int, float, str, list, bool, Literal), f"{model.__name__}.{name}: add a rule for {kind}"


def _upper(field: FieldInfo) -> float:
    for item in field.metadata:
        if isinstance(item, at.Le):
            return item.le
        if isinstance(item, at.Lt):
            return item.lt
    raise AssertionError("no upper bound")


NUMBERS = [param for param in FIELDS if _kind(param.values[2].annotation) in (int, float)]


@pytest.mark.parametrize(("model", "name", "field"), NUMBERS)
def test_past_the_upper_bound_is_refused_and_the_default_is_inside(model: type[BaseModel], name: str, field: FieldInfo) -> None:
    top = _upper(field)
    assert field.default <= top
    too_big = top * 2 + 1 if _kind(field.annotation) is int else top * 2 + 1.0
    wrong = (math.inf, math.nan) if _kind(field.annotation) is float else (float(top),) if model in SETTINGS else ()
    for value in (too_big, *wrong):
        with pytest.raises(ValidationError):
            model(**{name: value})


def test_the_training_time_limit_reaches_the_launchpad() -> None:
    from assets.settings.training import QLoraConfig
    from assets.training.assets import QLoraRunConfig

    assert QLoraRunConfig(max_train_minutes=30).max_train_minutes == 30
    with pytest.raises(ValidationError):
        QLoraRunConfig(max_train_minutes=7 * 24 * 60 + 1)
    assert QLoraConfig.model_fields["max_train_minutes"].description
