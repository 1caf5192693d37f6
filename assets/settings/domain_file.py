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

Anyone who can write to the landing folder writes this file, so it is read as plain YAML only
(safe_yaml.py: at most 64 KiB, no anchors, aliases, merge keys or tags, nesting at most 8 deep), a
link to it must stay inside the landing root, and every number it sets has both bounds.
"""

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from assets.settings.cleaning import CleaningConfig
from assets.settings.evaluation import EvaluationConfig
from assets.settings.merge import MergeConfig
from assets.settings.safe_yaml import RefusedYaml, load_plain_yaml, read_capped, shorten
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
    """Parse and validate every section of `path`; {} when the file does not exist.

    The file is read through `safe_yaml` (size cap, no aliases/anchors/tags, bounded nesting). Every
    error is raised `from None`: the message says all (file, line, key), and a chained YAML or
    pydantic traceback would only repeat the file's content in the run log.
    """
    if not path.is_file():
        return {}
    try:
        text = read_capped(_settings_target(path))
        data, root = load_plain_yaml(text)
    except RefusedYaml as error:
        raise DomainSettingsError(f"{path}{_at(error.line)}: {error}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise DomainSettingsError(f"{path}: expected a mapping of sections ({', '.join(SECTIONS)})")
    lines = _key_lines(root)
    for section, values in data.items():
        where = _at(lines.get((str(section),)))
        if section not in SECTIONS:
            raise DomainSettingsError(f"{path}{where}: unknown section {shorten(section)!r}; known: {', '.join(SECTIONS)}")
        if not isinstance(values, dict):
            raise DomainSettingsError(f"{path}{where}: section {section!r} must be a mapping")
        try:
            SECTIONS[section].model_validate(values)
        except ValidationError as error:
            first = error.errors()[0]
            loc = tuple(map(str, first["loc"]))
            line = lines.get((section, *loc[:1]), lines.get((section,)))
            key = shorten(".".join((section, *loc)))
            raise DomainSettingsError(f"{path}{_at(line)}: {key}: {shorten(first['msg'], 300)}") from None
    return data


def _settings_target(path: Path) -> Path:
    """The file to read for `path`: itself, or the target of a link that stays inside the landing root.

    Data files follow the same rule (corpora/listing.py): a link out of the landing root would let a
    domain folder show (in error messages) and apply settings from any file the service can read.
    """
    if not path.is_symlink():
        return path
    target, root = path.resolve(), path.parent.parent.resolve()
    if not target.is_relative_to(root):
        raise RefusedYaml(f"is a symlink to {shorten(str(target))}, outside the landing root {root}; "
                          "copy the file into the domain folder instead")
    return target


def _at(line: int | None) -> str:
    return f" line {line}" if line else ""


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
