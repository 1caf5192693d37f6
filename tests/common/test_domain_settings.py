"""domain.yaml: validated per section, errors that name file, line and key, clear precedence."""

from pathlib import Path

import pytest

from assets.settings.domain_file import DomainSettingsError, effective_config, load_domain_settings
from assets.settings.evaluation import EvaluationConfig
from assets.settings.safe_yaml import MAX_BYTES
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


# --- a domain.yaml written by someone else: bounded in size, shape and error text -------------------

ALIAS_BOMB = "".join(  # each line ten times the one before: 10**7 strings from ~250 bytes
    [f"l0: &l0 [{','.join(['x'] * 10)}]\n"]
    + [f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 7)]
    + ["training: {lora_rank: *l6}\n"]
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ALIAS_BOMB, "line 1: anchor &l0 refused: YAML anchors and aliases are not allowed"),
        ("training:\n  lora_rank: &r 8\n", "line 2: anchor &r refused"),
        ("training:\n  lora_rank: *r\n", "line 2: alias *r refused"),
        ("training:\n  <<: {lora_rank: 8}\n", "line 2: merge key << refused"),
        ("training:\n  lora_rank: !!int 8\n", "line 2: tag tag:yaml.org,2002:int refused"),
        ("training: !!python/object/apply:os.getpid []\n", "line 1: tag tag:yaml.org,2002:python/object/apply:os.getpid refused"),
        ("training:\n  lora_rank: 8\n  seed: 1\n  lora_rank: 16\n", "line 4: key 'lora_rank' appears twice (first on line 2)"),
        ("training:\n  ? [a, b]\n  : 1\n", "line 2: a key must be a plain name"),
        ("training:\n  1: 2\n", "line 2: training.1: Keys should be strings"),
        ("training: " + "[" * 30_000 + "]" * 30_000 + "\n", "line 1: nested deeper than 8 levels"),
        ("".join(" " * depth + "k:\n" for depth in range(40)), "line 9: nested deeper than 8 levels"),
        ("training: {seed: 1}\x07\n", "line 1: not valid YAML: control character U+0007 is not allowed"),
        ("training: {}\n---\nmerge: {}\n", "line 2: not valid YAML"),
    ],
    ids=["alias-bomb", "anchor", "alias", "merge-key", "tag", "python-tag", "duplicate-key", "complex-key",
         "number-key", "deep-flow", "deep-block", "control-character", "two-documents"],
)
def test_yaml_features_a_settings_file_does_not_need_are_refused_by_line(tmp_path: Path, text: str, expected: str) -> None:
    path = settings(tmp_path, text)
    with pytest.raises(DomainSettingsError) as error:
        load_domain_settings(path)
    assert str(error.value).startswith(str(path)) and expected in str(error.value)


def test_a_file_over_64_kib_is_refused_without_reading_it_whole(tmp_path: Path) -> None:
    fits = "training:\n  lora_rank: 8\n"
    path = settings(tmp_path, fits + "#" * (MAX_BYTES - len(fits) - 1) + "\n")
    assert load_domain_settings(path) == {"training": {"lora_rank": 8}}  # exactly at the limit: read
    with path.open("a") as handle:
        handle.write("#")
    with pytest.raises(DomainSettingsError, match=r"domain.yaml: is 65,537 bytes; a settings file may hold at most 64 KiB"):
        load_domain_settings(path)
    with path.open("r+b") as handle:  # 100 MB of (sparse) zeros: only 64 KiB + 1 of it is read
        handle.truncate(100 * 2**20)
    with pytest.raises(DomainSettingsError, match=r"is 104,857,600 bytes"):
        load_domain_settings(path)


def test_text_that_is_not_utf8_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "domain.yaml"
    path.write_bytes("tokenization:\n  split_salt: caf\xe9\n".encode("latin-1"))
    with pytest.raises(DomainSettingsError, match=r"domain.yaml line 2: is not UTF-8 text"):
        load_domain_settings(path)


@pytest.mark.parametrize("text", ["training:\n  lora_rank: 0\n", "training: {lora_rank: 8\n", "training:\n  lora_rank: *r\n"])
def test_errors_are_raised_from_none(tmp_path: Path, text: str) -> None:
    # A chained ValidationError or YAMLError would print the file's content again under the message.
    with pytest.raises(DomainSettingsError) as error:
        load_domain_settings(settings(tmp_path, text))
    assert error.value.__cause__ is None and error.value.__suppress_context__


@pytest.mark.parametrize(
    "text",
    [
        "training:\n  " + "k" * 900 + ": 1\n",
        "y" * 900 + ": {}\n",
        "training:\n  target_modules: [" + ", ".join(["all-linear", "q_proj"] * 32) + "]\n",
        "cleaning:\n  languages: [" + ", ".join(["english"] * 200) + "]\n",
    ],
    ids=["long-key", "long-section", "long-list-in-a-rule", "long-list-of-bad-codes"],
)
def test_error_messages_never_echo_a_huge_value(tmp_path: Path, text: str) -> None:
    path = settings(tmp_path, text)
    with pytest.raises(DomainSettingsError) as error:
        load_domain_settings(path)
    assert len(str(error.value)) < len(str(path)) + 450, str(error.value)


def test_a_settings_file_linked_from_outside_the_landing_root_is_refused(tmp_path: Path) -> None:
    landing, elsewhere = tmp_path / "landing", tmp_path / "elsewhere"
    (landing / "news").mkdir(parents=True)
    (landing / ".shared").mkdir()
    elsewhere.mkdir()
    (elsewhere / "secrets.yaml").write_text("api_key: hunter2\n")
    (landing / ".shared" / "domain.yaml").write_text("training: {lora_rank: 16}\n")
    link = landing / "news" / "domain.yaml"
    link.symlink_to(elsewhere / "secrets.yaml")
    with pytest.raises(DomainSettingsError, match="is a symlink to .*, outside the landing root") as error:
        load_domain_settings(link)
    assert "hunter2" not in str(error.value) and "api_key" not in str(error.value)
    link.unlink()
    link.symlink_to(landing / ".shared" / "domain.yaml")  # shared settings inside the landing root: read
    assert load_domain_settings(link) == {"training": {"lora_rank": 16}}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("training:\n  max_steps: 1000000000000\n", "line 2: training.max_steps: Input should be less than or equal to 1000000"),
        ("training:\n  gradient_accumulation: 1000000000\n", "training.gradient_accumulation: Input should be less than or equal to 1024"),
        ("cleaning:\n  batch_rows: 1000000000\n", "cleaning.batch_rows: Input should be less than or equal to 131072"),
        ("training:\n  epochs: 100000.0\n", "training.epochs: Input should be less than or equal to 100"),
        ("training:\n  max_steps: 1.0e+6\n", "training.max_steps: Input should be a valid integer"),
        ("training:\n  lora_rank: 8.0\n", "training.lora_rank: Input should be a valid integer"),
        ("training:\n  batch_size: true\n", "training.batch_size: Input should be a valid integer"),
        ("training:\n  seed: '7'\n", "training.seed: Input should be a valid integer"),
        ("training:\n  weight_decay: .inf\n", "training.weight_decay: Input should be a finite number"),
        ("training:\n  lora_alpha: .nan\n", "training.lora_alpha: Input should be a finite number"),
        ("merge:\n  parity_tolerance: 1.0e+9\n", "merge.parity_tolerance: Input should be less than or equal to 10"),
        ("evaluation:\n  compute_dtype: float64\n", "evaluation.compute_dtype: Input should be 'auto', 'bfloat16' or 'float32'"),
    ],
)
def test_numbers_are_bounded_and_typed(tmp_path: Path, text: str, expected: str) -> None:
    path = settings(tmp_path, text)
    with pytest.raises(DomainSettingsError) as error:
        load_domain_settings(path)
    assert expected in str(error.value), str(error.value)
