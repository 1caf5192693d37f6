"""Tokenizers in each family's style, trained on the spot on a small embedded corpus.

Two styles cover the families:
- byte-level BPE (GPT-2/NeoX, Llama 3, Qwen, OLMo 2, Phi-4): text is split by the family's published
  regex, every byte maps to a printable character, so any text encodes and decodes back exactly
  (except that an NFC normalizer, where the family has one, composes e.g. "e" + U+0301 into "é").
- SentencePiece-style BPE with byte fallback (Llama 2, Mistral, Phi-3/3.5, Gemma): spaces become
  "▁", pieces the vocabulary lacks fall back to the tokens <0x00>..<0xFF>, so any text encodes.

Training uses the `tokenizers` library and is deterministic: same corpus, same vocabulary, same bytes.
The trained vocabulary (~1k tokens) replaces the published 32k-262k one; special tokens, their order,
flags, and the BOS/EOS conventions follow the published tokenizer files.
"""

import json
from pathlib import Path
from typing import TYPE_CHECKING

from family_specs import FamilySpec, Tok

if TYPE_CHECKING:
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.txt"
TEMPLATES = HERE / "templates"
TRAINED_TOKENS = 700  # merges + alphabet on top of bytes and special tokens: ~1k tokens in all
BYTE_TOKENS = tuple(f"<0x{b:02X}>" for b in range(256))


def corpus_text() -> str:
    return CORPUS.read_text(encoding="utf-8")


def chat_template(spec: FamilySpec) -> str | None:
    if spec.chat_template is None:
        return None
    # newline="" keeps the published bytes: some templates end with "\n", some contain "\r"-free text.
    with open(TEMPLATES / spec.chat_template, encoding="utf-8", newline="") as handle:
        return handle.read()


def _spm_training_text(spec: FamilySpec) -> str:
    """What the SentencePiece-style vocabulary learns from.

    Characters outside the Basic Multilingual Plane (emoji) are left out so they reach the model as
    byte-fallback tokens, as in the published vocabularies. Llama-style vocabularies have no "\\n" or
    "\\t" pieces (those also go through <0x0A>/<0x09>); Gemma's have them as tokens.
    """
    text = "".join(ch for ch in corpus_text() if ord(ch) <= 0xFFFF)
    if not spec.spm_raw_whitespace:
        text = text.replace("\r", " ").replace("\n", " ").replace("\t", " ")
    return text


def _train(spec: FamilySpec) -> "Tokenizer":
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    core = Tokenizer(models.BPE())
    leading = [t.content for t in spec.leading_tokens]
    if spec.tokenizer_style == "byte_level_bpe":
        core.pre_tokenizer = _byte_level_pre_tokenizer(spec)
        trainer = trainers.BpeTrainer(
            vocab_size=len(leading) + 256 + TRAINED_TOKENS, special_tokens=leading,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
        core.train_from_iterator([corpus_text()], trainer)
    else:
        # Word-level pieces as SentencePiece learns them: "▁" starts a word, merges stay inside words.
        core.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement="▁", prepend_scheme="never" if spec.spm_prefix == "none" else "always", split=True,
        )
        # Special tokens first, then the 256 byte tokens: the published SentencePiece id layout.
        trainer = trainers.BpeTrainer(
            vocab_size=len(leading) + 256 + TRAINED_TOKENS, special_tokens=leading + list(BYTE_TOKENS),
            show_progress=False,
        )
        core.train_from_iterator([_spm_training_text(spec)], trainer)
    return core


def _byte_level_pre_tokenizer(spec: FamilySpec):
    from tokenizers import Regex, pre_tokenizers

    if spec.split_regex is None:  # GPT-2 / GPT-NeoX: ByteLevel applies its own built-in regex
        return pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(spec.split_regex), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])


def build_backend(spec: FamilySpec) -> "Tokenizer":
    """The `tokenizers.Tokenizer` as the family's published tokenizer.json lays it out."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    trained = json.loads(_train(spec).to_str())["model"]
    vocab, merges = trained["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" "))
                                       for m in trained["merges"]]
    if spec.tokenizer_style == "byte_level_bpe":
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=spec.ignore_merges))
        tok.normalizer = normalizers.NFC() if spec.nfc else None
        tok.pre_tokenizer = _byte_level_pre_tokenizer(spec)
        tok.decoder = decoders.ByteLevel()
    else:
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token=spec.unk_token, fuse_unk=True,
                                   byte_fallback=True))
        strip = [decoders.Strip(content=" ", left=1, right=0)] if spec.spm_prefix != "none" else []
        tok.decoder = decoders.Sequence(
            [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), *strip])
        if spec.spm_prefix == "legacy":  # Llama 2 / Phi-3 tokenizer.json: the "legacy" normalizer
            tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
        elif spec.spm_prefix == "first":  # Mistral v0.3 (from memory): Metaspace, prefix on the first piece only
            tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
        else:  # Gemma: no dummy prefix; spaces become "▁"
            tok.normalizer = normalizers.Replace(" ", "▁")
    # Leading tokens already hold their ids in the vocabulary; registering them marks them as added
    # (matched before the model runs). Trailing ones get the next ids, in published order.
    for t in spec.leading_tokens + spec.trailing_tokens:
        tok.add_tokens([_added(t, AddedToken)])
    if spec.adds_bos:
        bos = spec.bos_token
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos}:0 $A:0", pair=f"{bos}:0 $A:0 {bos}:1 $B:1",
            special_tokens=[(bos, tok.token_to_id(bos))],
        )
    elif spec.tokenizer_style == "byte_level_bpe":  # offsets only; adds no token
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def _added(t: Tok, added_token_cls):
    return added_token_cls(t.content, special=t.special, rstrip=t.rstrip, lstrip=t.lstrip,
                           normalized=t.normalized, single_word=False)


def build_tokenizer(spec: FamilySpec) -> "PreTrainedTokenizerFast":
    """The backend wrapped for transformers: special tokens, length limit, chat template."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=build_backend(spec),
        bos_token=spec.bos_token, eos_token=spec.eos_token, pad_token=spec.pad_token, unk_token=spec.unk_token,
        model_max_length=spec.model_max_length, chat_template=chat_template(spec),
    )


def tokenizer_config(spec: FamilySpec, tokenizer: "PreTrainedTokenizerFast") -> dict:
    """tokenizer_config.json as the family publishes it: its tokenizer class, flags and added tokens.

    `tokenizer_class` decides how AutoTokenizer rebuilds the tokenizer, exactly as for the real model
    (e.g. transformers 5 rebuilds LlamaTokenizer/GemmaTokenizer/Qwen2Tokenizer pipelines in code and
    takes only the vocabulary and merges from tokenizer.json).
    """
    added = {
        str(tokenizer.convert_tokens_to_ids(t.content)): {
            "content": t.content, "lstrip": t.lstrip, "normalized": t.normalized, "rstrip": t.rstrip,
            "single_word": False, "special": t.special,
        }
        for t in spec.leading_tokens + spec.trailing_tokens
    }
    config = {
        "added_tokens_decoder": added,
        "bos_token": spec.bos_token,
        "eos_token": spec.eos_token,
        "model_max_length": spec.model_max_length,
        "tokenizer_class": spec.tokenizer_class,
        **dict(spec.tokenizer_config_extra),
    }
    if spec.pad_token is not None:
        config["pad_token"] = spec.pad_token
    if spec.unk_token is not None:
        config["unk_token"] = spec.unk_token
    if spec.chat_template is not None:
        config["chat_template"] = chat_template(spec)
    return config


def save_tokenizer(spec: FamilySpec, directory: Path) -> "PreTrainedTokenizerFast":
    """Write tokenizer.json and a published-style tokenizer_config.json (chat template inside it)."""
    tokenizer = build_tokenizer(spec)
    tokenizer.save_pretrained(directory)
    # save_pretrained writes transformers 5's own layout (template in chat_template.jinja, generic
    # tokenizer class); replace it with what the family's hub repository holds.
    (directory / "chat_template.jinja").unlink(missing_ok=True)
    text = json.dumps(tokenizer_config(spec, tokenizer), indent=2, sort_keys=True, ensure_ascii=False)
    (directory / "tokenizer_config.json").write_text(text + "\n", encoding="utf-8")
    return tokenizer
