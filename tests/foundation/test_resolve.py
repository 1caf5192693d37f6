"""Resolving the base-model setting (assets/foundation/resolve.py): parse, build, fingerprint."""

import shutil

import pytest

from assets.common.hashing import directory_fingerprint
from assets.foundation.resolve import resolve_base_model
from assets.settings.base_model import BUILTIN_MODELS, BaseModelSpec, parse_base_model_spec


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    # parse_base_model_spec treats existing relative paths as local directories: keep cwd empty.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)


@pytest.fixture(scope="module")
def builtin_twice(tmp_path_factory):
    root = tmp_path_factory.mktemp("builtin-root")
    spec = parse_base_model_spec("builtin:tiny-llama")
    first = resolve_base_model(spec, root)
    second = resolve_base_model(spec, root)
    return root, first, second


# --- parsing ------------------------------------------------------------------------------------

def test_parse_builtin():
    spec = parse_base_model_spec("builtin:tiny-llama")
    assert spec == BaseModelSpec("builtin", "tiny-llama", None)
    assert spec.display == "builtin:tiny-llama"
    assert "tiny-llama" in BUILTIN_MODELS


def test_parse_strips_surrounding_whitespace():
    assert parse_base_model_spec("  builtin:tiny-llama\n") == BaseModelSpec("builtin", "tiny-llama")


@pytest.mark.parametrize("name", ["huge-llama", "", "Tiny-Llama", "tiny-llama@main"])
def test_unknown_builtin_raises(name):
    with pytest.raises(ValueError, match="unknown built-in model") as raised:
        parse_base_model_spec(f"builtin:{name}")
    assert "tiny-llama" in str(raised.value)  # lists what exists


def test_parse_local_directory_with_config(tmp_path):
    model = tmp_path / "my model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    spec = parse_base_model_spec(str(model))
    assert spec.source == "local"
    assert spec.name == str(model.resolve())
    assert spec.revision is None
    assert spec.display == str(model.resolve())


def test_parse_relative_local_directory_becomes_absolute(tmp_path):
    model = tmp_path / "cwd" / "models" / "base"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    for text in ("./models/base", "models/base"):
        spec = parse_base_model_spec(text)
        assert spec == BaseModelSpec("local", str(model.resolve()))


def test_parse_home_relative_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "config.json").write_text("{}")
    assert parse_base_model_spec("~/base") == BaseModelSpec("local", str((tmp_path / "base").resolve()))


def test_local_directory_without_config_raises(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        parse_base_model_spec(str(tmp_path / "empty"))


@pytest.mark.parametrize("text", ["./missing/model", "/definitely/not/here", "~/no-such-model-dir"])
def test_path_like_spec_that_does_not_exist_raises(text):
    with pytest.raises(ValueError, match="no config.json"):
        parse_base_model_spec(text)


def test_parse_hub_id_without_revision():
    spec = parse_base_model_spec("meta-llama/Llama-3.2-1B")
    assert spec == BaseModelSpec("hub", "meta-llama/Llama-3.2-1B", None)
    assert spec.display == "meta-llama/Llama-3.2-1B"


def test_parse_hub_id_with_revision():
    spec = parse_base_model_spec("org/name@0123abcd")
    assert spec == BaseModelSpec("hub", "org/name", "0123abcd")
    assert spec.display == "org/name@0123abcd"


def test_parse_hub_id_with_empty_revision_means_default():
    assert parse_base_model_spec("org/name@") == BaseModelSpec("hub", "org/name", None)


@pytest.mark.parametrize("text", ["garbage", "a/b/c", "tiny-llama", "org/name/extra@main", "@main"])
def test_garbage_spec_raises_naming_the_hub_form(text):
    with pytest.raises(ValueError, match="neither an existing directory nor a hub id") as raised:
        parse_base_model_spec(text)
    assert "org/name[@revision]" in str(raised.value)
    assert repr(text) in str(raised.value)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_spec_raises(text):
    with pytest.raises(ValueError, match="empty"):
        parse_base_model_spec(text)


def test_display_of_builtin_with_revision_field():
    assert BaseModelSpec("builtin", "tiny-llama", "v1").display == "builtin:tiny-llama@v1"


# --- resolving ----------------------------------------------------------------------------------

def test_builtin_resolves_to_the_same_path_and_fingerprint(builtin_twice):
    _, first, second = builtin_twice
    assert first.path == second.path
    assert first.fingerprint == second.fingerprint
    assert first.revision is None
    assert first.spec == BaseModelSpec("builtin", "tiny-llama")


def test_builtin_folder_is_content_addressed(builtin_twice):
    root, first, _ = builtin_twice
    assert first.path.parent == root
    assert first.path.name == f"tiny-llama-{first.fingerprint[:16]}"
    assert first.fingerprint[:16] in first.path.name
    assert first.fingerprint == directory_fingerprint(first.path)
    assert len(first.fingerprint) == 64


def test_builtin_leaves_no_staging(builtin_twice):
    root, first, _ = builtin_twice
    assert sorted(p.name for p in root.iterdir()) == [first.path.name]


def test_builtin_folder_is_a_model_directory(builtin_twice):
    _, first, _ = builtin_twice
    names = {p.name for p in first.path.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names


def test_local_directory_is_copied_by_content(builtin_twice, tmp_path):
    _, built, _ = builtin_twice
    copy = tmp_path / "local-copy"
    shutil.copytree(built.path, copy)
    spec = parse_base_model_spec(str(copy))
    resolved = resolve_base_model(spec, tmp_path / "root")
    assert resolved.fingerprint == directory_fingerprint(copy)
    assert resolved.fingerprint == built.fingerprint  # same bytes, same fingerprint
    # Later steps read a content-addressed copy under the artifacts, never the user's directory.
    assert resolved.path == tmp_path / "root" / f"local-{resolved.fingerprint[:16]}"
    assert directory_fingerprint(resolved.path) == resolved.fingerprint
    assert resolved.revision is None and not resolved.converted_from_pickle
    assert list(resolved.files) == sorted(p.name for p in copy.iterdir())


def test_local_fingerprint_changes_with_contents(builtin_twice, tmp_path):
    _, built, _ = builtin_twice
    copy = tmp_path / "edited"
    shutil.copytree(built.path, copy)
    (copy / "config.json").write_text((copy / "config.json").read_text() + " ")
    resolved = resolve_base_model(parse_base_model_spec(str(copy)), tmp_path)
    assert resolved.fingerprint != built.fingerprint


def test_local_fingerprint_ignores_files_that_do_not_load(builtin_twice, tmp_path):
    _, built, _ = builtin_twice
    copy = tmp_path / "with-readme"
    shutil.copytree(built.path, copy)
    (copy / "README.md").write_text("notes that change often")
    resolved = resolve_base_model(parse_base_model_spec(str(copy)), tmp_path / "root")
    assert resolved.fingerprint == built.fingerprint
    assert resolved.skipped == ("README.md",)
