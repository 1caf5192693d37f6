"""Per-domain settings as data: an optional `domain.yaml` beside a domain's landed files.

    # data/landing/support/domain.yaml
    cleaning:     {min_chars: 40}
    tokenization: {max_seq_len: 768}
    training:     {lora_rank: 16, epochs: 2}
    evaluation:   {min_improvement: 0.05}
    merge:        {dtype: bfloat16, parity_tolerance: 0.1}

Each section is validated against the same typed config the launchpad uses. An unknown section
or key, or a bad value, raises `DomainSettingsError` naming the file, the key and its line, and
only that domain fails. Precedence: defaults < domain.yaml < values set in the launchpad (a
launchpad field counts as set when it differs from the default).
"""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from assets.settings.cleaning import CleaningConfig
from assets.settings.evaluation import EvaluationConfig
from assets.settings.merge import MergeConfig
from assets.settings.tokenization import TokenizationConfig
from assets.settings.training import QLoraConfig

# A domain's settings file, under either name YAML users write; the reader never treats it as data.
SETTINGS_NAMES = ("domain.yaml", "domain.yml")
SECTIONS: dict[str, type[BaseModel]] = {
    "cleaning": CleaningConfig,
    "tokenization": TokenizationConfig,
    "training": QLoraConfig,
    "evaluation": EvaluationConfig,
    "merge": MergeConfig,
}
Config = TypeVar("Config", bound=BaseModel)


class DomainSettingsError(ValueError):
    """A domain.yaml that cannot be used; the message names the file, key and line."""


def settings_files(domain_dir: Path) -> list[Path]:
    """The settings files present in a domain's folder (at most one is allowed)."""
    return [domain_dir / name for name in SETTINGS_NAMES if (domain_dir / name).is_file()]


def load_domain_folder_settings(domain_dir: Path) -> dict[str, dict[str, Any]]:
    """The validated sections of the domain's domain.yaml or domain.yml; {} with neither; both is an error."""
    found = settings_files(domain_dir)
    if len(found) > 1:
        raise DomainSettingsError(f"{domain_dir} holds both {found[0].name} and {found[1].name}: keep one, so it is clear which applies")
    return load_domain_settings(found[0]) if found else {}


def load_domain_settings(path: Path) -> dict[str, dict[str, Any]]:
    """Parse and validate every section of `path`; {} when the file does not exist."""
    if not path.is_file():
        return {}
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text)
        lines = _key_lines(yaml.compose(text))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise DomainSettingsError(f"{path}{where}: not valid YAML: {getattr(error, 'problem', error)}") from error
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DomainSettingsError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)})")
    for section, values in data.items():
        if section not in SECTIONS:
            raise DomainSettingsError(
                f"{path} line {lines.get((section,), '?')}: unknown section {section!r}; known: {', '.join(SECTIONS)}"
            )
        if not isinstance(values, dict):
            raise DomainSettingsError(f"{path} line {lines.get((section,), '?')}: section {section!r} must be a mapping")
        try:
            SECTIONS[section](**values)
        except ValidationError as error:
            first = error.errors()[0]
            key = (section, *map(str, first["loc"][:1]))
            raise DomainSettingsError(
                f"{path} line {lines.get(key, lines.get((section,), '?'))}: {'.'.join(key)}: {first['msg']}"
            ) from error
    return data


def effective_config(cls: type[Config], launchpad: BaseModel, overrides: dict[str, Any]) -> Config:
    """The settings a run uses: class defaults, then domain.yaml, then launchpad values that differ from defaults."""
    defaults = cls().model_dump()
    chosen = {key: value for key, value in launchpad.model_dump().items() if key in defaults and value != defaults[key]}
    return cls(**{**overrides, **chosen})


def _key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """1-based line of every mapping key, by its path (section,) or (section, key)."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = (*prefix, str(key.value))
            lines[path] = key.start_mark.line + 1
            if len(path) < 2:
                lines.update(_key_lines(value, path))
    return lines
