#!/usr/bin/env python3
"""Writes the texts of extra-cases.jsonl: hand-picked edge cases of the BERT pipeline
plus seeded random strings over a pool of tricky characters. The ids come from the
reference: shared/tools/hf-tokenize.js (Rust `tokenizers` via
`npm install --prefix /tmp/hftok @anush008/tokenizers@0.6.0`):

  python3 tests/tokenizer/data/gen_extra_cases.py > /tmp/extra-in.jsonl
  NODE_PATH=/tmp/hftok/node_modules node ../shared/tools/hf-tokenize.js /tmp/tok-notrunc.json /tmp/extra-in.jsonl \
       tests/tokenizer/data/extra-cases.jsonl

where /tmp/tok-notrunc.json is MiniLM's tokenizer.json with truncation and padding
set to null."""
import json
import random

HAND = [
    "", " ", "\t\n\r ", "\x00\x01\x02", "a\x00b", "a\x0bb", "a\x0cb", "a\x1cb", "a\x7fb",
    "a\u0085b", "a\u00a0b", "a\u1680b", "a\u2000b", "a\u2028b", "a\u3000b", "a\u200bb",
    "a\ufeffb", "a\ufffdb", "a\ue000b", "a\ue001b", "a\U000f0001b",
    "[CLS]", "[SEP] x [SEP]", "a[MASK]b", "[cls]", "[UNK]", "[[CLS]]", "[PAD][PAD]",
    "[CLS[SEP]", "x [MASK", "İstanbul", "İ", "Straße", "STRASSE", "ẞ", "ΣΑΣ", "ǅ", "Ⅻ",
    "Ⓐⓑ", "ＡＢＣ１２３", "Å", "Ω", "ﬁ ﬂ", "café", "cafe\u0301", "Crème Brûlée",
    "naïve résumé", "\u037e", "a\u1fefb", "한국어", "日本語のテキスト", "中文字符测试",
    "a\U0002b820b", "a\U0002b920b", "a\u4dc0b", "a\u3400b", "a\U0002fa1fb",
    "x" * 100, "x" * 101, "é" * 100, "é" * 101, "a" * 99 + "\u0301", "ab" * 60,
    "a" + "\u0301" * 200, "\u0301\u0302", "e\u0316\u0301", "e\u0301\u0316",
    "def f(x):\n    return x**2  # comment", "os.path.join(a, b)", "__init__", "x_y_z",
    "1234567890", "3.14159e-10", "0xDEADBEEF", "http://example.com/a?b=c&d=e",
    "a\u2e43b", "a\u2e3cb", "a\u08e2b", "a\u08e3b", "a\U0001da8bb", "a\U0001e944b",
    "🤗 emoji 👍🏽", "\u05e9\u05dc\u05d5\u05dd", "مرحبا", "Привет, мир!", "γειά σου",
    "ภาษาไทย", "हिन्दी", "a\u0345b", "\u1e9e", "\u0149", "\u01f0", "\u1e96",
]

POOL = (list("abcXYZ09_ .,;:!?()[]{}<>#@$%^&*-+=/\\|'\"`~\t\n") +
        ["é", "É", "ñ", "ß", "İ", "ı", "Σ", "ς", "ﬂ", "½", "²", "µ", "№", "\u0301", "\u0308",
         "\u0316", "\u200b", "\u200d", "\ufeff", "\u00a0", "\u3000", "本", "語", "の", "한",
         "ア", "ـ", "ب", "ש", "ท", "न", "ी", "\u2e43", "\u2e3c", "\ue000", "\ue123", "\x00",
         "\x01", "\x7f", "\x85", "\u2028", "[CLS]", "[SEP]", "[MASK]", "[UNK", "🤗", "\U0001d165",
         "\u1fef", "\u037e", "Å", "Ω", "Ⅻ", "Ⓐ"])


def main():
    rnd = random.Random(20261125)
    texts = list(HAND)
    for _ in range(400):
        n = rnd.randint(1, 40)
        texts.append("".join(rnd.choice(POOL) for _ in range(n)))
    for t in texts:
        print(json.dumps({"text": t}, ensure_ascii=False))


main()
