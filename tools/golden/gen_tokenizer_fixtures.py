#!/usr/bin/env python3
"""Tokenizer fixtures for q3vl from Hugging Face `tokenizers` (the reference).

Builds a deterministic corpus (hand-picked edge cases, many scripts, NFC and NFD forms, code,
emoji sequences, digit and whitespace runs, contractions, added-token strings, seeded random
Unicode, very long words), encodes it with the real Qwen3 tokenizer.json, and writes

  tests/fixtures/tokenizer/encode_cases.json  text -> ids, and ids -> text both ways
  tests/fixtures/tokenizer/decode_cases.json  seeded id sequences (ids that split characters,
                                              invalid byte sequences, special and unknown ids)
                                              -> text, skip_special_tokens false and true
  tests/fixtures/tokenizer/hf_unicode.json    how HF's regex engine classes every code point
                                              (letter, number, space) for the pre-tokenizer, and
                                              the code points HF's NFC does not know

HF's Unicode data is not one version: its regex engine (Oniguruma) knows Unicode 16 letters and
numbers, while its NFC tables stop at Unicode 9. Both are probed here, on every code point,
black-box: the regex classes go to hf_unicode.json (the C++ test checks its pre-tokenizer on all
1.1M code points), and every character HF's NFC does not know becomes encode cases in the
contexts where a newer NFC would reorder or compose it.

One case per line. Nothing in the output is typed by hand: every id and text comes from HF.
Running it twice gives byte-identical files. Run inside the reference chroot:

    ../shared/refgen/inroot.sh -b "$PWD:/repo" -- python3 /repo/tools/golden/gen_tokenizer_fixtures.py

Options: --tokenizer-dir (default /repo/.deps/tokenizer-qwen3), --out (default
/repo/tests/fixtures/tokenizer).
"""

import argparse
import json
import os
import random
import sys
import unicodedata

import tokenizers
from tokenizers import Tokenizer

SEED = 20261128

# ------------------------------------------------------------------------------------------------
# Corpus


def hand_picked():
    cases = [
        ("empty", ""),
        ("single_space", " "),
        ("single_letter", "a"),
        ("hello", "Hello world"),
        ("hello_leading_space", " Hello world"),
        ("sentence", "The quick brown fox jumps over the lazy dog."),
        ("contractions", "I'm sure they'll say it's what we'd've done; you're right, isn't it? We've seen."),
        ("contractions_upper", "I'M SURE THEY'LL SAY IT'S WHAT WE'D DONE; YOU'RE RIGHT. WE'VE. DON'T"),
        ("contractions_mixed_case", "it'S don'T you'Re we'Ve I'M they'Ll he'D"),
        ("contractions_after_space", "' s 's  'll x'll 'x '' ''s"),
        ("contraction_long_s", "it'ſ the 'ſ and K'K"),
        ("apostrophes", "rock 'n' roll, the '90s, O'Neil, l'homme, ‘curly’ “quotes”"),
        ("punctuation_runs", "Wait... what?!?! (yes) [no] {maybe} <tag> --- ___ *** ~~~ ^^^"),
        ("punctuation_newlines", "end.\n\nNext!\r\n\r\nDone?\n"),
        ("digits", "0 1 12 123 1234 12345 123456 3.14159 -42 +7 1e10 0x1F 1,000,000"),
        ("digit_run", "12345678901234567890123456789012345678901234567890"),
        ("digits_letters", "abc123def456 v2.0.1 mp3 H2O COVID-19 4K 1st 2nd 3rd"),
        ("other_numbers", "½ ¾ ² ³ ① ② Ⅻ ٣ ४ ๕ 〇 𝟘 𝟙"),
        ("spaces_2", "a  b"),
        ("spaces_3", "a   b"),
        ("spaces_trailing", "trailing spaces   "),
        ("spaces_leading", "   leading spaces"),
        ("only_spaces", "          "),
        ("only_newlines", "\n\n\n\n"),
        ("tabs", "\tindented\n\t\tdouble\n\t \t mixed"),
        ("crlf", "line one\r\nline two\r\n\r\nline four\r\n"),
        ("cr_only", "old\rmac\r\rstyle"),
        ("mixed_newlines", "a\n\r\nb\r\r\n\n c \n \n\t\n"),
        ("space_before_newline", "word \nword  \n  word   \n\n   "),
        ("whitespace_zoo", "a\u00a0b\u2000c\u2003d\u3000e\u202ff\u205fg\u1680h"),
        ("whitespace_controls", "a\x0bb\x0cc\x1cd\x1de\x1ef\x1fg\x85h"),
        ("line_separators", "a\u2028b\u2029c \u2028 d\u2029\n"),
        ("mongolian_vowel_separator", "a\u180eb \u180e c\u180e\u180e"),
        ("mongolian_vowel_separator_2", "x\u180e'S \u180e\n\u180e  \u180e$ .\u180eZ \u180e\u180e\n\n\u180e 1\u180e2"),
        ("zero_width", "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060wj"),
        ("nul_and_controls", "nul\x00byte\x01\x02\x03\x07\x08\x1b[0m\x7f"),
        ("soft_hyphen", "hy\u00adphen\u00ad"),
        ("latin_nfc", "Café crème brûlée, naïve façade, Ångström, São Paulo, Kraków, Dvořák, Øresund, Ærø"),
        ("vietnamese", "Tiếng Việt có nhiều dấu: ặ ễ ỗ ự ữ ỹ"),
        ("cyrillic", "Съешь же ещё этих мягких французских булок, да выпей чаю. ЁЖИК"),
        ("greek", "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. ΆΈΉΊΌΎΏ ΐΰ"),
        ("arabic", "نص حكيم له سر قاطع وذو شأن عظيم مكتوب على ثوب أخضر ومغلف بجلد أزرق"),
        ("hebrew", "דג סקרן שט בים מאוכזב ולפתע מצא חברה"),
        ("hindi", "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम"),
        ("thai", "เป็นมนุษย์สุดประเสริฐเลิศคุณค่า กว่าบรรดาฝูงสัตว์เดรัจฉาน"),
        ("chinese", "我们在北京的清华大学学习人工智能和机器学习。天地玄黄，宇宙洪荒。"),
        ("japanese", "いろはにほへと ちりぬるを カタカナ ﾊﾝｶｸ 漢字かな交じり文。"),
        ("korean", "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다."),
        ("armenian_georgian", "Բարեւ ձեզ ქართული ენა"),
        ("math_symbols", "∀x∈ℝ: x² ≥ 0, ∑_{i=1}^n i = n(n+1)/2, ∫₀^∞ e^{-x} dx = 1 ≠ ∞ ≈ π"),
        ("currency", "$100 €50 £20 ¥1000 ₹500 ₿0.1 ₩3000"),
        ("emoji", "I ❤️ tokenizers 🎉🚀🔥 😀😃😄"),
        ("emoji_skin_tones", "👍 👍🏻 👍🏼 👍🏽 👍🏾 👍🏿 🧑🏽‍💻"),
        ("emoji_zwj", "👨‍👩‍👧‍👦 👩‍❤️‍💋‍👨 🏳️‍🌈 🏴‍☠️ 👁️‍🗨️"),
        ("emoji_flags_keycaps", "🇺🇸🇫🇷🇯🇵 1️⃣ #️⃣ *️⃣ 🏴󠁧󠁢󠁳󠁣󠁴󠁿"),
        ("emoji_glued", "word🎉word 123🎉456 🎉\n🎉"),
        ("url_email", "https://example.com/path?q=1&r=two#frag mailto:someone@example.org"),
        ("markdown", "# Title\n\n- item **bold** _it_\n- `code`\n\n```python\nprint('x')\n```\n"),
        ("python", "def f(x: int) -> int:\n    \"\"\"Doc.\"\"\"\n    if x <= 0:\n        return 1\n    return x * f(x - 1)  # recursion\n"),
        ("cpp", "#include <vector>\nint main() {\n  std::vector<int> v{1, 2, 3};\n  for (auto& x : v) x *= 2;\n  return v[0] != 2;\n}\n"),
        ("json", "{\"name\": \"q3vl\", \"ids\": [151644, 151645], \"nested\": {\"ok\": true, \"x\": null}}"),
        ("html", "<!DOCTYPE html>\n<html><head><title>T</title></head>\n<body class=\"main\">&nbsp;&amp;</body></html>"),
        ("shell", "$ for f in *.txt; do echo \"$f\" | wc -l; done 2>&1 | tee log"),
        ("latex", "\\begin{equation} E = mc^2 \\quad \\frac{a}{b} \\end{equation}"),
        ("special_im", "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\n"),
        ("special_adjacent", "<|im_start|><|im_end|><|im_start|><|endoftext|>"),
        ("special_vision", "<|vision_start|><|image_pad|><|image_pad|><|vision_end|>Describe."),
        ("special_video", "<|vision_start|><|video_pad|><|vision_end|>"),
        ("think_tags", "<think>\nreasoning here\n</think>\n\nanswer"),
        ("tool_call", "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call><tool_response>ok</tool_response>"),
        ("fim", "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>pass<|fim_pad|><|repo_name|>r<|file_sep|>"),
        ("special_partial", "<|im_sta <|im_start| <|im_start <im_start|> <|im_end <|endoftext| <thin <think <tool_call"),
        ("special_nested", "<|im_sta<|im_start|>rt|> <<|im_end|>> <|<|im_end|>|> <th<think>ink>"),
        ("special_in_words", "abc<|im_end|>def x<think>y 12<|endoftext|>34"),
        ("special_spaces", " <|im_start|> user <|im_end|> \n <think> </think> "),
        ("special_lookalike", "<|IM_START|> < |im_start|> <|im start|> ＜|im_start|＞"),
        ("special_then_nfd", "<|im_start|>Cafe\u0301<|im_end|>e\u0301"),
        ("nfd_latin", unicodedata.normalize("NFD", "Café crème brûlée, naïve façade, Ångström, Dvořák, Ελληνικά")),
        ("nfd_vietnamese", unicodedata.normalize("NFD", "Tiếng Việt có nhiều dấu: ặ ễ ỗ ự ữ ỹ")),
        ("nfd_korean", unicodedata.normalize("NFD", "한국어 텍스트 정규화")),
        ("nfd_japanese", unicodedata.normalize("NFD", "がぎぐげご パピプペポ")),
        ("nfkc_not_applied", "ﬁ ﬂ ㎏ ① ｆｕｌｌｗｉｄｔｈ ™ ℌ"),
        ("nfc_singletons", "\u2126 Ohm \u212a Kelvin \u212b Angstrom \u0340\u0341 \u0374 \u037e \u0387 \uf900\uf91d"),
        ("nfc_exclusions", "\u0958\u0959 \u0931 \u09dc \ufb1d \u2adc"),
        ("combining_order", "a\u0323\u0302 a\u0302\u0323 q\u0307\u0323 e\u0301\u0301 o\u0308\u0304"),
        ("combining_alone", "\u0301 start, \u0301\u0301 double, x \u0300 spaced"),
        ("hangul_jamo", "\u1100\u1161\u11a8 \u1100\u1161 \u1112\u1161\u11ab"),
        ("long_word_a", "a" * 3000),
        ("long_word_mixed", ("Pneumonoultramicroscopicsilicovolcanoconiosis" * 40)),
        ("long_digits", "9876543210" * 200),
        ("long_spaces", " " * 5000 + "x"),
        ("long_spaces_end", "x" + " " * 4097),
        ("long_newlines", "\n" * 1000 + "x" + "\r\n" * 500),
        ("long_tabs_spaces", " \t" * 700 + "\n"),
        ("long_punct", "!?" * 1500),
        ("long_cjk", "中文字符" * 500),
        ("long_emoji", "🎉" * 800),
        ("long_cyrillic_word", "щ" * 2000),
        ("long_combining", "a" + "\u0301" * 300),
    ]
    return cases


# Building blocks for random strings that poke at the pre-tokenizer regex.
FRAGMENTS = [
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", " \n", "\u00a0", "\u3000", "\u2028", "\x85", "\x0b",
    "a", "Z", "hello", "World", "the", "ing", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'LL", "'",
    "0", "7", "42", "2026", "3.14", ".", ",", "!", "?", "...", "-", "_", "(", ")", "[", "]", "{", "}", "<", ">",
    "/", "\\", "\"", "#", "@", "$", "%", "&", "*", "+", "=", "|", "~", "`", "^", ";", ":",
    "é", "e\u0301", "ñ", "n\u0303", "ü", "Å", "A\u030a", "ß", "ø", "ł",
    "я", "Жизнь", "α", "Ωμέγα", "ש", "עברית", "ع", "مرحبا", "न", "हिन्दी", "ก", "ไทย",
    "中", "文字", "。", "、", "日本", "かな", "カナ", "한", "국어", "\u1100\u1161",
    "😀", "👍🏽", "👨‍👩‍👧", "🇯🇵", "❤️", "\u200d", "\u200b", "\ufeff", "\u0301", "\u180e",
    "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<think>", "</think>", "<|image_pad|>", "<|im_", "|>", "<tool_call>",
    "𝔘𝔫𝔦", "𐍈", "\U0001F9D1", "½", "²", "Ⅳ", "٣",
]


def random_fragment_strings(rng, count):
    cases = []
    for i in range(count):
        n = rng.randint(1, 24)
        cases.append((f"fragments_{i:03d}", "".join(rng.choice(FRAGMENTS) for _ in range(n))))
    return cases


# Code point ranges to sample random Unicode from (assigned characters only, per the generator's
# unicodedata; surrogates and private use left out).
RANDOM_RANGES = [
    (0x20, 0x7E), (0xA0, 0x24F), (0x250, 0x2FF), (0x300, 0x36F), (0x370, 0x3FF), (0x400, 0x4FF),
    (0x530, 0x58F), (0x590, 0x5FF), (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xE00, 0xE7F),
    (0x10A0, 0x10FF), (0x1100, 0x11FF), (0x1E00, 0x1EFF), (0x1F00, 0x1FFF), (0x2000, 0x206F),
    (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x214F), (0x2150, 0x218F), (0x2190, 0x22FF),
    (0x2460, 0x24FF), (0x2500, 0x27BF), (0x3000, 0x303F), (0x3040, 0x30FF), (0x3130, 0x318F),
    (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xF900, 0xFAFF), (0xFB00, 0xFB4F), (0xFE30, 0xFE4F),
    (0xFF00, 0xFFEF), (0x10000, 0x1007F), (0x10300, 0x1034F), (0x1D400, 0x1D7FF), (0x1F300, 0x1F5FF),
    (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x20000, 0x2A6DF), (0xE0000, 0xE007F),
]


def random_unicode_strings(rng, count):
    cases = []
    for i in range(count):
        n = rng.randint(1, 40)
        chars = []
        while len(chars) < n:
            low, high = rng.choice(RANDOM_RANGES)
            c = chr(rng.randint(low, high))
            if unicodedata.category(c) in ("Cn", "Cs", "Co"):
                continue
            chars.append(c)
        cases.append((f"random_unicode_{i:03d}", "".join(chars)))
    return cases


def random_ascii_strings(rng, count):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \t\n\r!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    weights = [4] * 52 + [2] * 10 + [12, 2, 3, 1] + [1] * 32
    cases = []
    for i in range(count):
        n = rng.randint(1, 120)
        cases.append((f"random_ascii_{i:03d}", "".join(rng.choices(alphabet, weights=weights, k=n))))
    return cases


def multilingual_paragraphs():
    """Longer realistic texts, in NFC and (where it changes anything) NFD."""
    paragraphs = [
        ("para_english", "Qwen3-VL is a vision-language model. It reads images and video frames, turns them into "
         "tokens, and answers questions about them. In this sentence there are numbers like 2,048 and 3.5%, "
         "a URL (https://huggingface.co/Qwen), and some \"quoted\" text—with an em dash."),
        ("para_french", "À l'époque où les bêtes parlaient, un garçon très âgé mangeait des crêpes près de la forêt. "
         "Où est-il allé ? Ça, c'est une autre histoire… « Voilà ! »"),
        ("para_german", "Größenwahn ist keine Straßenbahn. Die Bürger aßen Käsespätzle und tranken Apfelschorle."),
        ("para_spanish", "¿Dónde está el niño? ¡Qué día tan bonito! El pingüino comía jalapeños en la montaña."),
        ("para_polish", "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig."),
        ("para_turkish", "Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul'da ılık bir gün."),
        ("para_russian", "В чащах юга жил бы цитрус? Да, но фальшивый экземпляр! Москва — столица России."),
        ("para_ukrainian", "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!"),
        ("para_greek", "Τάχιστη αλώπηξ βαφής ψημένη γη, δρασκελίζει υπέρ νωθρού κυνός."),
        ("para_arabic", "اللغة العربية هي لغة جميلة، ويتحدث بها أكثر من ٤٠٠ مليون شخص حول العالم."),
        ("para_hebrew", "עטלף אבק נס דרך מזגן שהתפוצץ כי חם. שלום עולם!"),
        ("para_persian", "زبان فارسی یکی از زبان‌های هندواروپایی است."),
        ("para_hindi", "भारत एक विशाल देश है। यहाँ अनेक भाषाएँ बोली जाती हैं, जैसे हिन्दी, बांग्ला और तमिल।"),
        ("para_bengali", "আমি বাংলায় গান গাই। আমার সোনার বাংলা।"),
        ("para_tamil", "யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்."),
        ("para_thai", "ภาษาไทยเป็นภาษาที่มีวรรณยุกต์ และไม่มีการเว้นวรรคระหว่างคำ"),
        ("para_chinese", "人工智能是计算机科学的一个分支，它企图了解智能的实质，并生产出一种新的能以人类智能相似的方式做出反应的智能机器。"),
        ("para_traditional_chinese", "繁體中文與簡體中文的差異主要在於字形。臺灣、香港與澳門使用繁體字。"),
        ("para_japanese", "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。何でも薄暗いじめじめした所でニャーニャー泣いていた事だけは記憶している。"),
        ("para_korean", "대한민국은 동아시아의 한반도 남부에 있는 민주공화국이다. 수도는 서울특별시이다."),
        ("para_mixed", "Hello 世界! Привет мир! مرحبا بالعالم! שלום עולם! नमस्ते दुनिया! 🌍🌎🌏"),
    ]
    out = []
    for name, text in paragraphs:
        out.append((name, text))
        nfd = unicodedata.normalize("NFD", text)
        if nfd != text:
            out.append((name + "_nfd", nfd))
    return out


def build_corpus():
    rng = random.Random(SEED)
    cases = hand_picked() + multilingual_paragraphs()
    cases += random_fragment_strings(rng, 150)
    cases += random_ascii_strings(rng, 60)
    cases += random_unicode_strings(rng, 80)
    names = [name for name, _ in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases


# ------------------------------------------------------------------------------------------------
# Probes of HF's Unicode tables


def all_code_points():
    return (cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF)


def regex_class_probe(x):
    """The probe string whose split tells the class of x; the C++ test uses the same one."""
    return "!" + x + "a" + x + x


def regex_classes(pattern):
    """Ranges [first, last, class] of the code points HF's pre-tokenizer regex treats as a letter
    (L), number (N) or space (S); everything else splits like punctuation. Uses the probe
    "!XaXX": L -> one word, N -> ["!", X, "a", X, X], S -> ["!", "Xa", "XX"], other ->
    ["!X", "a", "XX"]."""
    from tokenizers import Regex
    from tokenizers.pre_tokenizers import Split

    split = Split(Regex(pattern), "isolated")
    ranges = []
    for cp in all_code_points():
        x = chr(cp)
        if x in "\r\n":
            continue  # [\r\n] have their own rules in the pattern
        pieces = [piece for piece, _ in split.pre_tokenize_str(regex_class_probe(x))]
        shapes = {
            "L": ["!" + x + "a" + x + x],
            "N": ["!", x, "a", x, x],
            "S": ["!", x + "a", x + x],
            "other": ["!" + x, "a", x + x],
        }
        matches = [name for name, shape in shapes.items() if pieces == shape]
        assert len(matches) == 1, (hex(cp), pieces)
        kind = matches[0]
        if kind == "other":
            continue
        if ranges and ranges[-1][2] == kind and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp, kind])
    # HF's classes should be this Python's Unicode data (so we know which version HF has).
    for first, last, kind in ranges:
        for cp in range(first, last + 1):
            category = unicodedata.category(chr(cp))
            expected = {"L": "L", "N": "N"}.get(kind)
            if expected is not None:
                assert category.startswith(expected), (hex(cp), kind, category)
    return ranges


def nfc_unknown_to_hf():
    """Code points that HF's NFC leaves alone although this Python's (newer) Unicode data would
    reorder, decompose or compose them: HF's tables predate them."""
    from tokenizers import normalizers

    nfc = normalizers.NFC()

    def differs(text):
        return nfc.normalize_str(text) != unicodedata.normalize("NFC", text)

    unknown = set()
    for cp in all_code_points():
        x = chr(cp)
        # Reorders if 0 < ccc < 240, reorders if ccc > 1, decomposes.
        if differs("\u0345" + x) or differs(x + "\u0334") or differs(x):
            unknown.add(cp)
        decomposition = unicodedata.decomposition(x)
        if decomposition and not decomposition.startswith("<"):
            parts = "".join(chr(int(p, 16)) for p in decomposition.split())
            if differs(parts) or differs(parts + "\u0334"):
                # A composition HF lacks: its base character is new too (a new letter with an old
                # mark, such as Todhri's dot above), and keeping the base apart prevents it.
                unknown.update((cp, ord(parts[0])))
    return sorted(unknown)


def nfc_cases(unknown):
    """Encode cases that put every code point HF's NFC does not know where a newer NFC would act."""
    cases = []
    chunk = 24
    for start in range(0, len(unknown), chunk):
        pieces = []
        for cp in unknown[start:start + chunk]:
            x = chr(cp)
            pieces += ["\u0345" + x, x + "\u0334", "a" + x + "\u0301", x]
            decomposition = unicodedata.decomposition(x)
            if decomposition and not decomposition.startswith("<"):
                pieces.append("".join(chr(int(p, 16)) for p in decomposition.split()))
        cases.append((f"nfc_unknown_to_hf_{start // chunk:02d}", " ".join(pieces)))
    return cases


def regex_class_cases(ranges, rng):
    """Letters and numbers in every class range HF's regex has (a few from each), in contexts."""
    cases = []
    picks = []
    for first, last, kind in ranges:
        members = sorted({first, last, rng.randint(first, last)})
        picks += [(chr(cp), kind) for cp in members]
    chunk = 40
    for start in range(0, len(picks), chunk):
        text = " ".join("a" + x + "1" + x + "!" + x + x + " " + x for x, _ in picks[start:start + chunk])
        cases.append((f"regex_classes_{start // chunk:03d}", text))
    return cases


# ------------------------------------------------------------------------------------------------
# Decode cases


def byte_token_ids(tok):
    """Ids of the 256 single-byte tokens, through GPT-2's bytes_to_unicode."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    code_points = {}
    extra = 0
    for b in range(256):
        if b in printable:
            code_points[b] = b
        else:
            code_points[b] = 256 + extra
            extra += 1
    ids = []
    for b in range(256):
        token_id = tok.token_to_id(chr(code_points[b]))
        assert token_id is not None, b
        ids.append(token_id)
    return ids


def decode_corpus(tok, encode_cases):
    rng = random.Random(SEED + 1)
    byte_ids = byte_token_ids(tok)
    vocab_size = tok.get_vocab_size(with_added_tokens=True)
    added = sorted(tok.get_added_tokens_decoder().keys())
    specials = [i for i in added if tok.get_added_tokens_decoder()[i].special]
    non_special_added = [i for i in added if i not in specials]
    sequences = []

    sequences.append(("empty", []))
    sequences.append(("all_added", added))
    sequences.append(("unknown_ids", [151669, 151700, 151935, 200000, 9707, 151669]))
    # Random vocabulary ids, with added and unknown ones sprinkled in.
    for i in range(60):
        n = rng.randint(1, 48)
        ids = []
        for _ in range(n):
            r = rng.random()
            if r < 0.08:
                ids.append(rng.choice(added))
            elif r < 0.11:
                ids.append(rng.randint(vocab_size, 151935))
            elif r < 0.45:
                ids.append(rng.choice(byte_ids[0x80:]))  # a lone continuation or lead byte
            else:
                ids.append(rng.randrange(0, 151643))
        sequences.append((f"random_ids_{i:03d}", ids))
    # Valid UTF-8 as single-byte tokens, then corrupted: dropped, inserted and swapped bytes.
    texts = [text for _, text in encode_cases if text and len(text) < 400]
    for i in range(60):
        data = bytearray(rng.choice(texts).encode("utf-8"))
        for _ in range(rng.randint(0, 4)):
            op = rng.random()
            pos = rng.randrange(0, len(data) + 1)
            if op < 0.4 and data:
                del data[min(pos, len(data) - 1)]
            elif op < 0.8:
                data.insert(pos, rng.choice([0x80, 0xBF, 0xC0, 0xC1, 0xC2, 0xE0, 0xED, 0xF0, 0xF4, 0xF5, 0xFF,
                                             rng.randrange(0x80, 0x100)]))
            elif len(data) > 1:
                j = rng.randrange(0, len(data))
                data[pos % len(data)], data[j] = data[j], data[pos % len(data)]
        ids = [byte_ids[b] for b in data]
        # Special tokens in the middle of a character: skipped, they must not break it.
        for _ in range(rng.randint(0, 2)):
            ids.insert(rng.randrange(0, len(ids) + 1), rng.choice(specials + non_special_added))
        sequences.append((f"bytes_{i:03d}", ids))
    # Hand-made invalid sequences (maximal subparts, surrogates, overlongs, beyond U+10FFFF).
    raw = [
        b"\xe2\x82", b"\xe2\x82A", b"\xf0\x80\x80\x80", b"\xf0\x9f\x98", b"\xed\xa0\x80", b"\xc0\xaf",
        b"\xf4\x90\x80\x80", b"\xf5\x80", b"\xff\xfe", b"\xe0\x80\x80", b"\xe0\xa0", b"\x80\x80\x80",
        b"\xf0\x9f\x98\x80\x9f\x98", b"A\xc3", b"\xc3\xa9\xc3", b"\xef\xbb\xbf\xef\xbb",
    ]
    for i, data in enumerate(raw):
        sequences.append((f"invalid_{i:02d}", [byte_ids[b] for b in data]))
    # Real encodings cut into pieces at random: tokens that split multi-byte characters.
    for name, text in encode_cases:
        if not text or len(sequences) > 400:
            continue
        ids = tok.encode(text, add_special_tokens=False).ids
        if len(ids) < 2:
            continue
        if rng.random() < 0.5:
            start = rng.randrange(0, len(ids))
            end = rng.randrange(start + 1, len(ids) + 1)
            sequences.append((f"slice_{name}", ids[start:end]))
    return [(name, ids) for name, ids in sequences]


# ------------------------------------------------------------------------------------------------


def dump_lines(path, header, cases, key="cases"):
    """JSON with one entry per line, so diffs stay readable."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write("{\n")
        for name, value in header.items():
            out.write(f"  {json.dumps(name)}: {json.dumps(value, ensure_ascii=False)},\n")
        out.write(f'  "{key}": [\n')
        for i, case in enumerate(cases):
            sep = "," if i + 1 < len(cases) else ""
            out.write("    " + json.dumps(case, ensure_ascii=False) + sep + "\n")
        out.write("  ]\n}\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer-dir", default="/repo/.deps/tokenizer-qwen3")
    parser.add_argument("--out", default="/repo/tests/fixtures/tokenizer")
    args = parser.parse_args()

    tokenizer_json = os.path.join(args.tokenizer_dir, "tokenizer.json")
    tok = Tokenizer.from_file(tokenizer_json)
    with open(tokenizer_json, encoding="utf-8") as f:
        pattern = json.load(f)["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"]
    classes = regex_classes(pattern)
    unknown = nfc_unknown_to_hf()
    cases = build_corpus() + nfc_cases(unknown) + regex_class_cases(classes, random.Random(SEED + 2))

    # transformers' fast tokenizer must agree with the raw one (it is what the processor runs).
    try:
        from transformers import AutoTokenizer

        hf = AutoTokenizer.from_pretrained(args.tokenizer_dir)
    except Exception as error:  # pragma: no cover - transformers is in the chroot
        print(f"transformers unavailable ({error}); skipping the cross-check", file=sys.stderr)
        hf = None

    encode_out = []
    for name, text in cases:
        ids = tok.encode(text, add_special_tokens=False).ids
        if hf is not None:
            assert hf(text)["input_ids"] == ids, name
            assert hf.decode(ids) == tok.decode(ids, skip_special_tokens=False), name
        encode_out.append({
            "name": name,
            "text": text,
            "ids": ids,
            "decoded": tok.decode(ids, skip_special_tokens=False),
            "decoded_skip_special": tok.decode(ids, skip_special_tokens=True),
        })

    decode_out = []
    for name, ids in decode_corpus(tok, cases):
        decode_out.append({
            "name": name,
            "ids": ids,
            "text": tok.decode(ids, skip_special_tokens=False),
            "text_skip_special": tok.decode(ids, skip_special_tokens=True),
        })

    os.makedirs(args.out, exist_ok=True)
    header = {
        "generator": "tools/golden/gen_tokenizer_fixtures.py",
        "tokenizers_version": tokenizers.__version__,
        "unicode_version_of_generator": unicodedata.unidata_version,
        "seed": SEED,
    }
    dump_lines(os.path.join(args.out, "encode_cases.json"), header, encode_out)
    dump_lines(os.path.join(args.out, "decode_cases.json"), header, decode_out)
    classes_header = dict(header, probe="!XaXX", nfc_unknown_to_hf=" ".join(f"{cp:04X}" for cp in unknown))
    dump_lines(os.path.join(args.out, "hf_unicode.json"), classes_header, classes, key="regex_class_ranges")
    print(f"{len(encode_out)} encode cases, {len(decode_out)} decode cases, {len(classes)} regex class ranges, "
          f"{len(unknown)} code points HF's NFC does not know -> {args.out}")


if __name__ == "__main__":
    main()
