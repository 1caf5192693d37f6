"""What a base model directory will load as: the native-architecture rule and the facts for metadata.

loraline never passes `trust_remote_code`: with it, transformers imports Python files that come
with the model repo (`auto_map`), i.e. runs code from the internet on the training machine. So a
base model must name an architecture transformers implements itself; that is checked here, before
anything is copied or downloaded beyond config.json.

transformers is imported inside the functions: importing this module is cheap.
"""

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

NO_REMOTE_CODE = (
    "loraline loads models without trust_remote_code (which would run Python code shipped in the "
    "model repo), so the base model needs an architecture transformers implements natively"
)
# Where families keep their context length, in tokens, when not under max_position_embeddings.
CONTEXT_LENGTH_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx", "max_seq_len")


@dataclass(frozen=True)
class ModelFacts:
    architecture: str
    model_type: str
    context_length: int | None  # tokens; None when the config names none
    tie_word_embeddings: bool
    dtype: str  # the config's stored dtype ("bfloat16", ...), "-" when it names none
    chat_template: bool
    bos_token: str
    eos_token: str
    pad_token: str  # "-": none (loraline's tokenizer loading lets EOS stand in)
    hidden_size: int
    num_hidden_layers: int
    vocab_size: int
    auto_map: str  # "-", or why a leftover auto_map is harmless

    def as_metadata(self) -> dict[str, Any]:
        return asdict(self)


def read_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing (not a Hugging Face model directory)") from None
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(config, dict):
        raise ValueError(f"{path} holds a JSON {type(config).__name__}, not an object")
    return config


def check_native_architecture(config: dict[str, Any], where: str) -> None:
    """Raise unless `config` (read from `where`) names a model_type transformers implements natively."""
    from transformers import CONFIG_MAPPING

    model_type = config.get("model_type")
    custom = _auto_map_text(config)
    if not model_type or not isinstance(model_type, str):
        raise ValueError(
            f"{where} has no model_type, so transformers cannot tell which architecture to build"
            + (f"; its auto_map points at custom code ({custom})" if custom else "")
            + f". {NO_REMOTE_CODE}."
        )
    if model_type not in CONFIG_MAPPING:
        raise ValueError(
            f"{where} has model_type {model_type!r}, which transformers does not implement natively"
            + (f"; its auto_map points at custom code in the model repo ({custom})" if custom else "")
            + f". {NO_REMOTE_CODE}: pick a base model with a native architecture (or a "
            "conversion of this one to it)."
        )
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        # An encoder (BERT-like without a LM head), encoder-decoder (T5) or vision model: it would
        # only fail later, at the first AutoModelForCausalLM load in training.
        raise ValueError(
            f"{where} has model_type {model_type!r}, which transformers has no causal language model "
            "class for (AutoModelForCausalLM); loraline fine-tunes decoder-only causal LMs"
        )


def model_facts(directory: Path) -> ModelFacts:
    """Facts about what `directory` loads as, read the way transformers reads them (AutoConfig)."""
    from transformers import AutoConfig

    directory = Path(directory)
    raw = read_config(directory)
    check_native_architecture(raw, str(directory / "config.json"))
    config = AutoConfig.from_pretrained(directory, trust_remote_code=False)
    text = config.get_text_config()  # multimodal configs nest the language model's numbers
    tokenizer_config = _json_or_empty(directory / "tokenizer_config.json")
    special = {**_json_or_empty(directory / "special_tokens_map.json"), **tokenizer_config}
    dtype = getattr(config, "dtype", None)
    return ModelFacts(
        architecture=",".join(getattr(config, "architectures", None) or []),
        model_type=config.model_type,
        context_length=_context_length(text),
        tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", getattr(text, "tie_word_embeddings", False))),
        dtype=str(dtype).removeprefix("torch.") if dtype is not None else "-",
        chat_template=bool(tokenizer_config.get("chat_template"))
        or (directory / "chat_template.jinja").is_file()
        or (directory / "chat_template.json").is_file(),
        bos_token=_token_text(special.get("bos_token")),
        eos_token=_token_text(special.get("eos_token")),
        pad_token=_token_text(special.get("pad_token")),
        hidden_size=int(getattr(text, "hidden_size", 0) or 0),
        num_hidden_layers=int(getattr(text, "num_hidden_layers", 0) or 0),
        vocab_size=int(getattr(text, "vocab_size", 0) or 0),
        auto_map=f"ignored: model_type {config.model_type!r} loads natively" if _auto_map_text(raw) else "-",
    )


def _context_length(config: Any) -> int | None:
    for key in CONTEXT_LENGTH_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def _auto_map_text(config: dict[str, Any]) -> str:
    auto_map = config.get("auto_map")
    if not auto_map:
        return ""
    if isinstance(auto_map, dict):
        return ", ".join(f"{key} -> {value}" for key, value in sorted(auto_map.items()))
    return str(auto_map)


def _token_text(value: Any) -> str:
    """A special token as tokenizer files store it: a string, or an AddedToken dict with `content`."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else "-"


def _json_or_empty(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    return value if isinstance(value, dict) else {}
