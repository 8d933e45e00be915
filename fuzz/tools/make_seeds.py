#!/usr/bin/env python3
"""Writes the seed corpora of the JSON fuzz targets from files the repository already has.

    python3 fuzz/tools/make_seeds.py [--tokenizer-dir .deps/tokenizer-qwen3]

Seeds are real inputs (the reference Qwen3-VL configs, the golden fixtures' configs and package
manifest, a cut-down copy of the real Qwen tokenizer.json) plus a few empty or truncated ones;
the fuzzers mutate from there. Deterministic: running it twice gives the same files.
"""
import argparse
import json
import os

here = os.path.dirname(os.path.abspath(__file__))
repo = os.path.dirname(os.path.dirname(here))
corpus = os.path.join(repo, "fuzz", "corpus")


def write(target, name, data):
    os.makedirs(os.path.join(corpus, target), exist_ok=True)
    with open(os.path.join(corpus, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def compact(value):
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def small_tokenizer(path, keep_merges=400):
    """The real tokenizer's pipeline with its 256 byte tokens, the first merges and the added tokens."""
    with open(path, encoding="utf-8") as f:
        full = json.load(f)
    vocab = full["model"]["vocab"]
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    kept = dict(by_id[:256])
    merges = []
    for merge in full["model"]["merges"]:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        if left in kept and right in kept and left + right in vocab:
            merges.append([left, right])
            kept[left + right] = vocab[left + right]
        if len(merges) == keep_merges:
            break
    small = dict(full)
    small["model"] = dict(full["model"], vocab=kept, merges=merges)
    return small


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokenizer-dir", default=os.path.join(repo, ".deps", "tokenizer-qwen3"))
    args = parser.parse_args()

    assets = os.path.join(repo, "assets", "qwen3-vl")
    golden = os.path.join(repo, "tests", "fixtures", "golden", "models")
    for name in ("config.json", "generation_config.json", "preprocessor_config.json", "video_preprocessor_config.json"):
        with open(os.path.join(assets, name), encoding="utf-8") as f:
            write("checkpoint_configs", "reference_" + name, compact(json.load(f)))
    for model in sorted(os.listdir(golden)):
        with open(os.path.join(golden, model, "config.json"), encoding="utf-8") as f:
            config = json.load(f)
        write("checkpoint_configs", "golden_" + model + "_config.json", compact(config))
        manifest = {
            "format": "q3vl-package", "format_version": 1, "config": config,
            "generation_config": {"eos_token_id": [151645, 151643], "do_sample": True, "top_k": 20, "top_p": 0.8,
                                  "temperature": 0.7},
            "preprocessor_config": {"size": {"shortest_edge": 65536, "longest_edge": 16777216}},
            "parts": {"text": {"file": "text.onnx", "linear": {"weights": "int4", "block_size": 32}}},
        }
        write("package_manifest", "golden_" + model + ".json", compact(manifest))
    write("package_manifest", "genai_config.json", "\x01" + compact({"search": {"max_length": 8192}}))
    for target in ("checkpoint_configs", "package_manifest"):
        write(target, "empty_object.json", "{}")
        write(target, "not_an_object.json", "[1,2,3]")

    tokenizer = small_tokenizer(os.path.join(args.tokenizer_dir, "tokenizer.json"))
    text = compact(tokenizer)
    write("tokenizer_json", "qwen_small.json", text)
    write("tokenizer_json", "qwen_small_truncated.json", text[: len(text) // 3])
    write("tokenizer_json", "empty_object.json", "{}")
    no_added = dict(tokenizer, added_tokens=[])
    write("tokenizer_json", "qwen_small_no_added_tokens.json", compact(no_added))

    chats = {
        "plain.txt": "\x00Describe this image in detail.",
        "system_and_turns.txt": "\x03You are helpful.\x1eWhat is this?\x1eA cat.\x1eAnd the colour?",
        "unicode.txt": "\x00日本語のテキスト، العربية, emoji 👩‍👩‍👧 and e\u0301 combining",
        "special_tokens.txt": "\x00<|im_start|>user\n<|image_pad|><|vision_end|> typed by hand <|im_end|>",
        "invalid_utf8.bin": b"\x00ok \xff\xfe bad \xc3",
        "whitespace.txt": "\x00" + " \t\r\n" * 64 + "x" + "\n" * 40,
        "messages.json": compact([{"role": "system", "content": "s"},
                                  {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "hi"}]},
                                  {"role": "assistant", "content": "ok",
                                   "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]},
                                  {"role": "tool", "content": "r"}]),
    }
    for name, data in chats.items():
        write("chat_input", name, data)


if __name__ == "__main__":
    main()
