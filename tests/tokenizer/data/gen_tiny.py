#!/usr/bin/env python3
"""Writes tests/tokenizer/data/tiny/tokenizer.json (a 30-token WordPiece vocabulary with
added tokens using every flag: lstrip/rstrip, single_word, normalized, and one that
extends a special token) and the texts of tiny-cases.jsonl. The ids come from the
reference (see gen_extra_cases.py):

  python3 tests/tokenizer/data/gen_tiny.py /tmp/tiny-in.jsonl
  NODE_PATH=/tmp/hftok/node_modules node ../shared/tools/hf-tokenize.js tests/tokenizer/data/tiny/tokenizer.json \
       /tmp/tiny-in.jsonl tests/tokenizer/data/tiny-cases.jsonl"""
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
toks = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "ab", "##b", "##c", "hello",
        "world", "##s", ".", ",", "<", ">", "e", "x", "##x", "##a", "##e", "h", "##h", "t", "##t",
        "##g", "ta", "tag"]
vocab = {t: i for i, t in enumerate(toks)}
added = [{"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False,
          "normalized": False, "special": True} for i, t in enumerate(toks[:5])]
n = len(toks)
def tok(i, content, sw=False, ls=False, rs=False, norm=False):
    return {"id": i, "content": content, "single_word": sw, "lstrip": ls, "rstrip": rs,
            "normalized": norm, "special": False}
added += [tok(n, "<ent>", ls=True, rs=True), tok(n + 1, "Hi", sw=True),
          tok(n + 2, "Tag", norm=True), tok(n + 3, "b c", norm=True), tok(n + 4, "[MASK]x")]
tj = {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
      "normalizer": {"type": "BertNormalizer", "clean_text": True, "handle_chinese_chars": True,
                     "strip_accents": None, "lowercase": True},
      "pre_tokenizer": {"type": "BertPreTokenizer"},
      "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 3], "cls": ["[CLS]", 2]},
      "decoder": {"type": "WordPiece", "prefix": "##", "cleanup": True},
      "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
                "max_input_chars_per_word": 5, "vocab": vocab}}
json.dump(tj, open(os.path.join(HERE, "tiny", "tokenizer.json"), "w"), indent=1,
          ensure_ascii=False)
texts = ["", "a", "abc", "abbbb", "abbbbb", "ABBBB", "ÁBBBB", "hello world", "hellos", "<ent>",
         "a <ent> b", "a<ent>b", "a  <ent>  b", "Hi", "Hi there", "aHi", "Hia", "Hi.", ".Hi,",
         "_Hi", "Hi_", "tag", "Tag", "TAG", "a Tag b", "aTagb", "b c", "B C", "ab c", "b  c",
         "b\tc", "[MASK]", "[MASK]x", "[MASK]xx", "[MASK]x[MASK]", "[mask]", "[CLS][SEP]",
         "Tag<ent>Hi", "t a g", "ta g", "tagtag", "xxxxx", "xxxxxx", "é", "e\u0301", "中a",
         "a\x00b", "<ent><ent>", " <ent> ", "Hi Hi Hi", "HiHi", "b cb c", "B\u00a0C", "b\u3000c"]
# seeded random mixes of the added tokens, whitespace of every kind and word characters
pool = ["<ent>", "Hi", "Tag", "TAG", "b c", "B C", "[MASK]", "[MASK]x", "[SEP]", "<en", " ",
        "  ", "\t", "\n", "\r", "\u0085", "\u00a0", "\u3000", "\u2028", "a", "b", "c", "x",
        "_", "é", "\u0301", "中", ".", ",", "<", ">", "1", "ß", "İ", "\u200b", "\x00", "hello",
        "tag", "H", "i", "t", "g"]
rnd = random.Random(20261125)
for _ in range(300):
    texts.append("".join(rnd.choice(pool) for _ in range(rnd.randint(1, 20))))
with open(sys.argv[1], "w") as f:
    for t in texts:
        f.write(json.dumps({"text": t}) + "\n")
