"""The merged model's card (assets/release/model_card.py) and the recorded library versions
(assets/common/versions.py)."""

import json
import re
from importlib import metadata

import pytest
import yaml

from assets.common.versions import TRACKED, library_versions
from assets.release.model_card import render_model_card


def make_lineage(**overrides):
    lineage = {
        "domain": "legal-contracts",
        "base_model": {"spec": "builtin:tiny-llama", "revision": None, "fingerprint": "f" * 64},
        "data_versions": {"raw_corpus": "raw-0123456789abcdef", "training_dataset": "tok-fedcba9876543210"},
        "adapter_path": "/artifacts/qlora_adapter/legal-contracts/run-1",
        "training": {"lora_r": 8, "lora_alpha": 16, "learning_rate": 0.0002, "max_steps": 40, "seed": 1234},
        "evaluation": {
            "eval_loss_base": 5.612345678,
            "eval_loss_adapter": 3.2104999,
            "perplexity_base": 273.9876,
            "perplexity_adapter": 24.7891,
        },
        "merge": {"dtype": "float32", "max_abs_logit_diff": 0.000012345, "eval_loss_merged": 3.21051234},
        "dagster_run_id": "4f1c2e9a-run-id",
        "library_versions": {"torch": "2.13.0", "peft": "0.21.0"},
        "created_at": "2025-01-02T03:04:05Z",
    }
    lineage.update(overrides)
    return lineage


@pytest.fixture(scope="module")
def lineage():
    return make_lineage()


@pytest.fixture(scope="module")
def card(lineage):
    return render_model_card(lineage)


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    end = card.index("\n---\n", 4)
    return yaml.safe_load(card[4:end])


def lineage_block(card: str) -> dict:
    match = re.search(r"```json\n(.*?)\n```", card, re.S)
    assert match, "no json block"
    return json.loads(match.group(1))


def test_yaml_front_matter(card):
    meta = front_matter(card)
    assert meta == {
        "library_name": "transformers",
        "base_model": "builtin:tiny-llama",
        "tags": ["loraline", "qlora", "peft", "domain-legal-contracts"],
    }


def test_title_and_domain(card):
    assert "\n# legal-contracts: builtin:tiny-llama + QLoRA adapter, merged\n" in card
    assert "held-out split of `legal-contracts`" in card


def test_run_id_time_and_merge_dtype(card):
    assert "Dagster run `4f1c2e9a-run-id`" in card
    assert "2025-01-02T03:04:05Z" in card
    assert "(float32)" in card


def test_evaluation_numbers_are_formatted(card):
    assert "| base (4-bit) | 5.6123 | 273.99 |" in card
    assert "| base + adapter (4-bit) | 3.2105 | 24.79 |" in card
    assert "| this merged model | 3.2105 | |" in card
    assert "1.23e-05" in card  # merge parity


def test_lineage_table(card):
    assert "| base model | `builtin:tiny-llama` revision `-` |" in card
    assert f"| base model fingerprint | `{'f' * 64}` |" in card
    assert "| raw corpus data version | `raw-0123456789abcdef` |" in card
    assert "| training dataset data version | `tok-fedcba9876543210` |" in card


def test_training_configuration_rows(card, lineage):
    for key, value in lineage["training"].items():
        assert f"| {key} | `{value}` |" in card


def test_library_versions_line(card):
    assert "Libraries: torch 2.13.0, peft 0.21.0." in card


def test_json_block_parses_back_to_the_lineage(card, lineage):
    assert lineage_block(card) == lineage


def test_hub_base_with_revision():
    lineage = make_lineage(base_model={"spec": "org/name@abc123", "revision": "abc123", "fingerprint": "hub:org/name@abc123"})
    card = render_model_card(lineage)
    assert front_matter(card)["base_model"] == "org/name@abc123"
    assert "| base model | `org/name@abc123` revision `abc123` |" in card
    assert "`hub:org/name@abc123`" in card
    assert lineage_block(card) == lineage


def test_missing_revision_key_renders_dash():
    base = {"spec": "/models/base", "fingerprint": "a" * 64}  # no "revision" key at all
    card = render_model_card(make_lineage(base_model=base))
    assert "| base model | `/models/base` revision `-` |" in card
    assert front_matter(card)["base_model"] == "/models/base"


def test_non_json_values_are_stringified_in_the_block():
    from pathlib import Path

    card = render_model_card(make_lineage(adapter_path=Path("/a/b")))
    assert lineage_block(card)["adapter_path"] == "/a/b"


def test_card_with_real_library_versions():
    versions = library_versions()
    card = render_model_card(make_lineage(library_versions=versions))
    for name, version in versions.items():
        assert f"{name} {version}" in card
    assert lineage_block(card)["library_versions"] == versions


def test_local_path_with_yaml_special_characters_survives_front_matter():
    spec = "/models/run #2"
    card = render_model_card(make_lineage(base_model={"spec": spec, "revision": None, "fingerprint": "a" * 64}))
    assert front_matter(card)["base_model"] == spec


# --- library versions ---------------------------------------------------------------------------

def test_library_versions_cover_every_tracked_package():
    versions = library_versions()
    assert list(versions) == list(TRACKED)
    assert {"torch", "transformers", "peft", "bitsandbytes", "dagster", "polars"} <= set(versions)
    assert all(isinstance(v, str) and v for v in versions.values())


def test_library_versions_match_installed_metadata():
    versions = library_versions()
    for name in ("torch", "polars", "dagster"):
        assert versions[name] == metadata.version(name)


def test_missing_package_is_reported_not_raised(monkeypatch):
    import assets.common.versions as versions_module

    monkeypatch.setattr(versions_module, "TRACKED", ("polars", "surely-not-an-installed-package-xyz"))
    assert versions_module.library_versions() == {
        "polars": metadata.version("polars"),
        "surely-not-an-installed-package-xyz": "not installed",
    }


@pytest.mark.integration  # a fresh interpreter
def test_library_versions_does_not_import_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys; from assets.common.versions import library_versions; library_versions();"
        "heavy = {'torch', 'transformers', 'peft', 'bitsandbytes', 'great_expectations', 'dagster'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    from pathlib import Path

    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


def test_what_ran_rows_with_control_tokens_keep_the_table_intact():
    card = render_model_card(make_lineage(
        training_resolved={"compute_dtype": "bfloat16", "target_modules": ["qkv_proj", "o_proj"]},
        chat_template={"end_of_turn": "<|eot_id|>", "system_role": "native"},
    ))
    assert "| compute_dtype | `bfloat16` |" in card
    assert "| target_modules | `['qkv_proj', 'o_proj']` |" in card
    assert "| end_of_turn | `<\\|eot_id\\|>` |" in card  # an unescaped | would split the cell
    assert all(line.count("|") - line.count("\\|") == 3 for line in card.splitlines() if line.startswith("| end_of_turn"))
