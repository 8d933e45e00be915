#!/usr/bin/env python3
"""Golden fixtures for Qwen3-VL MoE (model_type qwen3_vl_moe, e.g. Qwen3-VL-30B-A3B), made by the real
Hugging Face implementation (Qwen3VLMoeForConditionalGeneration, float32, eager attention, 1 thread)
on a tiny random model. Writes tests/fixtures/golden/moe/:

  manifest.json            the same schema as tests/fixtures/golden/manifest.json (models, cases,
                           conventions), plus per case the router's choices
  models/moe_a/            the checkpoint as transformers' save_pretrained writes it: experts in the
                           in-memory layout, gate_up_proj [E, 2*Im, H] and down_proj [E, H, Im]
  models/moe_a_released/   the same weights with the experts as released checkpoints store them,
                           gate_up_proj [E, H, 2*Im] and down_proj [E, Im, H] (transformers reloads
                           it to the same model: checked)
  cases/<name>/            inputs and HF's outputs as .npy (see gen_fixtures.py's run_case), plus the
                           prefill's routing per sparse layer: router_logits [Ls, S, E] (float32),
                           router_topk_ids [Ls, S, k] (int64, descending), router_topk_weights
                           [Ls, S, k] (renormalised, float32)

The model has a dense layer among the sparse ones (mlp_only_layers) and moe_intermediate_size chosen
so that neither expert tensor's two layouts have the same shape. No number is typed by hand.

Run inside the reference chroot:

    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_moe_fixtures.py
"""

import argparse
import json
import os
import shutil
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as dense  # noqa: E402  (shared helpers: images, arrays, init, run_case)

import transformers  # noqa: E402
from transformers import AutoImageProcessor, Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

MODEL = dict(
    seed=4004,
    text=dict(
        vocab_size=512, hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
        head_dim=16, intermediate_size=96, mrope_section=[4, 2, 2], rope_theta=5000000.0, tie=False,
        bos_token_id=None, eos_token_id=504, max_position_embeddings=8192,
        num_experts=8, num_experts_per_tok=2, moe_intermediate_size=24, decoder_sparse_step=1,
        mlp_only_layers=[2], norm_topk_prob=True,
    ),
    vision=dict(
        depth=2, hidden_size=32, num_heads=2, intermediate_size=64, out_hidden_size=64,
        num_position_embeddings=576, deepstack_visual_indexes=[0, 1],
    ),
    ids=dict(image_token_id=502, video_token_id=503, vision_start_token_id=500, vision_end_token_id=501),
    real_tokenizer=False,
)

CASES = {
    "moe_a_text": dict(model="moe_a", images=[], seed=41, text_before=18, text_after=0,
                       notes="Hand-built ids, text only."),
    "moe_a_image": dict(model="moe_a", images=[(64, 96)], seed=42, text_before=5, text_after=7,
                        notes="Hand-built ids around one 64x96 image (6 image tokens): DeepStack adds at layers 0-1."),
}


def build_config(spec):
    t, v, ids = spec["text"], spec["vision"], spec["ids"]
    text_config = dense.text_config_dict(t)
    text_config.update(
        num_experts=t["num_experts"], num_experts_per_tok=t["num_experts_per_tok"],
        moe_intermediate_size=t["moe_intermediate_size"], decoder_sparse_step=t["decoder_sparse_step"],
        mlp_only_layers=list(t["mlp_only_layers"]), norm_topk_prob=t["norm_topk_prob"],
    )
    return Qwen3VLMoeConfig(text_config=text_config, vision_config=dense.vision_config_dict(v), tie_word_embeddings=t["tie"],
                            **ids)


def load(model_dir):
    model, info = Qwen3VLMoeForConditionalGeneration.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    for key in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(key):
            raise RuntimeError(f"{model_dir}: {key} on reload: {info[key]}")
    return model.eval()


def make_models(out, log):
    """Random init (seeded) -> bf16 -> save (in-memory layout) -> a copy in the released layout."""
    spec = MODEL
    torch.manual_seed(spec["seed"])
    np.random.seed(spec["seed"])
    model = Qwen3VLMoeForConditionalGeneration(build_config(spec)).eval()
    final_norm_scale = dense.perturb_init(model, spec)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    reference_state = {k: v.clone() for k, v in model.state_dict().items()}
    saved_dir = os.path.join(out, "models", "moe_a")
    os.makedirs(saved_dir, exist_ok=True)
    model.to(torch.bfloat16).save_pretrained(saved_dir)
    dense.write_json(os.path.join(saved_dir, "preprocessor_config.json"), dense.PREPROCESSOR_CONFIG)
    del model

    # The released layout: the expert tensors transposed (dims 1, 2), everything else as saved.
    released_dir = os.path.join(out, "models", "moe_a_released")
    os.makedirs(released_dir, exist_ok=True)
    for name in os.listdir(saved_dir):
        if name != "model.safetensors":
            shutil.copyfile(os.path.join(saved_dir, name), os.path.join(released_dir, name))
    tensors = load_file(os.path.join(saved_dir, "model.safetensors"))
    transposed = []
    for key in list(tensors):
        if key.endswith("mlp.experts.gate_up_proj") or key.endswith("mlp.experts.down_proj"):
            tensors[key] = tensors[key].transpose(1, 2).contiguous()
            transposed.append(key)
    save_file(tensors, os.path.join(released_dir, "model.safetensors"), metadata={"format": "pt"})

    t = spec["text"]
    E, H, Im = t["num_experts"], t["hidden_size"], t["moe_intermediate_size"]
    entries = {}
    for name, folder, layout in (("moe_a", saved_dir, "saved"), ("moe_a_released", released_dir, "released")):
        loaded = load(folder)
        state = loaded.state_dict()
        for k, v in reference_state.items():
            if not torch.equal(state[k], v):
                raise RuntimeError(f"{name}: reloaded tensor {k} differs from the bf16-rounded init")
        from safetensors import safe_open
        with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
            keys = sorted(f.keys())
            shapes = {k: list(f.get_slice(k).get_shape()) for k in keys if ".mlp.experts." in k}
        expect_gate_up = [E, 2 * Im, H] if layout == "saved" else [E, H, 2 * Im]
        expect_down = [E, H, Im] if layout == "saved" else [E, Im, H]
        for k, shape in shapes.items():
            want = expect_gate_up if k.endswith("gate_up_proj") else expect_down
            if shape != want:
                raise RuntimeError(f"{name}: {k} has shape {shape}, expected {want}")
        log(f"model {name}: {len(keys)} tensors, experts {layout} layout ({len(shapes)} expert tensors)")
        entries[name] = {
            "dir": f"models/{name}",
            "seed": spec["seed"],
            "num_parameters": sum(p.numel() for p in loaded.parameters()),
            "num_tensors": len(keys),
            "expert_layout": layout,
            "expert_tensor_shapes": shapes,
            "tie_word_embeddings": bool(t["tie"]),
            "files": sorted(os.listdir(folder)),
            "init": dense.INIT_DESCRIPTION.format(final_norm_scale=final_norm_scale, seed=spec["seed"] + 7)
            + " Expert tensors (3-D) and the router count as decoder Linear weights (x5).",
            "config_summary": {k: v for k, v in t.items() if k not in ("tie",)},
        }
        if name == "moe_a":
            reference_model = loaded
    entries["moe_a_released"]["same_weights_as"] = "moe_a"
    entries["moe_a_released"]["transposed_tensors"] = sorted(transposed)
    return reference_model, entries


def record_routing(model, case_dir, entry):
    """The prefill's router outputs per sparse layer, from a forward with the case's inputs."""
    arrays = entry["arrays"]
    def arr(name):
        return torch.from_numpy(np.load(os.path.join(case_dir, arrays[name]["file"])))
    kw = dict(input_ids=arr("input_ids"), attention_mask=arr("attention_mask"), mm_token_type_ids=arr("mm_token_type_ids"))
    if "pixel_values" in arrays:
        kw.update(pixel_values=arr("pixel_values"), image_grid_thw=arr("image_grid_thw"))
    outputs, handles, sparse_layers = {}, [], []
    for li, layer in enumerate(model.model.language_model.layers):
        if hasattr(layer.mlp, "gate"):
            sparse_layers.append(li)
            handles.append(layer.mlp.gate.register_forward_hook(
                lambda mod, args, out, li=li: outputs.setdefault(li, [o.detach().clone() for o in out])))
    try:
        with torch.no_grad():
            model.model.rope_deltas = None
            logits = model(**kw, use_cache=False, return_dict=True).logits[0]
            model.model.rope_deltas = None
    finally:
        for h in handles:
            h.remove()
    prefill = torch.from_numpy(np.load(os.path.join(case_dir, arrays["prefill_logits"]["file"])))
    if not torch.equal(logits, prefill):
        raise RuntimeError("the routing forward's logits differ from the case's prefill")
    aw = dense.ArrayWriter(case_dir)
    router_logits = torch.stack([outputs[li][0] for li in sparse_layers])
    weights = torch.stack([outputs[li][1] for li in sparse_layers])
    ids = torch.stack([outputs[li][2] for li in sparse_layers])
    # How far each token's k-th choice is from the next expert: a tie would make routing ambiguous.
    probs = torch.softmax(router_logits, dim=-1)
    k = ids.shape[-1]
    top = torch.topk(probs, k + 1, dim=-1).values
    aw.add("router_logits", router_logits, np.float32)
    aw.add("router_topk_ids", ids, np.int64)
    aw.add("router_topk_weights", weights, np.float32)
    entry["arrays"].update(aw.entries)
    entry["routing"] = {"sparse_layers": sparse_layers, "top_k": k,
                        "min_prob_margin_kth_vs_next": float((top[..., k - 1] - top[..., k]).min())}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", default="/repo/tests/fixtures/golden/moe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)
    # Everything but the README (written by hand) is regenerated.
    for generated in ("models", "cases"):
        shutil.rmtree(os.path.join(args.out, generated), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)

    def log(msg):
        print(msg, flush=True)

    model, models = make_models(args.out, log)
    processor = AutoImageProcessor.from_pretrained(os.path.join(args.out, "models", "moe_a"))
    cases = {}
    for name, case in CASES.items():
        case_dir = os.path.join(args.out, "cases", name)
        os.makedirs(case_dir)
        entry = dense.run_case(name, case, model, MODEL, case_dir, processor, log)
        record_routing(model, case_dir, entry)
        log(f"case {name}: routing margin {entry['routing']['min_prob_margin_kth_vs_next']:.3g}")
        cases[name] = entry
    released = load(os.path.join(args.out, "models", "moe_a_released"))
    for name in cases:
        ids = torch.from_numpy(np.load(os.path.join(args.out, "cases", name, "input_ids.npy")))
        with torch.no_grad():
            a = model(input_ids=ids, use_cache=False).logits
            b = released(input_ids=ids, use_cache=False).logits
        if not torch.equal(a, b):
            raise RuntimeError(f"{name}: the released-layout copy gives other logits")
    manifest = {
        "generator": "tools/golden/gen_moe_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "threads": 1,
        "conventions": dict(dense.CONVENTIONS, routing=(
            "router_logits [Ls, S, E]: x . Wgate^T of each sparse layer (in order of `routing.sparse_layers`) on the "
            "post-attention-normed prefill rows; router_topk_ids [Ls, S, k]: torch.topk of softmax(router_logits) "
            "(descending); router_topk_weights: those probabilities divided by their sum.")),
        "models": models,
        "cases": cases,
    }
    dense.write_json(os.path.join(args.out, "manifest.json"), manifest)
    log("done")


if __name__ == "__main__":
    main()
