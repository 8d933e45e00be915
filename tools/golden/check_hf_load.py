#!/usr/bin/env python3
"""Check that a checkpoint directory (e.g. written by `q3vl make-tiny`) loads and runs in
Hugging Face transformers as a Qwen3-VL model.

    /work/shared/refgen/inroot.sh -b /work/main:/repo -b MODEL_DIR_ON_HOST:/model -- \
        python3 /repo/tools/golden/check_hf_load.py /model

The directory must have the HF layout: config.json, model.safetensors (bf16),
tokenizer.json + tokenizer_config.json, chat_template.json or chat_template.jinja,
preprocessor_config.json, generation_config.json.

Checks: all safetensors tensors are bf16; Qwen3VLForConditionalGeneration.from_pretrained
(dtype float32, eager attention) reports no missing / unexpected / mismatched keys;
tied lm_head equals the embedding; AutoProcessor loads, its special-token ids agree with
config.json; a chat with one generated 64x96 image + text renders through the chat
template with the vision placeholder and is expanded to t*h*w/4 image pads; a forward
pass gives finite, non-constant logits; 8 greedy tokens (EOS disabled) equal the argmax
of their logits. Prints a short report and exits 0, or prints FAIL: ... and exits 1.
"""

import argparse
import json
import os
import struct
import sys
import traceback
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_fixtures import make_image  # noqa: E402  (the fixtures' image generator, shared)

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class CheckError(Exception):
    pass


def fail_if(cond, msg):
    if cond:
        raise CheckError(msg)


def safetensors_dtypes(path):
    """Read the safetensors JSON header without loading data: {name: dtype}."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return {k: v["dtype"] for k, v in header.items() if k != "__metadata__"}


def check(model_dir, max_new_tokens, allow_non_bf16, prompt):
    import numpy as np
    import torch
    import transformers
    from PIL import Image
    from transformers import AutoProcessor, GenerationConfig, Qwen3VLForConditionalGeneration
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(int(os.environ.get("REFGEN_THREADS", "1")))
    torch.manual_seed(0)
    report = {"transformers": transformers.__version__, "torch": torch.__version__}

    # ---- files
    fail_if(not os.path.isdir(model_dir), f"{model_dir} is not a directory")
    files = sorted(os.listdir(model_dir))
    report["files"] = files
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json",
              "generation_config.json"):
        fail_if(f not in files, f"missing {f} in {model_dir}")
    fail_if("chat_template.json" not in files and "chat_template.jinja" not in files,
            "missing chat_template.json / chat_template.jinja")
    st_files = [f for f in files if f.endswith(".safetensors")]
    fail_if(not st_files, "no *.safetensors file")
    dtypes = {}
    for f in st_files:
        dtypes.update(safetensors_dtypes(os.path.join(model_dir, f)))
    dtype_set = sorted(set(dtypes.values()))
    report["safetensors"] = {"files": st_files, "tensors": len(dtypes), "dtypes": dtype_set}
    if not allow_non_bf16:
        bad = sorted(k for k, v in dtypes.items() if v != "BF16")
        fail_if(bad, f"{len(bad)} tensors are not BF16, e.g. {bad[:5]} ({[dtypes[k] for k in bad[:5]]})")

    with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
        raw_cfg = json.load(f)
    fail_if(raw_cfg.get("model_type") != "qwen3_vl", f"config.json model_type is {raw_cfg.get('model_type')!r}")

    # ---- model
    try:
        model, info = Qwen3VLForConditionalGeneration.from_pretrained(
            model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    except Exception as e:  # noqa: BLE001
        raise CheckError(f"from_pretrained failed: {type(e).__name__}: {e}") from e
    model.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        vals = info.get(key) or []
        fail_if(len(vals) > 0, f"{key} on load: {sorted(map(str, vals))[:20]}")
    fail_if(info.get("error_msgs"), f"load errors: {info.get('error_msgs')}")
    cfg = model.config
    tc, vc = cfg.text_config, cfg.vision_config
    n_params = sum(p.numel() for p in model.parameters())
    report["params"] = n_params
    report["config"] = {
        "vocab_size": tc.vocab_size, "hidden_size": tc.hidden_size, "layers": tc.num_hidden_layers,
        "heads": tc.num_attention_heads, "kv_heads": tc.num_key_value_heads, "head_dim": tc.head_dim,
        "rope_parameters": dict(tc.rope_parameters or {}), "tie_word_embeddings": cfg.tie_word_embeddings,
        "vision_depth": vc.depth, "vision_hidden": vc.hidden_size, "vision_heads": vc.num_heads,
        "deepstack_visual_indexes": list(vc.deepstack_visual_indexes),
    }
    emb = model.model.language_model.embed_tokens.weight
    if cfg.tie_word_embeddings:
        fail_if(not torch.equal(model.lm_head.weight, emb), "tie_word_embeddings but lm_head != embed_tokens")
        if "lm_head.weight" in dtypes:
            from safetensors import safe_open
            for f in st_files:
                with safe_open(os.path.join(model_dir, f), "pt") as sf:
                    if "lm_head.weight" in sf.keys():
                        lm = sf.get_tensor("lm_head.weight")
                    if "model.language_model.embed_tokens.weight" in sf.keys():
                        em = sf.get_tensor("model.language_model.embed_tokens.weight")
            fail_if(not torch.equal(lm, em), "tied model stores an lm_head.weight that differs from the embedding")
    else:
        fail_if("lm_head.weight" not in dtypes, "untied model without lm_head.weight")

    # ---- processor
    try:
        processor = AutoProcessor.from_pretrained(model_dir)
    except Exception as e:  # noqa: BLE001
        raise CheckError(f"AutoProcessor.from_pretrained failed: {type(e).__name__}: {e}") from e
    report["processor"] = {
        "class": type(processor).__name__,
        "image_processor": type(processor.image_processor).__name__,
        "tokenizer": type(processor.tokenizer).__name__,
        "len_tokenizer": len(processor.tokenizer),
    }
    fail_if(type(processor).__name__ != "Qwen3VLProcessor", f"AutoProcessor gave {type(processor).__name__}")
    tok = processor.tokenizer
    fail_if(len(tok) > tc.vocab_size, f"tokenizer has {len(tok)} tokens > vocab_size {tc.vocab_size}")
    for attr, tok_str in (("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>"),
                          ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>")):
        tid = tok.convert_tokens_to_ids(tok_str)
        fail_if(tid != getattr(cfg, attr), f"{tok_str} is id {tid} in the tokenizer but {attr}={getattr(cfg, attr)}")
    fail_if(processor.image_token_id != cfg.image_token_id, "processor.image_token_id != config.image_token_id")
    ip = processor.image_processor
    fail_if(ip.patch_size != vc.patch_size or ip.merge_size != vc.spatial_merge_size
            or ip.temporal_patch_size != vc.temporal_patch_size,
            f"image processor patch/merge/temporal {ip.patch_size}/{ip.merge_size}/{ip.temporal_patch_size} "
            f"!= vision config {vc.patch_size}/{vc.spatial_merge_size}/{vc.temporal_patch_size}")
    gen_cfg_disk = GenerationConfig.from_pretrained(model_dir)
    report["generation_config"] = {k: v for k, v in gen_cfg_disk.to_diff_dict().items() if k != "transformers_version"}

    # ---- render a chat with one image
    image = Image.fromarray(make_image(64, 96, seed=1234), mode="RGB")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    placeholder = "<|vision_start|><|image_pad|><|vision_end|>"
    fail_if(placeholder not in text, f"chat template did not emit {placeholder!r}; rendered: {text!r}")
    fail_if(not text.endswith("<|im_start|>assistant\n"), f"no generation prompt at the end: {text!r}")
    report["prompt_text"] = text
    inputs = processor(text=[text], images=[image], return_tensors="pt")
    ids = inputs["input_ids"]
    grid = inputs["image_grid_thw"]
    n_pad = int((ids == cfg.image_token_id).sum())
    fail_if(n_pad != int(grid.prod(-1).sum()) // 4, f"{n_pad} image pads but grid {grid.tolist()}")
    fail_if(int(ids.max()) >= tc.vocab_size, f"token id {int(ids.max())} >= vocab_size {tc.vocab_size}")
    report["grid_thw"] = grid.tolist()
    report["pixel_values"] = list(inputs["pixel_values"].shape)
    report["num_tokens"] = int(ids.shape[1])
    report["num_image_tokens"] = n_pad
    report["input_ids"] = ids[0].tolist()

    # ---- forward
    with torch.no_grad():
        out = model(**inputs)
        logits = out.logits
        fail_if(not torch.isfinite(logits).all(), "non-finite logits in the forward pass")
        last = logits[0, -1]
        fail_if(float(last.max() - last.min()) <= 0.0, "all logits of the last position are equal")
        report["last_logits"] = {"min": float(last.min()), "max": float(last.max()), "std": float(last.std()),
                                 "argmax": int(last.argmax())}
        report["rope_deltas"] = model.model.rope_deltas.reshape(-1).tolist()

        # ---- greedy generate (EOS disabled so that always max_new_tokens come out)
        model.model.rope_deltas = None
        saved = model.generation_config
        model.generation_config = GenerationConfig(eos_token_id=None, pad_token_id=0, bos_token_id=None)
        try:
            g = model.generate(**inputs, generation_config=GenerationConfig(
                do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=None, pad_token_id=0,
                output_logits=True, return_dict_in_generate=True))
        finally:
            model.generation_config = saved
        new = g.sequences[0, ids.shape[1]:]
        fail_if(new.numel() != max_new_tokens, f"generate produced {new.numel()} tokens, wanted {max_new_tokens}")
        step_logits = torch.stack([x[0] for x in g.logits])
        fail_if(not torch.isfinite(step_logits).all(), "non-finite logits during generation")
        fail_if(not torch.equal(step_logits.argmax(-1), new), "greedy tokens != argmax of step logits")
        fail_if(int(new[0]) != int(last.argmax()), "first generated token != argmax of the forward pass")
    eos = gen_cfg_disk.eos_token_id
    eos = [eos] if isinstance(eos, int) else list(eos or [])
    report["generated_ids"] = new.tolist()
    report["generated_text"] = tok.decode(new.tolist(), skip_special_tokens=False)
    report["eos_in_generated"] = any(int(t) in eos for t in new.tolist())
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_dir")
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--prompt", default="Describe this image.")
    ap.add_argument("--allow-non-bf16", action="store_true", help="do not fail on non-BF16 tensors")
    ap.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = ap.parse_args()
    try:
        rep = check(args.model_dir, args.max_new_tokens, args.allow_non_bf16, args.prompt)
    except CheckError as e:
        print(f"FAIL: {e}", flush=True)
        return 1
    except Exception as e:  # noqa: BLE001
        traceback.print_exc()
        print(f"FAIL: unexpected {type(e).__name__}: {e}", flush=True)
        return 1
    if args.json:
        print(json.dumps(rep, indent=2, ensure_ascii=False))
    else:
        c = rep["config"]
        print(f"transformers {rep['transformers']}, torch {rep['torch']}")
        print(f"files: {', '.join(rep['files'])}")
        print(f"safetensors: {rep['safetensors']['tensors']} tensors, dtypes {rep['safetensors']['dtypes']}")
        print(f"params: {rep['params']}  (text H={c['hidden_size']} L={c['layers']} heads={c['heads']}/"
              f"{c['kv_heads']}x{c['head_dim']} V={c['vocab_size']} tied={c['tie_word_embeddings']}; "
              f"vision depth={c['vision_depth']} D={c['vision_hidden']} heads={c['vision_heads']} "
              f"deepstack={c['deepstack_visual_indexes']})")
        print(f"rope_parameters: {c['rope_parameters']}")
        print(f"processor: {rep['processor']}")
        print(f"prompt: {rep['prompt_text']!r}")
        print(f"image 64x96 -> grid_thw {rep['grid_thw']}, pixel_values {rep['pixel_values']}, "
              f"{rep['num_image_tokens']} image tokens, {rep['num_tokens']} tokens total, "
              f"rope_deltas {rep['rope_deltas']}")
        print(f"last-position logits: {rep['last_logits']}")
        print(f"generated ids ({len(rep['generated_ids'])}, greedy, EOS disabled): {rep['generated_ids']}")
        print(f"generated text: {rep['generated_text']!r}  (eos among them: {rep['eos_in_generated']})")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
