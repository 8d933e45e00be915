#!/usr/bin/env python3
"""MRoPE golden fixtures: what Hugging Face computes for mrope_section values it accepts but that are
not the usual layout (H/W sections whose interleaved slices run past head_dim / 2 and are clipped,
sections that do not sum to head_dim / 2, a negative entry, a fourth entry).

For each tiny random Qwen3-VL model (bf16 safetensors, HF layout, made with gen_fixtures.py's
make_model) and one prompt with an image (hand-built ids, seeded pixel values), it dumps:
  hf_slot_axes      [head_dim/2] int64: the axis (0 T, 1 H, 2 W) HF's apply_interleaved_mrope takes
                    for each rotary slot (probed by feeding it freqs[a] = a);
  input_ids, position_ids [3,1,S], rope_deltas, image_grid_thw (pixel values: seeded, not stored);
  image_features, deepstack_features (HF's vision tower, the decoder's visual inputs);
  rotary_cos, rotary_sin [S, head_dim] float32: model.model.language_model.rotary_emb;
  prefill_logits [S, V] float32 (float32, eager attention).
into tests/fixtures/mrope/ (models/, cases/, manifest.json). No number is typed by hand.

Run inside the reference chroot:
    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_mrope_fixtures.py
Deterministic (fixed seeds, 1 thread): two runs give identical files.
"""

import argparse
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as gf  # noqa: E402  (helpers: make_model, ArrayWriter, write_json)

import transformers  # noqa: E402

# head_dim 16: 8 rotary slots. Section [24, 20, 20]-style sums would be 8; these are not.
ODD_SECTIONS = {
    "clipped": ([2, 4, 4], "3*H = 3*W = 12 > 8 slots: HF's strided slices clip (H 1,4,7; W 2,5); sum 10 != 8"),
    "short_sum": ([1, 1, 2], "sum 4 != 8: T takes every slot H and W do not (H 1; W 2,5)"),
    "negative": ([0, -1, 2], "H stop -3 counts from the end (Python slice): H 1,4; W 2,5; section[0] unused"),
    "four_entries": ([9, 2, 1, 7], "a fourth entry (ignored by HF); H 1,4; W 2"),
}


def model_spec(seed, section):
    return dict(
        seed=seed,
        text=dict(
            vocab_size=256, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, head_dim=16, intermediate_size=64, mrope_section=section,
            rope_theta=10000.0, tie=True, bos_token_id=None, eos_token_id=250,
            max_position_embeddings=4096,
        ),
        vision=dict(
            depth=2, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=32,
            num_position_embeddings=256, deepstack_visual_indexes=[0],
        ),
        ids=dict(image_token_id=252, video_token_id=253, vision_start_token_id=248, vision_end_token_id=249),
        real_tokenizer=False,
    )


def hf_slot_axes(rotary, section, half):
    freqs = torch.stack([torch.full((1, 1, half), float(a)) for a in range(3)])  # [3, bs, S, half]
    return rotary.apply_interleaved_mrope(freqs, section).reshape(-1).round().to(torch.long)


def run_case(name, spec, model, case_dir, seed):
    ids = spec["ids"]
    grid = torch.tensor([[1, 6, 8]], dtype=torch.long)  # merged 3 x 4: distinct H and W positions
    g = torch.Generator().manual_seed(seed)
    vc = model.config.vision_config
    pixels = torch.rand(int(grid.prod()), vc.in_channels * vc.temporal_patch_size * vc.patch_size ** 2,
                        generator=g) * 2 - 1
    rng = np.random.default_rng(seed)
    seq = [int(x) for x in rng.integers(0, ids["vision_start_token_id"], size=5)]
    seq += [ids["vision_start_token_id"]] + [ids["image_token_id"]] * (int(grid.prod()) // 4)
    seq += [ids["vision_end_token_id"]] + [int(x) for x in rng.integers(0, ids["vision_start_token_id"], size=6)]
    input_ids = torch.tensor([seq], dtype=torch.long)
    attention_mask = torch.ones_like(input_ids)
    mm = torch.zeros_like(input_ids)
    mm[input_ids == ids["image_token_id"]] = 1
    aw = gf.ArrayWriter(case_dir)
    text_config = model.config.text_config
    rotary = model.model.language_model.rotary_emb
    with torch.no_grad():
        half = text_config.head_dim // 2
        aw.add("hf_slot_axes", hf_slot_axes(rotary, rotary.mrope_section, half), np.int64)
        model.model.rope_deltas = None
        position_ids, deltas = model.model.get_rope_index(
            input_ids, image_grid_thw=grid, video_grid_thw=None, attention_mask=attention_mask,
            mm_token_type_ids=mm)
        out = model.model.visual(pixels, grid_thw=grid, return_dict=True)
        features = out.pooler_output if torch.is_tensor(out.pooler_output) else torch.cat(list(out.pooler_output), 0)
        deepstack = torch.stack(list(out.deepstack_features), dim=0)
        x = torch.zeros(1, len(seq), text_config.hidden_size, dtype=torch.float32)
        cos, sin = rotary(x, position_ids)
        logits = model(input_ids=input_ids, attention_mask=attention_mask, mm_token_type_ids=mm,
                       pixel_values=pixels, image_grid_thw=grid, logits_to_keep=0).logits
    aw.add("input_ids", input_ids, np.int64)
    aw.add("image_grid_thw", grid, np.int64)
    aw.add("position_ids", position_ids, np.int64)
    aw.add("rope_deltas", deltas.reshape(1, 1), np.int64)
    aw.add("image_features", features, np.float32)
    aw.add("deepstack_features", deepstack, np.float32)
    aw.add("rotary_cos", cos[0], np.float32)
    aw.add("rotary_sin", sin[0], np.float32)
    aw.add("prefill_logits", logits[0], np.float32)
    assert torch.isfinite(logits).all()
    return aw.entries


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/repo/tests/fixtures/mrope")
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True, warn_only=True)
    out = args.out
    for sub in ("models", "cases"):
        shutil.rmtree(os.path.join(out, sub), ignore_errors=True)
    os.makedirs(out, exist_ok=True)
    manifest = {
        "generator": "tools/golden/gen_mrope_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "conventions": {
            "hf_slot_axes": "[head_dim/2] int64: axis of each rotary slot in HF's apply_interleaved_mrope",
            "rotary_cos": "[S, head_dim] float32 = rotary_emb(x float32, position_ids) cos (sin likewise)",
            "prefill_logits": "[S, V] float32, every position; inputs: the case's ids, pixel_values, grid",
            "decoder_inputs": "image_features [N/4, H] and deepstack_features [K, N/4, H] from HF's vision tower",
        },
        "cases": {},
    }
    for i, (name, (section, notes)) in enumerate(ODD_SECTIONS.items()):
        spec = model_spec(7001 + i, section)
        model_dir = os.path.join(out, "models", name)
        model, _ = gf.make_model(name, spec, model_dir, None, None, print)
        case_dir = os.path.join(out, "cases", name)
        os.makedirs(case_dir, exist_ok=True)
        saved = model.config.text_config.rope_parameters["mrope_section"]
        assert list(saved) == section, saved
        arrays = run_case(name, spec, model, case_dir, seed=71 + i)
        manifest["cases"][name] = {"model_dir": f"models/{name}", "dir": f"cases/{name}",
                                   "mrope_section": section, "notes": notes, "arrays": arrays}
        print(f"{name}: section {section} -> HF slot axes "
              f"{np.load(os.path.join(case_dir, 'hf_slot_axes.npy')).tolist()}", flush=True)
        del model
    gf.write_json(os.path.join(out, "manifest.json"), manifest)


if __name__ == "__main__":
    main()
