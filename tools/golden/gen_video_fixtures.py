#!/usr/bin/env python3
"""Video golden fixtures for q3vl (reference: Hugging Face transformers Qwen3-VL, PyAV backend).

Writes short clips (lossless FFV1/AVI and PNG/MOV, whose decoded pixels are exactly the frames
written, and a lossy H.264/MP4), a folder of extracted frames, and runs the real HF pipeline on
them with the golden `full` model (tests/fixtures/golden/models/full, the real Qwen tokenizer and
the Qwen3-VL chat template):
  Qwen3VLProcessor (chat template -> Qwen3VLVideoProcessor with the checkpoint's
  video_preprocessor_config.json: frame sampling, one resize per clip, pairs, timestamps) ->
  get_rope_index -> the vision tower on the video (and image) items -> prefill -> greedy generate.
Video files are decoded with transformers.video_utils.load_video(backend="pyav") (HF 5.12's default
backend, torchcodec, is not packaged in Debian; torchvision's read_video is gone in 0.27).

Per case (tests/fixtures/video/cases/<name>/): the inputs (clip or frames, image), input_ids,
pixel_values_videos, video_grid_thw, frame_indices, timestamps (float64 pair times; the text form
is in the manifest), pixel_values + image_grid_thw when there is an image, position_ids,
rope_deltas, video_features + video_deepstack_features (HF's get_video_features),
prefill_logits (last position) and generated_ids (greedy, HF's generate, stops at EOS).
A chat case records each turn's input_ids and reply ids.

Run inside the reference chroot (see tests/fixtures/golden/README.md):
    ../shared/refgen/inroot.sh -b <repo>:/repo -- python3 /repo/tools/golden/gen_video_fixtures.py
Deterministic (fixed seeds, 1 thread). No number in the output is typed by hand.
"""

import argparse
import copy
import json
import os
import shutil
import sys
from fractions import Fraction

import av
import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_fixtures as gf  # noqa: E402  (ArrayWriter, write_json, make_image, sha256_file)

import transformers  # noqa: E402
from PIL import Image  # noqa: E402
from transformers import AutoImageProcessor, AutoTokenizer, Qwen3VLForConditionalGeneration, Qwen3VLProcessor  # noqa: E402
from transformers.video_utils import VideoMetadata, load_video  # noqa: E402

try:
    from transformers import Qwen3VLVideoProcessor  # noqa: E402
except ImportError:  # pragma: no cover
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402

EOS = [151645, 151643]
MAX_NEW_TOKENS = 32
MIN_GENERATED = 24   # the cases are chosen so HF generates at least this many tokens before EOS

# Clips: (codec, container extension, pixel format, frames, fps, height, width, encoder options).
CLIPS = {
    "ffv1": dict(codec="ffv1", ext="avi", pix_fmt="bgr0", frames=24, fps=8, h=72, w=100, lossless=True,
                 options={}),
    "png_mov": dict(codec="png", ext="mov", pix_fmt="rgb24", frames=25, fps=10, h=64, w=80, lossless=True,
                    options={}),
    "h264": dict(codec="libx264", ext="mp4", pix_fmt="yuv420p", frames=30, fps=15, h=180, w=240, lossless=False,
                 options={"crf": "20", "preset": "medium", "threads": "1"}),
    "chat_ffv1": dict(codec="ffv1", ext="avi", pix_fmt="bgr0", frames=16, fps=4, h=96, w=64, lossless=True,
                      options={}),
}

CASES = {
    "video_only": dict(clip="ffv1", text="Describe this video.", system=None, seed=11,
                       notes="Lossless FFV1 in AVI, 24 frames at 8 fps, 72x100 resized to 64x96: 6 sampled frames, "
                             "3 frame pairs."),
    "video_then_image": dict(clip="png_mov", image=(75, 101), text="What changed between them?",
                             system="You are a helpful assistant.", seed=12,
                             notes="PNG in MOV, 25 frames at 10 fps: 5 sampled frames (odd: the last is repeated); "
                                   "the video before an image in one turn."),
    "h264_budget": dict(clip="h264", text="What moves?", system=None, seed=13, max_video_tokens=40,
                        notes="Lossy H.264 (yuv420p) in MP4, 30 frames at 15 fps, 180x240; clip budget of 40 tokens "
                              "(size.longest_edge = 40 * 2048) forces the scaled-down branch of smart_resize."),
    "frames_dir": dict(frames=dict(count=10, fps=4, h=64, w=64), text="Summarize.", system=None, seed=14,
                       notes="10 extracted PNG frames at 4 fps given as an array video with metadata: 5 sampled "
                             "frames."),
    "fps_override": dict(clip="ffv1", text="Count the frames.", system=None, seed=15, fps=4, max_frames=10,
                         notes="The FFV1 clip sampled at fps 4 (12 frames) capped by max_frames 10."),
}

CHAT = dict(seed=21, clip="chat_ffv1", max_new_tokens=24, turns=[
    dict(video=True, text="What happens in this video?"),
    dict(text="And after that?"),
    dict(image=(64, 64), text="Is this picture from the video?"),
], notes="A video in turn 1, text only in turn 2, an image in turn 3; each reply is HF's greedy generation "
         "fed back through the chat template.")


def frame_pixels(spec, index, seed):
    """A moving pattern: a seeded base image shifted by the frame index plus a bright square."""
    h, w = spec["h"], spec["w"]
    base = gf.make_image(h, w, seed)
    img = np.roll(base, shift=(index * 3, index * 5), axis=(0, 1)).copy()
    y, x = (index * 7) % max(h - 12, 1), (index * 11) % max(w - 12, 1)
    img[y:y + 12, x:x + 12] = [250, 240 - 8 * (index % 20), 20 + 9 * (index % 20)]
    return img


def to_frame(rgb, pix_fmt):
    """A VideoFrame in the encoder's pixel format. yuv420p is computed here (BT.601 limited range,
    2x2 chroma means): FFmpeg 8's swscale gave different yuv420p bytes from run to run."""
    if pix_fmt != "yuv420p":
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=pix_fmt)
    r, g, b = [rgb[..., c].astype(np.float64) for c in range(3)]
    y = 16 + 0.2568 * r + 0.5041 * g + 0.0979 * b
    u = 128 - 0.1482 * r - 0.2910 * g + 0.4392 * b
    v = 128 + 0.4392 * r - 0.3678 * g - 0.0714 * b
    h, w = y.shape
    sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    planes = [np.clip(np.rint(p), 0, 255).astype(np.uint8) for p in (y, sub(u), sub(v))]
    return av.VideoFrame.from_ndarray(np.concatenate([planes[0].reshape(-1), planes[1].reshape(-1),
                                                      planes[2].reshape(-1)]).reshape(h * 3 // 2, w),
                                      format="yuv420p")


def write_clip(path, spec, seed):
    frames = [frame_pixels(spec, i, seed) for i in range(spec["frames"])]
    with av.open(path, mode="w") as container:
        stream = container.add_stream(spec["codec"], rate=Fraction(spec["fps"]), options=dict(spec["options"]))
        stream.width, stream.height, stream.pix_fmt = spec["w"], spec["h"], spec["pix_fmt"]
        stream.codec_context.thread_count = 1  # encoder threads make x264's output vary run to run
        if spec["codec"] == "libx264":
            stream.codec_context.color_range = av.video.reformatter.ColorRange.MPEG
        for arr in frames:
            frame = to_frame(arr, spec["pix_fmt"])
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def pyav_fetch_videos(video_url_or_urls, sample_indices_fn=None):
    if isinstance(video_url_or_urls, list):
        return list(zip(*[pyav_fetch_videos(x, sample_indices_fn=sample_indices_fn) for x in video_url_or_urls]))
    return load_video(video_url_or_urls, backend="pyav", sample_indices_fn=sample_indices_fn)


def make_processor(model_dir, tok_dir, ref_dir, chat_template, video_config):
    image_processor = AutoImageProcessor.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir)
    video_processor = Qwen3VLVideoProcessor(**video_config)
    video_processor.fetch_videos = pyav_fetch_videos
    processor = Qwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=video_processor,
                                 chat_template=chat_template)
    return processor, tokenizer


def case_video_config(video_config, case):
    """The video processor's settings with the case's overrides, set where HF reads them: the
    processor's own fps / max_frames / size (a max_frames passed to the processor call is ignored
    by sample_frames, which reads self.max_frames)."""
    config = copy.deepcopy(video_config)
    if "fps" in case:
        config["fps"] = case["fps"]
    if "max_frames" in case:
        config["max_frames"] = case["max_frames"]
    if "max_video_tokens" in case:
        config["size"] = dict(config["size"], longest_edge=case["max_video_tokens"] * 2048)
    return config


def timestamps_of(processor, metadata):
    vp = processor.video_processor
    return processor._calculate_timestamps(list(metadata.frames_indices), metadata.fps, vp.merge_size)


def run_case(name, case, model, processor, out_dir, log):
    processor.video_processor = Qwen3VLVideoProcessor(**case_video_config(processor.base_video_config, case))
    processor.video_processor.fetch_videos = pyav_fetch_videos
    case_dir = os.path.join(out_dir, "cases", name)
    os.makedirs(case_dir, exist_ok=True)
    aw = gf.ArrayWriter(case_dir)
    entry = {"dir": f"cases/{name}", "notes": case["notes"], "text": case["text"], "system": case["system"],
             "media": []}
    content, images, videos, metadata_in = [], [], [], None
    if "clip" in case:
        spec = CLIPS[case["clip"]]
        fname = f"../../clips/{case['clip']}.{spec['ext']}"
        entry["media"].append({"kind": "video", "file": fname, "codec": spec["codec"], "pix_fmt": spec["pix_fmt"],
                               "lossless": spec["lossless"], "frames": spec["frames"], "fps": spec["fps"]})
        videos.append(os.path.join(case_dir, fname))
        content.append({"type": "video"})
    else:
        fs = case["frames"]
        spec = dict(h=fs["h"], w=fs["w"])
        frames_dir = os.path.join(case_dir, "frames")
        os.makedirs(frames_dir)
        arrays = []
        for i in range(fs["count"]):
            arr = frame_pixels(spec, i, seed=case["seed"])
            Image.fromarray(arr, mode="RGB").save(os.path.join(frames_dir, f"frame_{i:03d}.png"), format="PNG")
            arrays.append(arr)
        entry["media"].append({"kind": "frames", "dir": "frames", "count": fs["count"], "fps": fs["fps"]})
        videos.append(np.stack(arrays))
        metadata_in = [VideoMetadata(total_num_frames=fs["count"], fps=float(fs["fps"]), duration=fs["count"] / fs["fps"],
                                     height=fs["h"], width=fs["w"])]
        content.append({"type": "video"})
    if "image" in case:
        h, w = case["image"]
        arr = gf.make_image(h, w, seed=case["seed"] * 10)
        Image.fromarray(arr, mode="RGB").save(os.path.join(case_dir, "image0.png"), format="PNG")
        with Image.open(os.path.join(case_dir, "image0.png")) as im:
            im.load()
            images.append(im.copy())
        entry["media"].append({"kind": "image", "file": "image0.png"})
        content.append({"type": "image"})
    content.append({"type": "text", "text": case["text"]})
    messages = ([{"role": "system", "content": [{"type": "text", "text": case["system"]}]}] if case["system"] else [])
    messages.append({"role": "user", "content": content})
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    kw = {}
    entry["video_options"] = {k: v for k, v in case.items() if k in ("fps", "max_frames", "max_video_tokens")}
    if metadata_in is not None:
        kw["video_metadata"] = metadata_in
        kw["do_sample_frames"] = True
    enc = processor(text=[prompt], images=images or None, videos=videos, return_tensors="pt",
                    return_metadata=True, **kw)
    metadata = enc.pop("video_metadata")[0]
    stamps = timestamps_of(processor, metadata)
    grid_t = int(enc["video_grid_thw"][0, 0])
    entry["timestamps_text"] = [f"<{t:.1f} seconds>" for t in stamps[:grid_t]]
    entry["source_fps"] = float(metadata.fps)
    entry["total_num_frames"] = int(metadata.total_num_frames)
    aw.add("input_ids", enc["input_ids"], np.int64)
    aw.add("pixel_values_videos", enc["pixel_values_videos"], np.float32)
    aw.add("video_grid_thw", enc["video_grid_thw"], np.int64)
    aw.add("frame_indices", np.asarray(metadata.frames_indices), np.int64)
    aw.add("timestamps", np.asarray(stamps[:grid_t]), np.float64)
    if images:
        aw.add("pixel_values", enc["pixel_values"], np.float32)
        aw.add("image_grid_thw", enc["image_grid_thw"], np.int64)
    mm = enc.get("mm_token_type_ids")
    with torch.no_grad():
        model.model.rope_deltas = None
        position_ids, deltas = model.model.get_rope_index(
            enc["input_ids"], image_grid_thw=enc.get("image_grid_thw"), video_grid_thw=enc["video_grid_thw"],
            attention_mask=enc["attention_mask"], mm_token_type_ids=mm)
        vout = model.model.get_video_features(enc["pixel_values_videos"], enc["video_grid_thw"], return_dict=True)
        pooled = vout.pooler_output
        video_features = pooled if torch.is_tensor(pooled) else torch.cat(list(pooled), 0)
        video_deepstack = torch.stack(list(vout.deepstack_features), dim=0)
        logits = model(**enc, logits_to_keep=1).logits[0, -1]
        out = model.generate(**enc, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, eos_token_id=EOS,
                             pad_token_id=151643)
    n_video_tokens = int((enc["input_ids"] == model.config.video_token_id).sum())
    assert video_features.shape[0] == n_video_tokens, (video_features.shape, n_video_tokens)
    aw.add("position_ids", position_ids, np.int64)
    aw.add("rope_deltas", deltas.reshape(1, 1), np.int64)
    aw.add("video_features", video_features, np.float32)
    aw.add("video_deepstack_features", video_deepstack, np.float32)
    aw.add("prefill_logits", logits.reshape(1, -1), np.float32)
    generated = [int(x) for x in out[0, enc["input_ids"].shape[1]:].tolist()]
    stopped = bool(generated) and generated[-1] in EOS
    if stopped:
        generated = generated[:-1]
    assert len(generated) >= MIN_GENERATED, f"{name}: only {len(generated)} tokens before EOS; pick another seed"
    aw.add("generated_ids", np.asarray(generated).reshape(1, -1), np.int64)
    entry["generated_text"] = processor.tokenizer.decode(generated, skip_special_tokens=True)
    entry["stopped_at_eos"] = stopped
    entry["arrays"] = aw.entries
    log(f"{name}: grid {enc['video_grid_thw'].tolist()}, frames {[int(i) for i in metadata.frames_indices]}, "
        f"{entry['timestamps_text']}, {enc['input_ids'].shape[1]} prompt tokens, {len(generated)} generated")
    return entry


def run_chat(model, processor, tokenizer, out_dir, log):
    chat_dir = os.path.join(out_dir, "cases", "video_chat")
    os.makedirs(chat_dir, exist_ok=True)
    spec = CLIPS[CHAT["clip"]]
    clip = f"../../clips/{CHAT['clip']}.{spec['ext']}"
    messages, images, videos, turns = [], [], [], []
    for t, turn in enumerate(CHAT["turns"]):
        content, media = [], []
        if turn.get("video"):
            videos.append(os.path.join(chat_dir, clip))
            content.append({"type": "video"})
            media.append({"kind": "video", "file": clip})
        if "image" in turn:
            h, w = turn["image"]
            fname = f"turn{t}_image.png"
            Image.fromarray(gf.make_image(h, w, seed=CHAT["seed"] * 100 + t), mode="RGB").save(
                os.path.join(chat_dir, fname), format="PNG")
            with Image.open(os.path.join(chat_dir, fname)) as im:
                im.load()
                images.append(im.copy())
            content.append({"type": "image"})
            media.append({"kind": "image", "file": fname})
        content.append({"type": "text", "text": turn["text"]})
        messages.append({"role": "user", "content": content})
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        enc = processor(text=[prompt], images=images or None, videos=videos or None, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, do_sample=False, max_new_tokens=CHAT["max_new_tokens"], eos_token_id=EOS,
                                 pad_token_id=151643)
        new = [int(x) for x in out[0, enc["input_ids"].shape[1]:].tolist()]
        stopped = bool(new) and new[-1] in EOS
        if stopped:
            new = new[:-1]
        reply = tokenizer.decode(new, skip_special_tokens=True)
        messages.append({"role": "assistant", "content": reply})
        np.save(os.path.join(chat_dir, f"turn{t}_input_ids.npy"), enc["input_ids"].numpy().astype(np.int64))
        np.save(os.path.join(chat_dir, f"turn{t}_output_ids.npy"), np.array(new, dtype=np.int64))
        turns.append({"user": turn["text"], "media": media, "input_ids": f"turn{t}_input_ids.npy",
                      "output_ids": f"turn{t}_output_ids.npy", "prompt_tokens": int(enc["input_ids"].shape[1]),
                      "reply": reply, "stopped_at_eos": stopped})
        log(f"video_chat turn {t}: {enc['input_ids'].shape[1]} prompt tokens, {len(new)} generated, eos={stopped}")
    return {"dir": "cases/video_chat", "notes": CHAT["notes"], "max_new_tokens": CHAT["max_new_tokens"],
            "eos_token_ids": EOS, "turns": turns}


def sampling_cases(processor):
    """HF's own sample_frames, smart_resize and timestamps over a spread of clips: the unit-test table."""
    from transformers.models.qwen3_vl.video_processing_qwen3_vl import smart_resize
    rng = np.random.default_rng(5)
    sampling = []
    rates = [1.0, 8.0, 10.0, 23.976023976023978, 24.0, 25.0, 29.97002997002997, 30.0, 50.0, 59.94005994005994, 60.0, 120.0]
    totals = [1, 2, 3, 4, 5, 7, 16, 25, 59, 60, 61, 100, 299, 300, 301, 1000, 1799, 3600, 86400, 1000000]
    options = [dict(fps=2, min_frames=4, max_frames=768), dict(fps=1, min_frames=4, max_frames=768),
               dict(fps=0.5, min_frames=2, max_frames=16), dict(fps=3.7, min_frames=1, max_frames=300),
               dict(fps=30, min_frames=4, max_frames=64)]
    for total in totals:
        for rate in rates:
            for opt in options:
                if rng.random() > 0.25:
                    continue
                vp = Qwen3VLVideoProcessor(fps=opt["fps"], min_frames=opt["min_frames"], max_frames=opt["max_frames"])
                meta = VideoMetadata(total_num_frames=total, fps=rate)
                idx = [int(i) for i in vp.sample_frames(meta)]
                stamps = processor._calculate_timestamps(list(idx), rate, 2)
                sampling.append({"total_frames": total, "source_fps": rate, **opt, "indices": idx,
                                 "timestamps": stamps, "timestamps_text": [f"<{t:.1f} seconds>" for t in stamps]})
    resize = []
    sizes = [(32, 32), (33, 47), (48, 48), (72, 100), (100, 72), (180, 240), (360, 640), (480, 854), (720, 1280),
             (1080, 1920), (1088, 1920), (2160, 3840), (35, 6000), (4000, 3000)]
    budgets = [(4096, 25165824), (4096, 81920), (128 * 32 * 32, 768 * 32 * 32), (200000, 400000), (4096, 4096 * 2)]
    for h, w in sizes:
        for frames in (1, 2, 3, 4, 5, 20, 120, 768):
            for lo, hi in budgets:
                if rng.random() > 0.4:
                    continue
                try:
                    rh, rw = smart_resize(num_frames=frames, height=h, width=w, temporal_factor=2, factor=32,
                                          min_pixels=lo, max_pixels=hi)
                    resize.append({"frames": frames, "height": h, "width": w, "min_pixels": lo, "max_pixels": hi,
                                   "resized": [int(rh), int(rw)]})
                except ValueError as e:
                    resize.append({"frames": frames, "height": h, "width": w, "min_pixels": lo, "max_pixels": hi,
                                   "error": str(e)})
    for h, w in [(31, 64), (64, 20), (32, 6401)]:
        try:
            smart_resize(num_frames=4, height=h, width=w, temporal_factor=2, factor=32, min_pixels=4096,
                         max_pixels=25165824)
            raise AssertionError("expected an error")
        except ValueError as e:
            resize.append({"frames": 4, "height": h, "width": w, "min_pixels": 4096, "max_pixels": 25165824,
                           "error": str(e)})
    return {"sampling": sampling, "smart_resize": resize}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/repo/tests/fixtures/video")
    ap.add_argument("--model-dir", default="/repo/tests/fixtures/golden/models/full")
    ap.add_argument("--tokenizer-dir", default="/repo/.deps/tokenizer-qwen3")
    ap.add_argument("--ref-dir", default="/repo/assets/qwen3-vl")
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("REFGEN_THREADS", "1")))
    torch.use_deterministic_algorithms(True, warn_only=True)

    def log(msg):
        print(msg, flush=True)

    shutil.rmtree(os.path.join(args.out, "cases"), ignore_errors=True)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.ref_dir, "chat_template.json"), encoding="utf-8") as f:
        chat_template = json.load(f)["chat_template"]
    with open(os.path.join(args.ref_dir, "video_preprocessor_config.json"), encoding="utf-8") as f:
        video_config = json.load(f)
    video_config = {k: v for k, v in video_config.items() if k not in ("processor_class", "video_processor_type")}
    model = Qwen3VLForConditionalGeneration.from_pretrained(args.model_dir, dtype=torch.float32,
                                                            attn_implementation="eager").eval()
    processor, tokenizer = make_processor(args.model_dir, args.tokenizer_dir, args.ref_dir, chat_template,
                                          copy.deepcopy(video_config))
    manifest = {
        "generator": "tools/golden/gen_video_fixtures.py",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "pyav": av.__version__,
        "ffmpeg": {k: list(v) for k, v in av.library_versions.items()},
        "model_dir": "tests/fixtures/golden/models/full",
        "model_sha256": gf.sha256_file(os.path.join(args.model_dir, "model.safetensors")),
        "video_preprocessor_config": video_config,
        "video_preprocessor_config_source": "assets/qwen3-vl/video_preprocessor_config.json",
        "pixels_per_video_token": 2048,
        "conventions": {
            "timestamps": "[grid_t] float64: the mean time of each frame pair (processor._calculate_timestamps)",
            "video_features": "[video tokens, H]: HF's get_video_features pooler_output (merged)",
            "video_deepstack_features": "[K, video tokens, H]",
            "prefill_logits": "[1, V] float32, last prompt position",
            "generated_ids": "[1, n] HF generate, greedy, EOS (151645/151643) not included",
            "video_options": "the processor overrides: fps, max_frames, and max_video_tokens as "
                             "size.longest_edge = max_video_tokens * 2048 (shortest_edge 4096)",
        },
        "clips": {},
        "cases": {},
    }
    clips_dir = os.path.join(args.out, "clips")
    shutil.rmtree(clips_dir, ignore_errors=True)
    os.makedirs(clips_dir)
    for i, (clip, spec) in enumerate(CLIPS.items()):
        path = os.path.join(clips_dir, f"{clip}.{spec['ext']}")
        written = write_clip(path, spec, seed=31 + i)
        if spec["lossless"]:  # the decoder must give back exactly what was written
            decoded, _ = load_video(path, backend="pyav",
                                    sample_indices_fn=lambda metadata, **kw: np.arange(metadata.total_num_frames))
            assert np.array_equal(decoded, np.stack(written)), f"{clip}: lossless clip does not round-trip"
        manifest["clips"][clip] = {"file": f"clips/{clip}.{spec['ext']}", "seed": 31 + i,
                                   **{k: v for k, v in spec.items() if k != "options"},
                                   "encoder_options": spec["options"]}
    processor.base_video_config = copy.deepcopy(video_config)
    for name, case in CASES.items():
        manifest["cases"][name] = run_case(name, case, model, processor, args.out, log)
    processor.video_processor = Qwen3VLVideoProcessor(**copy.deepcopy(video_config))
    processor.video_processor.fetch_videos = pyav_fetch_videos
    manifest["chat"] = run_chat(model, processor, tokenizer, args.out, log)
    gf.write_json(os.path.join(args.out, "manifest.json"), manifest)
    with open(os.path.join(args.out, "sampling.json"), "w", encoding="utf-8") as f:
        table = sampling_cases(processor)
        f.write("{\n")
        for k, key in enumerate(("sampling", "smart_resize")):
            f.write(f'"{key}": [\n' + ",\n".join(json.dumps(row, separators=(",", ":")) for row in table[key]) + "\n]")
            f.write(",\n" if k == 0 else "\n")
        f.write("}\n")


if __name__ == "__main__":
    main()
