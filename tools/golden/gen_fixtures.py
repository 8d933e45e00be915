#!/usr/bin/env python3
"""Golden-fixture generator for q3vl (reference: Hugging Face transformers Qwen3-VL).

Creates tiny random Qwen3-VL checkpoints (bf16 safetensors, HF layout) and a set of
prompt cases, runs the *real* HF implementation on them (float32, eager attention)
and dumps every intermediate the C++ side wants to compare against, as .npy files,
plus tests/fixtures/golden/manifest.json describing everything.

Everything is deterministic (fixed seeds, 1 torch thread); running it twice gives
byte-identical files. No number in the output is typed by hand: all come from HF.

Run inside the reference chroot (see tests/fixtures/golden/README.md):

    bash ../shared/refgen/setup.sh            # once, as root
    ../shared/refgen/inroot.sh -b <repo>:/repo -- \
        python3 /repo/tools/golden/gen_fixtures.py

Options: --out (default /repo/tests/fixtures/golden), --tokenizer-dir (default
/repo/.deps/tokenizer-qwen3: tokenizer.json + tokenizer_config.json of Qwen3),
--ref-dir (default /repo/assets/qwen3-vl, the repo's copies of the Qwen3-VL-4B-Instruct chat_template.json and
generation_config.json).
"""

import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings

import numpy as np
import torch

warnings.filterwarnings("ignore")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import (  # noqa: E402
    AutoImageProcessor,
    AutoTokenizer,
    GenerationConfig,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
)
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()

try:
    from transformers import Qwen3VLVideoProcessor  # noqa: E402
except ImportError:  # pragma: no cover
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402

NUM_GREEDY = 32
TOPK = 16

# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

PREPROCESSOR_CONFIG = {
    "size": {"longest_edge": 65536, "shortest_edge": 4096},
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
    "processor_class": "Qwen3VLProcessor",
    "image_processor_type": "Qwen2VLImageProcessorFast",
}

MODELS = {
    "full": dict(
        seed=1001,
        text=dict(
            vocab_size=151936, hidden_size=16, num_hidden_layers=3, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, intermediate_size=48, mrope_section=[4, 2, 2],
            rope_theta=5000000.0, tie=True, bos_token_id=151643, eos_token_id=151645,
            max_position_embeddings=262144,
        ),
        vision=dict(
            depth=3, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=16,
            num_position_embeddings=2304, deepstack_visual_indexes=[0, 1, 2],
        ),
        ids=dict(image_token_id=151655, video_token_id=151656,
                 vision_start_token_id=151652, vision_end_token_id=151653),
        real_tokenizer=True,
    ),
    "small_a": dict(
        seed=2002,
        text=dict(
            vocab_size=512, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, head_dim=16, intermediate_size=128, mrope_section=[4, 2, 2],
            rope_theta=5000000.0, tie=False, bos_token_id=None, eos_token_id=504,
            max_position_embeddings=8192,
        ),
        vision=dict(
            depth=4, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64,
            num_position_embeddings=576, deepstack_visual_indexes=[0, 2, 3],
        ),
        ids=dict(image_token_id=502, video_token_id=503,
                 vision_start_token_id=500, vision_end_token_id=501),
        real_tokenizer=False,
    ),
    "small_b": dict(
        seed=3003,
        text=dict(
            vocab_size=384, hidden_size=48, num_hidden_layers=3, num_attention_heads=6,
            num_key_value_heads=3, head_dim=32, intermediate_size=96, mrope_section=[6, 5, 5],
            rope_theta=5000000.0, tie=True, bos_token_id=None, eos_token_id=374,
            max_position_embeddings=8192,
        ),
        vision=dict(
            depth=2, hidden_size=48, num_heads=3, intermediate_size=96, out_hidden_size=48,
            num_position_embeddings=1024, deepstack_visual_indexes=[0, 1],
        ),
        ids=dict(image_token_id=372, video_token_id=373,
                 vision_start_token_id=370, vision_end_token_id=371),
        real_tokenizer=False,
    ),
}

# --------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------

CASES = {
    "full_image_system": dict(
        model="full", images=[(64, 96)], seed=11,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe this image."}]},
        ],
        notes="Full vocab, real tokenizer + Qwen3-VL chat template; system prompt; one 64x96 image (no resize).",
    ),
    "full_text_only": dict(
        model="full", images=[], seed=12,
        messages=[{"role": "user", "content": "Write one sentence about the sea."}],
        notes="Full vocab, real tokenizer + Qwen3-VL chat template; text only (no pixels).",
    ),
    "full_two_turn": dict(
        model="full", images=[(96, 64)], seed=13,
        messages=[
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is in this picture?"}]},
        ],
        first_turn=True,
        notes="Full vocab, two user turns; image 96x64 (no resize) in the second user turn. "
              "first_turn_prompt = render of messages[:1] with add_generation_prompt=True.",
    ),
    "small_a_resize_odd": dict(
        model="small_a", images=[(75, 101)], seed=21, text_before=5, text_after=7,
        notes="Hand-built ids; one 75x101 image, resized by the processor (smart_resize) to 64x96.",
    ),
    "small_a_two_images": dict(
        model="small_a", images=[(64, 64), (97, 130)], seed=22, text_before=4, text_after=6,
        notes="Hand-built ids; two images of different sizes back to back in one prompt "
              "([vs] pads [ve][vs] pads [ve]); the second (97x130) is resized to 96x128.",
    ),
    "small_b_image": dict(
        model="small_b", images=[(96, 96)], seed=31, text_before=6, text_after=5,
        notes="Hand-built ids; one 96x96 image (no resize); only two DeepStack levels.",
    ),
    "small_b_text_only": dict(
        model="small_b", images=[], seed=32, text_before=12, text_after=0,
        notes="Hand-built ids; text only (no pixels).",
    ),
}


# Multi-turn chats generated turn by turn, as a chat front end would: each reply is HF's own
# greedy generation (stopping at EOS or max_new_tokens), fed back as the assistant message.
CHATS = {
    "full_chat": dict(
        model="full", seed=41, max_new_tokens=12,
        turns=[
            dict(text="Hello!", images=[]),
            dict(text="What is in this picture?", images=[(96, 64)]),
            dict(text="And now?", images=[(64, 64)]),
        ],
        notes="Three user turns through the chat template; images in turns 2 and 3; every assistant "
              "message is HF's greedy reply to the previous prompt (EOS stops it).",
    ),
}


# Vision tower alone on items the chat cases don't reach: a video item (grid_t > 1, each frame
# pair its own attention segment) next to an image, in one call.
VISION_CASES = {
    "small_a_video_grid": dict(model="small_a", seed=51, grids=[[1, 4, 4], [2, 4, 6], [3, 2, 2]],
                               notes="Seeded pixel values in [-1, 1] (not from a video file); items: an image "
                                     "(1,4,4), a 2-frame-pair video (2,4,6) and a 3-frame-pair video (3,2,2)."),
}


# 3-D positions alone for mixes the chat cases don't reach: an image, then a 2-frame-pair video
# whose frame pairs are separate blocks with (timestamp) text between them, as Qwen3-VL prompts it.
ROPE_CASES = {
    "small_a_image_and_video_positions": dict(
        model="small_a", image_grid=[1, 4, 4], video_grid=[2, 4, 4],
        notes="ids: text, [vs] 4 image pads [ve], text, [vs] 4 video pads [ve], text, [vs] 4 video pads [ve], "
              "text; grids_in_order lists the image and the video as they appear."),
}


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


class ArrayWriter:
    """Writes .npy files (little-endian, C order) and collects their manifest entries."""

    def __init__(self, folder):
        self.folder = folder
        self.entries = {}

    def add(self, name, arr, dtype):
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        arr = np.ascontiguousarray(np.asarray(arr).astype(dtype))
        assert arr.dtype.byteorder in ("<", "=", "|")
        fname = name + ".npy"
        np.save(os.path.join(self.folder, fname), arr, allow_pickle=False)
        self.entries[name] = {"file": fname, "dtype": str(np.dtype(dtype).name), "shape": list(arr.shape)}
        return arr


def make_image(h, w, seed):
    """Smooth gradients + sinusoid + seeded noise, uint8 RGB [h, w, 3]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u = xx / max(w - 1, 1)
    v = yy / max(h - 1, 1)
    ph = rng.uniform(0.0, 2.0 * np.pi, size=3)
    fr = rng.uniform(1.0, 3.0, size=(3, 2))
    chans = []
    for c in range(3):
        base = [255.0 * u, 255.0 * v, 255.0 * (1.0 - 0.5 * (u + v))][c]
        wave = 60.0 * np.sin(2.0 * np.pi * (fr[c, 0] * u + fr[c, 1] * v) + ph[c])
        chans.append(0.6 * base + wave + 50.0)
    img = np.stack(chans, axis=-1) + rng.normal(0.0, 14.0, size=(h, w, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def text_config_dict(t):
    """text_config keyword arguments of a model spec's `text` (gen_moe_fixtures.py adds the experts)."""
    return dict(
        vocab_size=t["vocab_size"], hidden_size=t["hidden_size"], intermediate_size=t["intermediate_size"],
        num_hidden_layers=t["num_hidden_layers"], num_attention_heads=t["num_attention_heads"],
        num_key_value_heads=t["num_key_value_heads"], head_dim=t["head_dim"], hidden_act="silu",
        max_position_embeddings=t["max_position_embeddings"], rms_norm_eps=1e-6, attention_bias=False,
        attention_dropout=0.0,
        rope_parameters={"rope_type": "default", "rope_theta": t["rope_theta"],
                         "mrope_section": list(t["mrope_section"]), "mrope_interleaved": True},
        bos_token_id=t["bos_token_id"], eos_token_id=t["eos_token_id"], tie_word_embeddings=t["tie"],
    )


def vision_config_dict(v):
    return dict(
        depth=v["depth"], hidden_size=v["hidden_size"], hidden_act="gelu_pytorch_tanh",
        intermediate_size=v["intermediate_size"], num_heads=v["num_heads"], in_channels=3, patch_size=16,
        spatial_merge_size=2, temporal_patch_size=2, out_hidden_size=v["out_hidden_size"],
        num_position_embeddings=v["num_position_embeddings"],
        deepstack_visual_indexes=list(v["deepstack_visual_indexes"]),
    )


def build_config(spec):
    t, v, ids = spec["text"], spec["vision"], spec["ids"]
    return Qwen3VLConfig(text_config=text_config_dict(t), vision_config=vision_config_dict(v), tie_word_embeddings=t["tie"],
                         **ids)


INIT_DESCRIPTION = (
    "torch.manual_seed(seed); HF default init (weights normal std 0.02, biases 0, norm weights 1); then, so "
    "that every component visibly matters: text decoder Linear weights x5, vision block Linear weights x5, "
    "merger/deepstack-merger Linear weights x3, vision pos_embed x5 (patch_embed and token embeddings kept); "
    "every bias := 0.05*N(0,1) and every norm weight := 1 + 0.2*N(0,1) (torch.Generator seeded {seed}, "
    "parameters in named_parameters order); the final text RMSNorm weight is further multiplied by "
    "{final_norm_scale} so that logits have std ~1. Then every parameter is rounded to bfloat16: the float32 model "
    "that produced the fixtures is exactly the bf16 checkpoint."
)


def perturb_init(model, spec):
    """Deterministic post-init rescaling (see INIT_DESCRIPTION). Returns the final-norm scale."""
    gen = torch.Generator().manual_seed(spec["seed"] + 7)
    hidden = spec["text"]["hidden_size"]
    final_norm_scale = float(round(1.0 / (0.02 * hidden ** 0.5)))
    with torch.no_grad():
        for k, p in model.named_parameters():
            if p.dim() >= 2:
                if "embed_tokens" in k or k == "lm_head.weight" or "patch_embed" in k:
                    continue
                if k.endswith("pos_embed.weight"):
                    p.mul_(5.0)
                elif "merger" in k:
                    p.mul_(3.0)
                else:
                    p.mul_(5.0)
            elif k.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=gen))
            elif k.endswith(".weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
                if k == "model.language_model.norm.weight":
                    p.mul_(final_norm_scale)
            else:
                raise RuntimeError(f"unexpected parameter {k}")
    return final_norm_scale


def make_model(name, spec, model_dir, ref_dir, tok_dir, log):
    """Random init (seeded) -> round to bf16 -> save bf16 -> reload float32 eager."""
    cfg = build_config(spec)
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    final_norm_scale = perturb_init(model, spec)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    reference_state = {k: v.clone() for k, v in model.state_dict().items()}

    os.makedirs(model_dir, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(model_dir)
    write_json(os.path.join(model_dir, "preprocessor_config.json"), PREPROCESSOR_CONFIG)
    extra = {}
    if spec["real_tokenizer"]:
        shutil.copyfile(os.path.join(ref_dir, "chat_template.json"), os.path.join(model_dir, "chat_template.json"))
        shutil.copyfile(os.path.join(ref_dir, "generation_config.json"),
                        os.path.join(model_dir, "generation_config.json"))
        extra["tokenizer_sha256"] = sha256_file(os.path.join(tok_dir, "tokenizer.json"))
        extra["tokenizer_config_sha256"] = sha256_file(os.path.join(tok_dir, "tokenizer_config.json"))
        extra["tokenizer_files_not_included"] = [
            "tokenizer.json", "tokenizer_config.json"]
        extra["chat_template_source_sha256"] = sha256_file(os.path.join(ref_dir, "chat_template.json"))
        extra["generation_config_source_sha256"] = sha256_file(os.path.join(ref_dir, "generation_config.json"))
    del model

    loaded, info = Qwen3VLForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    loaded.eval()
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(key):
            raise RuntimeError(f"{name}: {key} on reload: {info[key]}")
    state = loaded.state_dict()
    for k, v in reference_state.items():
        if k not in state:
            raise RuntimeError(f"{name}: reloaded model lacks {k}")
        if state[k].dtype != torch.float32 or not torch.equal(state[k], v):
            raise RuntimeError(f"{name}: reloaded tensor {k} differs from the bf16-rounded init")
    n_params = sum(p.numel() for p in loaded.parameters())
    from safetensors import safe_open
    with safe_open(os.path.join(model_dir, "model.safetensors"), "pt") as f:
        keys = sorted(f.keys())
        dtypes = sorted({str(f.get_slice(k).get_dtype()) for k in keys})
    log(f"model {name}: {n_params} params, {len(keys)} tensors in model.safetensors ({dtypes}), "
        f"lm_head stored: {'lm_head.weight' in keys}")
    entry = {
        "dir": f"models/{name}",
        "seed": spec["seed"],
        "num_parameters": n_params,
        "num_tensors": len(keys),
        "safetensors_dtypes": dtypes,
        "lm_head_weight_stored": "lm_head.weight" in keys,
        "tie_word_embeddings": bool(spec["text"]["tie"]),
        "files": sorted(os.listdir(model_dir)),
        "init": INIT_DESCRIPTION.format(final_norm_scale=final_norm_scale, seed=spec["seed"] + 7),
    }
    entry.update(extra)
    return loaded, entry


# --------------------------------------------------------------------------------------
# running one case
# --------------------------------------------------------------------------------------

class Recorder:
    def __init__(self):
        self.handles = []
        self.data = {}

    def pre(self, module, name):
        def hook(mod, args, kwargs):
            x = args[0] if args else kwargs.get("hidden_states")
            self.data.setdefault(name + ".in", []).append(x.detach().clone())
        self.handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))

    def post(self, module, name):
        def hook(mod, args, out):
            o = out[0] if isinstance(out, tuple) else out
            self.data.setdefault(name + ".out", []).append(o.detach().clone())
        self.handles.append(module.register_forward_hook(hook))

    def remove(self):
        for h in self.handles:
            h.remove()
        self.handles = []


def run_case(case_name, case, model, model_spec, case_dir, processor, log):
    torch.manual_seed(case["seed"])
    np.random.seed(case["seed"])
    cfg = model.config
    vis = model.model.visual
    V = cfg.text_config.vocab_size
    full_vocab = model_spec["real_tokenizer"]
    aw = ArrayWriter(case_dir)
    entry = {"dir": f"cases/{case_name}", "model": case["model"], "notes": case["notes"]}

    # ---- images (PNG bytes are the input)
    images, img_entries = [], []
    for i, (h, w) in enumerate(case["images"]):
        fname = f"image{i}.png"
        arr = make_image(h, w, seed=case["seed"] * 100 + i)
        Image.fromarray(arr, mode="RGB").save(os.path.join(case_dir, fname), format="PNG")
        with Image.open(os.path.join(case_dir, fname)) as im:
            im.load()
            assert im.mode == "RGB"
            images.append(im.copy())
        img_entries.append({"file": fname, "height": h, "width": w})
    entry["images"] = img_entries

    # ---- inputs
    if full_vocab:
        messages = case["messages"]
        prompt_text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        if images:
            enc = processor(text=[prompt_text], images=images, return_tensors="pt")
        else:
            enc = processor(text=[prompt_text], return_tensors="pt")
        entry["messages"] = copy.deepcopy(case["messages"])
        entry["prompt_text"] = prompt_text
        input_ids = enc["input_ids"].to(torch.long)
        attention_mask = enc["attention_mask"].to(torch.long)
        mm_token_type_ids = enc["mm_token_type_ids"].to(torch.long)
        pixel_values = enc.get("pixel_values")
        image_grid_thw = enc.get("image_grid_thw")
        if case.get("first_turn"):
            ft_text = processor.apply_chat_template(messages[:1], add_generation_prompt=True, tokenize=False)
            ft = processor(text=[ft_text], return_tensors="pt")
            entry["first_turn_prompt_text"] = ft_text
            entry["first_turn_prompt"] = [int(x) for x in ft["input_ids"][0].tolist()]
            aw.add("first_turn_prompt_ids", ft["input_ids"].to(torch.long), np.int64)
    else:
        ids = model_spec["ids"]
        rng = np.random.default_rng(case["seed"])
        n_special_lo = ids["vision_start_token_id"]
        pixel_values = image_grid_thw = None
        if images:
            enc = processor(images=images, return_tensors="pt")
            pixel_values, image_grid_thw = enc["pixel_values"], enc["image_grid_thw"]
        seq = [int(x) for x in rng.integers(0, n_special_lo, size=case["text_before"])]
        for k in range(len(images)):
            n_tok = int(image_grid_thw[k].prod().item()) // 4
            seq += [ids["vision_start_token_id"]] + [ids["image_token_id"]] * n_tok + [ids["vision_end_token_id"]]
        seq += [int(x) for x in rng.integers(0, n_special_lo, size=case["text_after"])]
        input_ids = torch.tensor([seq], dtype=torch.long)
        attention_mask = torch.ones_like(input_ids)
        # same rule as ProcessorMixin.create_mm_token_type_ids: 1 at image pads, 2 at video pads
        mm_token_type_ids = torch.zeros_like(input_ids)
        mm_token_type_ids[input_ids == ids["image_token_id"]] = 1
        mm_token_type_ids[input_ids == ids["video_token_id"]] = 2

    S = input_ids.shape[1]
    n_img_tok = int((input_ids == cfg.image_token_id).sum())
    aw.add("input_ids", input_ids, np.int64)
    aw.add("attention_mask", attention_mask, np.int64)
    aw.add("mm_token_type_ids", mm_token_type_ids, np.int64)
    has_pix = pixel_values is not None
    if has_pix:
        pixel_values = pixel_values.to(torch.float32)
        image_grid_thw = image_grid_thw.to(torch.long)
        aw.add("pixel_values", pixel_values, np.float32)
        aw.add("image_grid_thw", image_grid_thw, np.int64)
        assert n_img_tok == int(image_grid_thw.prod(-1).sum()) // 4
        for e, g in zip(img_entries, image_grid_thw.tolist()):
            e["resized_height"], e["resized_width"] = g[1] * 16, g[2] * 16
            e["grid_thw"] = g
            e["num_image_tokens"] = g[0] * g[1] * g[2] // 4
    else:
        assert n_img_tok == 0

    mkw = dict(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids)
    if has_pix:
        mkw.update(pixel_values=pixel_values, image_grid_thw=image_grid_thw)

    with torch.no_grad():
        # ---- 3-D positions, called the way Qwen3VLModel.compute_3d_position_ids calls it
        model.model.rope_deltas = None
        position_ids, rope_deltas = model.model.get_rope_index(
            input_ids, image_grid_thw=image_grid_thw if has_pix else None, video_grid_thw=None,
            attention_mask=attention_mask, mm_token_type_ids=mm_token_type_ids)
        aw.add("position_ids", position_ids, np.int64)
        aw.add("rope_deltas", rope_deltas.reshape(1, 1), np.int64)
        if not has_pix:
            # the model's forward does not call get_rope_index without grids; it uses arange.
            ar = torch.arange(S).view(1, 1, S).expand(3, 1, S)
            assert torch.equal(position_ids, ar) and int(rope_deltas.reshape(-1)[0]) == 0

        # ---- vision tower pieces
        if has_pix:
            pv = pixel_values.type(vis.dtype)
            patch = vis.patch_embed(pv)
            pos = vis.fast_pos_embed_interpolate(image_grid_thw)
            aw.add("vision_patch_embed", patch, np.float32)
            aw.add("vision_pos_embed", pos, np.float32)
            rec = Recorder()
            rec.pre(vis.blocks[0], "blk0")
            try:
                vout = model.model.get_image_features(pixel_values, image_grid_thw, return_dict=True)
            finally:
                rec.remove()
            # check: input of block 0 is patch_embed + pos_embed
            assert torch.equal(rec.data["blk0.in"][0], patch + pos.to(patch.dtype)), "block0 input != patch+pos"
            image_features = torch.cat(list(vout.pooler_output), dim=0)
            deepstack = torch.stack(list(vout.deepstack_features), dim=0)
            assert image_features.shape == (n_img_tok, cfg.text_config.hidden_size)
            assert deepstack.shape == (len(cfg.vision_config.deepstack_visual_indexes), n_img_tok,
                                       cfg.text_config.hidden_size)
            aw.add("vision_last_hidden", vout.last_hidden_state, np.float32)
            aw.add("image_features", image_features, np.float32)
            aw.add("deepstack_features", deepstack, np.float32)

        # ---- prefill with hidden states (and hooks to pin down their meaning)
        model.model.rope_deltas = None
        rec = Recorder()
        layers = model.model.language_model.layers
        for li, layer in enumerate(layers):
            rec.pre(layer, f"L{li}")
            rec.post(layer, f"L{li}")
        rec.post(model.model.language_model.norm, "norm")
        try:
            out = model(**mkw, output_hidden_states=True, use_cache=True, return_dict=True)
        finally:
            rec.remove()
        if has_pix:
            assert torch.equal(model.model.rope_deltas.reshape(-1), rope_deltas.reshape(-1)), "rope_deltas mismatch"
        else:
            assert model.model.rope_deltas is None  # text-only prefill: plain arange positions
        hs = torch.stack([h[0] for h in out.hidden_states], dim=0)  # [L+1, S, H]
        L = cfg.text_config.num_hidden_layers
        assert hs.shape == (L + 1, S, cfg.text_config.hidden_size)
        # semantics checks (see manifest.conventions.hidden_states)
        emb = model.model.language_model.embed_tokens(input_ids)[0]
        if has_pix:
            vmask = (input_ids[0] == cfg.image_token_id)
            exp0 = emb.clone()
            exp0[vmask] = image_features
        else:
            vmask = torch.zeros(S, dtype=torch.bool)
            exp0 = emb
        assert torch.equal(hs[0], exp0), "hidden_states[0] != embeddings with image rows scattered"
        assert torch.equal(hs[0], rec.data["L0.in"][0][0])
        K = len(cfg.vision_config.deepstack_visual_indexes) if has_pix else 0
        for li in range(L - 1):
            assert torch.equal(hs[li + 1], rec.data[f"L{li}.out"][0][0]), f"hidden_states[{li + 1}] != layer {li} output"
            nxt_in = rec.data[f"L{li + 1}.in"][0][0]
            exp_in = hs[li + 1].clone()
            if li < K:
                exp_in[vmask] = exp_in[vmask] + deepstack[li]
            assert torch.equal(nxt_in, exp_in), f"layer {li + 1} input != hidden_states[{li + 1}] (+deepstack {li})"
        last_pre = rec.data[f"L{L - 1}.out"][0][0].clone()
        if L - 1 < K:
            last_pre[vmask] = last_pre[vmask] + deepstack[L - 1]
        assert torch.equal(hs[L], rec.data["norm.out"][0][0]), "hidden_states[L] != final norm output"
        assert torch.allclose(hs[L], model.model.language_model.norm(last_pre[None])[0], atol=0, rtol=0)
        aw.add("hidden_states", hs, np.float32)

        logits = out.logits[0]  # [S, V]
        assert logits.shape == (S, V)
        if not torch.isfinite(logits).all():
            raise RuntimeError(f"{case_name}: non-finite prefill logits")
        if float(logits[-1].max() - logits[-1].min()) <= 0:
            raise RuntimeError(f"{case_name}: all prefill logits equal")
        if full_vocab:
            aw.add("prefill_logits", logits[-1:], np.float32)
        else:
            aw.add("prefill_logits", logits, np.float32)

        # ---- greedy decode through the KV cache with HF generate (EOS disabled)
        model.model.rope_deltas = None
        gen_cfg = GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=NUM_GREEDY, min_new_tokens=0,
            eos_token_id=None, pad_token_id=0, bos_token_id=None, repetition_penalty=1.0,
            temperature=None, top_k=None, top_p=None,
            output_logits=True, output_scores=True, return_dict_in_generate=True, use_cache=True)
        saved = model.generation_config
        model.generation_config = GenerationConfig(eos_token_id=None, pad_token_id=0, bos_token_id=None)
        try:
            g = model.generate(**mkw, generation_config=gen_cfg)
        finally:
            model.generation_config = saved
        seqs = g.sequences[0]
        assert torch.equal(seqs[:S], input_ids[0])
        tokens = seqs[S:]
        if tokens.numel() != NUM_GREEDY:
            raise RuntimeError(f"{case_name}: generate produced {tokens.numel()} tokens")
        step_logits = torch.stack([x[0] for x in g.logits], dim=0).to(torch.float32)  # [32, V]
        step_scores = torch.stack([x[0] for x in g.scores], dim=0).to(torch.float32)
        assert torch.equal(step_logits, step_scores), "logits processors changed the scores"
        am = step_logits.argmax(-1)
        if not torch.equal(am, tokens):
            raise RuntimeError(f"{case_name}: greedy tokens != argmax of recorded logits")
        d0 = (step_logits[0] - logits[-1]).abs().max().item()
        if d0 > 1e-5:
            raise RuntimeError(f"{case_name}: generate step 0 logits differ from the prefill by {d0}")
        if not torch.isfinite(step_logits).all():
            raise RuntimeError(f"{case_name}: non-finite step logits")
        aw.add("greedy_tokens", tokens, np.int64)
        if full_vocab:
            tv, ti = torch.topk(step_logits, TOPK, dim=-1, largest=True, sorted=True)
            aw.add("step_topk_ids", ti, np.int64)
            aw.add("step_topk_logits", tv, np.float32)
        else:
            aw.add("step_logits", step_logits, np.float32)

        # ---- independent check: one uncached forward over prompt + 31 generated tokens
        model.model.rope_deltas = None
        full_ids = seqs[None, : S + NUM_GREEDY - 1]
        ext = dict(mkw)
        ext["input_ids"] = full_ids
        ext["attention_mask"] = torch.ones_like(full_ids)
        ext["mm_token_type_ids"] = torch.cat(
            [mm_token_type_ids, torch.zeros((1, NUM_GREEDY - 1), dtype=torch.long)], dim=1)
        ref = model(**ext, use_cache=False, return_dict=True).logits[0, S - 1:]
        cache_diff = (ref - step_logits).abs().max().item()
        if cache_diff > 1e-4:
            raise RuntimeError(f"{case_name}: cached decode differs from uncached forward by {cache_diff}")
        model.model.rope_deltas = None

    eos = cfg.text_config.eos_token_id
    eos_ids = sorted(set([eos] if isinstance(eos, int) else list(eos or [])))
    if full_vocab:
        eos_ids = sorted(set(eos_ids) | {151643, 151645})
    tok_list = [int(x) for x in tokens.tolist()]
    top2 = torch.topk(step_logits, 2, dim=-1).values
    margin = (top2[:, 0] - top2[:, 1])
    entry["sequence_length"] = S
    entry["num_image_tokens"] = n_img_tok
    entry["greedy"] = {
        "num_tokens": NUM_GREEDY,
        "tokens": tok_list,
        "eos_ids_checked": eos_ids,
        "eos_appeared": any(t in eos_ids for t in tok_list),
        "eos_positions": [i for i, t in enumerate(tok_list) if t in eos_ids],
        "min_top1_top2_margin": float(margin.min()),
        "max_abs_diff_cached_vs_uncached": cache_diff,
    }
    if full_vocab:
        entry["greedy"]["decoded_text"] = processor.tokenizer.decode(tok_list, skip_special_tokens=False)
    entry["rope_delta"] = int(rope_deltas.reshape(-1)[0])
    entry["stats"] = {
        "prefill_last_logits_std": float(logits[-1].std()),
        "prefill_last_logits_range": [float(logits[-1].min()), float(logits[-1].max())],
        "hidden_states_abs_max": float(hs.abs().max()),
    }
    if has_pix:
        entry["stats"]["image_features_std"] = float(image_features.std())
        entry["stats"]["deepstack_features_std"] = float(deepstack.std())
    entry["arrays"] = aw.entries
    log(f"case {case_name}: S={S} image_tokens={n_img_tok} delta={entry['rope_delta']} "
        f"tokens={tok_list[:8]}... eos={entry['greedy']['eos_appeared']} "
        f"margin={entry['greedy']['min_top1_top2_margin']:.3g} cache_diff={cache_diff:.2e} "
        f"logit_std={entry['stats']['prefill_last_logits_std']:.3g}")
    return entry


CONVENTIONS = {
    "arrays": "numpy .npy, little-endian, C order; float32 ('float32') or int64 ('int64'). Batch size 1.",
    "precision": "All fixtures come from the HF model in float32 with attn_implementation='eager', loaded from "
                 "the bf16 model.safetensors (weights are exactly the bf16 values). Compare with tolerances, "
                 "not bit-exactly, unless your path is float32 too.",
    "input_ids": "[1,S]. Full-vocab cases: produced by Qwen3VLProcessor (real Qwen tokenizer, Qwen3-VL chat "
                 "template, image pads expanded to t*h*w/4). Small-vocab cases: built by hand: seeded random "
                 "text ids < vision_start id, then per image [vision_start] + image_pad*(t*h*w/4) + [vision_end] "
                 "(images back to back), then more text ids.",
    "mm_token_type_ids": "[1,S] int64: 1 at image-pad positions, 0 elsewhere (HF 5.x needs this for get_rope_index; "
                         "the processor computes it with the same rule).",
    "pixel_values": "[N,1536] float32 from Qwen2VLImageProcessor (torchvision backend, the class the saved "
                    "'Qwen2VLImageProcessorFast' maps to in transformers 5) with the model's preprocessor_config.json "
                    "(min_pixels 4096, max_pixels 65536). Input = the PNG files image*.png of the case, opened with "
                    "PIL (mode RGB).",
    "image_grid_thw": "[n,3] int64 (t,h,w) in patches.",
    "position_ids": "[3,1,S] int64 (T,H,W) = Qwen3VLModel.get_rope_index(input_ids, mm_token_type_ids, "
                    "image_grid_thw, attention_mask). For text-only cases this equals arange on all 3 axes "
                    "(the model's forward then uses plain arange positions itself; checked equal).",
    "rope_deltas": "[1,1] int64. Decode position of absolute cache index p is p + rope_delta on all 3 axes.",
    "vision_patch_embed": "[N,D] = model.visual.patch_embed(pixel_values).",
    "vision_pos_embed": "[N,D] = model.visual.fast_pos_embed_interpolate(image_grid_thw) (bilinear, already in "
                        "2x2-merge order); the input of vision block 0 is exactly vision_patch_embed + "
                        "vision_pos_embed (checked).",
    "vision_last_hidden": "[N,D] output of the last vision block (before the final merger), "
                          "get_image_features(...).last_hidden_state.",
    "image_features": "[N/4,H] final merger output (get_image_features(...).pooler_output, concatenated over "
                      "images).",
    "deepstack_features": "[K,N/4,H], K = len(deepstack_visual_indexes); level k comes from vision block "
                          "deepstack_visual_indexes[k] and is added after decoder layer k.",
    "hidden_states": "[L+1,S,H] from output_hidden_states=True in the prefill (transformers 5.12 "
                     "capture_outputs hooks on Qwen3VLTextDecoderLayer). Index 0 = input of decoder layer 0 = "
                     "token embeddings with the image_features rows scattered at image-pad positions (no "
                     "DeepStack). Index i for 1 <= i <= L-1 = raw output of decoder layer i-1 (after both "
                     "residual adds) BEFORE the DeepStack add: for i-1 < K the input of layer i is "
                     "hidden_states[i] + deepstack_features[i-1] at image-pad positions (checked with hooks). "
                     "Index L (last) = output of the final RMSNorm (model.language_model.norm), i.e. "
                     "last_hidden_state, NOT the raw output of layer L-1 (HF replaces the last captured entry "
                     "with last_hidden_state). If L-1 < K the DeepStack add of layer L-1 happens before that norm.",
    "prefill_logits": "Small-vocab models: all positions [S,V]. Full model: last position only [1,V].",
    "greedy": "HF generate(do_sample=False, max_new_tokens=32) through the DynamicCache with EOS disabled "
              "(generation_config eos_token_id=None), so always 32 tokens even if an EOS id is produced "
              "(see cases.*.greedy.eos_appeared). Step 0 = prediction from the prefill's last position, step i "
              "= prediction after feeding greedy_tokens[i-1]. greedy_tokens[i] = argmax(step logits i) (checked; "
              "no logits processors active: output_scores == output_logits). Also checked: an uncached forward "
              "over prompt + 31 generated tokens reproduces the step logits (max diff in "
              "greedy.max_abs_diff_cached_vs_uncached).",
    "step_logits": "Small-vocab models: [32,V] float32, raw logits of every greedy step.",
    "step_topk": "Full model: step_topk_ids [32,16] int64 and step_topk_logits [32,16] float32 = torch.topk(k=16, "
                 "sorted=True) of each step's raw logits, descending.",
    "first_turn_prompt_ids": "full_two_turn only: [1,T] ids of messages[:1] rendered with add_generation_prompt.",
}


def run_chat(chat_name, chat, model, case_dir, processor, tokenizer, log):
    torch.manual_seed(chat["seed"])
    eos = [151645, 151643]
    messages, images, turns = [], [], []
    for t, turn in enumerate(chat["turns"]):
        content = []
        for i, (h, w) in enumerate(turn["images"]):
            fname = f"turn{t}_image{i}.png"
            arr = make_image(h, w, seed=chat["seed"] * 100 + 10 * t + i)
            Image.fromarray(arr, mode="RGB").save(os.path.join(case_dir, fname), format="PNG")
            with Image.open(os.path.join(case_dir, fname)) as im:
                im.load()
                images.append(im.copy())
            content.append({"type": "image"})
        content.append({"type": "text", "text": turn["text"]})
        messages.append({"role": "user", "content": content})
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=images or None, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=chat["max_new_tokens"],
                                 eos_token_id=eos, pad_token_id=151643)
        new = [int(x) for x in out[0, enc["input_ids"].shape[1]:].tolist()]
        stopped = bool(new) and new[-1] in eos
        if stopped:
            new = new[:-1]
        reply = tokenizer.decode(new, skip_special_tokens=True)
        messages.append({"role": "assistant", "content": reply})
        np.save(os.path.join(case_dir, f"turn{t}_input_ids.npy"), enc["input_ids"].numpy().astype(np.int64))
        np.save(os.path.join(case_dir, f"turn{t}_output_ids.npy"), np.array(new, dtype=np.int64))
        turns.append({"user": turn["text"], "images": [f"turn{t}_image{i}.png" for i in range(len(turn["images"]))],
                      "input_ids": f"turn{t}_input_ids.npy", "output_ids": f"turn{t}_output_ids.npy",
                      "prompt_tokens": int(enc["input_ids"].shape[1]), "reply": reply, "stopped_at_eos": stopped})
        log(f"chat {chat_name} turn {t}: {len(new)} tokens, eos={stopped}, reply={reply!r}")
    return {"dir": f"cases/{chat_name}", "model": chat["model"], "notes": chat["notes"],
            "max_new_tokens": chat["max_new_tokens"], "eos_token_ids": eos, "turns": turns}


def run_vision_case(name, case, model, case_dir, log):
    g = torch.Generator().manual_seed(case["seed"])
    grid = torch.tensor(case["grids"], dtype=torch.long)
    rows = int(grid.prod(-1).sum())
    width = model.config.vision_config.in_channels * model.config.vision_config.temporal_patch_size \
        * model.config.vision_config.patch_size ** 2
    pixels = torch.rand(rows, width, generator=g) * 2 - 1
    with torch.no_grad():
        out = model.model.visual(pixels, grid_thw=grid, return_dict=True)
    features = out.pooler_output if torch.is_tensor(out.pooler_output) else torch.cat(list(out.pooler_output), 0)
    deepstack = torch.stack(list(out.deepstack_features), dim=0)
    aw = ArrayWriter(case_dir)
    aw.add("pixel_values", pixels, np.float32)
    aw.add("image_grid_thw", grid, np.int64)
    aw.add("image_features", features, np.float32)
    aw.add("deepstack_features", deepstack, np.float32)
    log(f"vision case {name}: rows={rows} features={tuple(features.shape)}")
    return {"dir": f"cases/{name}", "model": case["model"], "notes": case["notes"], "arrays": aw.entries}


def run_rope_case(name, case, model, model_spec, case_dir, log):
    ids = model_spec["ids"]
    vs, ve, img, vid = (ids["vision_start_token_id"], ids["vision_end_token_id"], ids["image_token_id"],
                        ids["video_token_id"])
    per_image = case["image_grid"][1] * case["image_grid"][2] // 4
    per_frame = case["video_grid"][1] * case["video_grid"][2] // 4
    seq = [11, 12, 13, vs] + [img] * per_image + [ve, 21, 22]
    for f in range(case["video_grid"][0]):
        seq += [vs] + [vid] * per_frame + [ve] + ([31, 32] if f + 1 < case["video_grid"][0] else [])
    seq += [41, 42, 43]
    input_ids = torch.tensor([seq], dtype=torch.long)
    mm = torch.zeros_like(input_ids)
    mm[input_ids == img] = 1
    mm[input_ids == vid] = 2
    with torch.no_grad():
        position_ids, deltas = model.model.get_rope_index(
            input_ids, mm, image_grid_thw=torch.tensor([case["image_grid"]]),
            video_grid_thw=torch.tensor([case["video_grid"]]), attention_mask=torch.ones_like(input_ids))
    aw = ArrayWriter(case_dir)
    aw.add("input_ids", input_ids, np.int64)
    aw.add("grids_in_order", torch.tensor([case["image_grid"], case["video_grid"]]), np.int64)
    aw.add("position_ids", position_ids.to(torch.long), np.int64)
    aw.add("rope_deltas", deltas.reshape(1, 1).to(torch.long), np.int64)
    log(f"rope case {name}: S={len(seq)} delta={int(deltas.reshape(-1)[0])}")
    return {"dir": f"cases/{name}", "model": case["model"], "notes": case["notes"], "arrays": aw.entries}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/repo/tests/fixtures/golden")
    ap.add_argument("--tokenizer-dir", default="/repo/.deps/tokenizer-qwen3")
    ap.add_argument("--ref-dir", default="/repo/assets/qwen3-vl")
    ap.add_argument("--only-case", action="append", default=None, help="debug: run only these cases")
    args = ap.parse_args()

    nthreads = int(os.environ.get("REFGEN_THREADS", "1"))
    torch.set_num_threads(nthreads)
    torch.use_deterministic_algorithms(True, warn_only=True)

    def log(msg):
        print(msg, flush=True)

    for f in ("tokenizer.json", "tokenizer_config.json"):
        if not os.path.isfile(os.path.join(args.tokenizer_dir, f)):
            sys.exit(f"missing {f} in --tokenizer-dir {args.tokenizer_dir}")
    for f in ("chat_template.json", "generation_config.json"):
        if not os.path.isfile(os.path.join(args.ref_dir, f)):
            sys.exit(f"missing {f} in --ref-dir {args.ref_dir} (bind the Qwen3-VL-4B-Instruct reference files)")

    out = args.out
    os.makedirs(out, exist_ok=True)
    for sub in ("models", "cases"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    if os.path.exists(os.path.join(out, "manifest.json")):
        os.remove(os.path.join(out, "manifest.json"))

    with open(os.path.join(args.ref_dir, "chat_template.json"), encoding="utf-8") as f:
        chat_template = json.load(f)["chat_template"]

    manifest = {
        "generator": "tools/golden/gen_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "threads": nthreads,
        "conventions": CONVENTIONS,
        "models": {},
        "cases": {},
        "chats": {},
        "vision_cases": {},
        "rope_cases": {},
    }
    for name, spec in MODELS.items():
        needed = [c for c, cs in CASES.items() if cs["model"] == name
                  and (args.only_case is None or c in args.only_case)]
        model_dir = os.path.join(out, "models", name)
        model, mentry = make_model(name, spec, model_dir, args.ref_dir, args.tokenizer_dir, log)
        c = model.config
        mentry["config_summary"] = {
            "vocab_size": c.text_config.vocab_size, "hidden_size": c.text_config.hidden_size,
            "num_hidden_layers": c.text_config.num_hidden_layers,
            "num_attention_heads": c.text_config.num_attention_heads,
            "num_key_value_heads": c.text_config.num_key_value_heads, "head_dim": c.text_config.head_dim,
            "rope_parameters": dict(c.text_config.rope_parameters),
            "vision_depth": c.vision_config.depth, "vision_hidden_size": c.vision_config.hidden_size,
            "vision_num_heads": c.vision_config.num_heads,
            "deepstack_visual_indexes": list(c.vision_config.deepstack_visual_indexes),
            "image_token_id": c.image_token_id, "video_token_id": c.video_token_id,
            "vision_start_token_id": c.vision_start_token_id, "vision_end_token_id": c.vision_end_token_id,
            "eos_token_id": c.text_config.eos_token_id,
        }
        manifest["models"][name] = mentry

        image_processor = AutoImageProcessor.from_pretrained(model_dir)
        if spec["real_tokenizer"]:
            tokenizer = AutoTokenizer.from_pretrained(args.tokenizer_dir)
            processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                         video_processor=Qwen3VLVideoProcessor(), chat_template=chat_template)
            assert processor.chat_template == chat_template
            assert processor.image_token_id == c.image_token_id
            assert tokenizer.convert_tokens_to_ids("<|vision_start|>") == c.vision_start_token_id
            assert tokenizer.convert_tokens_to_ids("<|vision_end|>") == c.vision_end_token_id
            mentry["processor"] = {"image_processor_class": type(image_processor).__name__,
                                   "tokenizer_class": type(tokenizer).__name__}
        else:
            processor = image_processor
            mentry["processor"] = {"image_processor_class": type(image_processor).__name__}

        for case_name in needed:
            case = CASES[case_name]
            case_dir = os.path.join(out, "cases", case_name)
            os.makedirs(case_dir, exist_ok=True)
            manifest["cases"][case_name] = run_case(case_name, case, model, spec, case_dir, processor, log)
        for rname, rcase in ROPE_CASES.items():
            if rcase["model"] != name or args.only_case is not None:
                continue
            rdir = os.path.join(out, "cases", rname)
            os.makedirs(rdir, exist_ok=True)
            manifest["rope_cases"][rname] = run_rope_case(rname, rcase, model, spec, rdir, log)
        for vname, vcase in VISION_CASES.items():
            if vcase["model"] != name or args.only_case is not None:
                continue
            vdir = os.path.join(out, "cases", vname)
            os.makedirs(vdir, exist_ok=True)
            manifest["vision_cases"][vname] = run_vision_case(vname, vcase, model, vdir, log)
        for chat_name, chat in CHATS.items():
            if chat["model"] != name or args.only_case is not None:
                continue
            chat_dir = os.path.join(out, "cases", chat_name)
            os.makedirs(chat_dir, exist_ok=True)
            manifest["chats"][chat_name] = run_chat(chat_name, chat, model, chat_dir, processor, tokenizer, log)
        del model

    # final consistency check of the manifest against the files
    for cname, ce in manifest["cases"].items():
        for aname, a in ce["arrays"].items():
            arr = np.load(os.path.join(out, ce["dir"], a["file"]), allow_pickle=False)
            assert str(arr.dtype) == a["dtype"] and list(arr.shape) == a["shape"], (cname, aname)
            assert arr.dtype.byteorder in ("<", "=", "|") and arr.flags["C_CONTIGUOUS"]
    write_json(os.path.join(out, "manifest.json"), manifest)
    total = 0
    for root, _, files in os.walk(out):
        for f in files:
            total += os.path.getsize(os.path.join(root, f))
    log(f"done: {out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
