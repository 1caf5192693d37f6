"""domain.yaml: validated per section, errors that name file, line and key, clear precedence."""

from pathlib import Path

import pytest

from assets.settings.domain_file import DomainSettingsError, effective_config, load_domain_settings
from assets.settings.evaluation import EvaluationConfig
from assets.settings.training import QLoraConfig


def settings(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "domain.yaml"
    path.write_text(text)
    return path


def test_missing_or_empty_file_means_no_overrides(tmp_path: Path) -> None:
    assert load_domain_settings(tmp_path / "domain.yaml") == {}
    assert load_domain_settings(settings(tmp_path, "# nothing here\n")) == {}


def test_valid_sections_are_returned(tmp_path: Path) -> None:
    path = settings(tmp_path, "training:\n  lora_rank: 16\nevaluation:\n  min_improvement: 0.1\n")
    assert load_domain_settings(path) == {"training": {"lora_rank": 16}, "evaluation": {"min_improvement": 0.1}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training:\n  lora_rank: 8\n  lora_rnak: 4\n", "line 3: training.lora_rnak: Extra inputs are not permitted"),
        ("cleaning:\n  min_chars: -3\n", "line 2: cleaning.min_chars: Input should be greater than or equal to 1"),
        ("merge:\n  dtype: int8\n", "line 2: merge.dtype: Input should be 'float32', 'bfloat16' or 'float16'"),
        ("trainig:\n  lora_rank: 8\n", "line 1: unknown section 'trainig'"),
        ("training: 8\n", "line 1: section 'training' must be a mapping"),
        ("- a\n- b\n", "expected a mapping of sections"),
        ("training: {lora_rank: 8\n", "not valid YAML"),
        ("cleaning:\n  min_chars: 500\n  max_chars: 100\n", "line 1: cleaning: Value error, min_chars (500) exceeds max_chars (100)"),
    ],
)
def test_errors_name_the_file_the_line_and_the_key(tmp_path: Path, text: str, expected: str) -> None:
    path = settings(tmp_path, text)
    with pytest.raises(DomainSettingsError) as error:
        load_domain_settings(path)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)


def test_precedence_defaults_then_yaml_then_launchpad_changes() -> None:
    launchpad = QLoraConfig(epochs=5)  # only epochs differs from the defaults
    config = effective_config(QLoraConfig, launchpad, {"lora_rank": 16, "epochs": 2})
    assert (config.lora_rank, config.epochs, config.learning_rate) == (16, 5, QLoraConfig().learning_rate)
    assert effective_config(EvaluationConfig, EvaluationConfig(), {}) == EvaluationConfig()


def test_domain_yml_is_read_like_domain_yaml_and_both_is_an_error(tmp_path):
    from assets.settings.domain_file import DomainSettingsError, load_domain_folder_settings

    (tmp_path / "domain.yml").write_text("training: {lora_rank: 16}\n")
    assert load_domain_folder_settings(tmp_path) == {"training": {"lora_rank": 16}}
    (tmp_path / "domain.yaml").write_text("training: {lora_rank: 4}\n")
    with pytest.raises(DomainSettingsError, match="holds both domain.yaml and domain.yml: keep one"):
        load_domain_folder_settings(tmp_path)
    assert load_domain_folder_settings(tmp_path / "missing") == {}


def test_training_has_a_time_limit_settable_in_domain_yaml(tmp_path: Path) -> None:
    assert QLoraConfig().max_train_minutes == 720  # 12 h unless a domain or the launchpad says otherwise
    assert load_domain_settings(settings(tmp_path, "training:\n  max_train_minutes: 30\n")) == {"training": {"max_train_minutes": 30}}
    with pytest.raises(DomainSettingsError, match="line 2: training.max_train_minutes: Input should be less than or equal to 10080"):
        load_domain_settings(settings(tmp_path, "training:\n  max_train_minutes: 20000\n"))
