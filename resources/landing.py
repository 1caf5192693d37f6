"""The landing zone: one folder per domain, where raw corpora arrive."""

import os
from pathlib import Path

import dagster as dg
from pydantic import BaseModel, Field

from assets.common.domains import InvalidDomainKey, validate_domain_key
from assets.settings.domain_file import SECTIONS, DomainSettingsError, effective_config, load_domain_folder_settings

DEFAULT_LANDING_DIR = "data/landing"


class LandingZone(dg.ConfigurableResource):
    """`<root>/<domain>/` holds a domain's files (jsonl, json, parquet, csv, txt)."""

    root: str = Field(
        "",
        description="Landing root. Empty: $LORALINE_LANDING_DIR, else data/landing "
        "(relative paths resolve against the working directory).",
    )

    settle_seconds: float = Field(
        30.0,
        ge=0,
        description="The landing sensor waits until every file of a domain is this many seconds "
        "old, so files still being written are not picked up.",
    )

    def root_path(self) -> Path:
        return Path(self.root or os.environ.get("LORALINE_LANDING_DIR") or DEFAULT_LANDING_DIR).resolve()

    def domain_dir(self, domain: str) -> Path:
        """The domain's folder; the key is validated before any path is built from it."""
        return self.root_path() / validate_domain_key(domain)

    def domain_settings(self, domain: str) -> dict[str, dict]:
        """The validated sections of the domain's domain.yaml or domain.yml ({} without one)."""
        try:
            return load_domain_folder_settings(self.domain_dir(domain))
        except DomainSettingsError as error:
            raise dg.Failure(f"domain {domain!r}: {error}") from error

    def effective_settings(self, domain: str, section: str, launchpad: BaseModel) -> BaseModel:
        """What a step uses for this domain: defaults < its domain.yaml section < launchpad changes."""
        return effective_config(SECTIONS[section], launchpad, self.domain_settings(domain).get(section, {}))

    def domain_folders(self) -> tuple[list[str], list[str]]:
        """(valid domain keys, folder names that are not valid keys), both sorted."""
        root = self.root_path()
        if not root.is_dir():
            return [], []
        valid, invalid = [], []
        for child in sorted(root.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            try:
                valid.append(validate_domain_key(child.name))
            except InvalidDomainKey:
                invalid.append(child.name)
        return valid, invalid
