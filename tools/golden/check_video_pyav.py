#!/usr/bin/env python3
"""Compare q3vl's video decoding with transformers' PyAV backend (read_video_pyav), run in the
reference chroot:

    inroot.sh -b CLIP_DIR:/clips -b REPO:/repo -- python3 /repo/tools/golden/check_video_pyav.py /clips

CLIP_DIR holds clips and, for each CLIP, CLIP.json + CLIP.rgb written by tests/interop/video_dump.
For every clip: the frame count is PyAV's stream.frames where the container stores one (else q3vl
counted it), the rate is stream.average_rate, and every frame equals
enumerate(container.decode(video=0)) -> frame.to_ndarray(format="rgb24"): bit for bit, except the
clips whose name says "near" (high bit depth, odd heights: libswscale's scaling path, where FFmpeg
5.1 and PyAV's FFmpeg round differently), which must stay within small limits. Clips that store a
frame count also go through read_video_pyav itself with 5 linspace indices. Prints one line per
clip and exits 0, or prints FAIL: ... and exits 1.
"""

import glob
import json
import os
import sys

import av
import numpy as np
from transformers.video_utils import read_video_pyav


def check(clip):
    name = os.path.basename(clip)
    ours = json.load(open(clip + ".json"))
    container = av.open(clip)
    stream = container.streams.video[0]
    if stream.frames:
        assert not ours["frames_counted"], "PyAV reads a frame count, q3vl counted"
        assert ours["total_frames"] == stream.frames, (ours["total_frames"], stream.frames)
    else:
        assert ours["frames_counted"], "no stored frame count, yet q3vl did not count"
    assert abs(ours["fps"] - float(stream.average_rate)) < 1e-9, (ours["fps"], stream.average_rate)
    frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    assert len(frames) == ours["total_frames"] == ours["frames"], (len(frames), ours)
    decoded = np.fromfile(clip + ".rgb", dtype=np.uint8)
    assert decoded.size == frames.size, (decoded.size, frames.shape)
    diff = np.abs(decoded.reshape(frames.shape).astype(int) - frames.astype(int))
    if "near" in name:
        assert diff.mean() < 1.5 and diff.max() <= 64, (diff.mean(), diff.max())
    else:
        assert diff.max() == 0, f"{np.count_nonzero(diff)} values differ, up to {diff.max()}"
    line = f"{name}: {len(frames)} frames, max |diff| {diff.max()}, mean {diff.mean():.4f}"
    if stream.frames:
        def five(metadata, **kwargs):
            return np.linspace(0, metadata.total_num_frames - 1, 5).round().astype(int)
        video, metadata = read_video_pyav(clip, sample_indices_fn=five)
        indices = [int(i) for i in metadata.frames_indices]
        hf_diff = np.abs(video.astype(int) - decoded.reshape(frames.shape)[indices].astype(int))
        assert hf_diff.max() == diff[indices].max(), "read_video_pyav disagrees with the plain decode"
        line += f"; read_video_pyav frames {indices} agree"
    print(line)


def main():
    clips = sorted(c for c in glob.glob(os.path.join(sys.argv[1], "*")) if not c.endswith((".json", ".rgb")))
    failures = 0
    for clip in clips:
        try:
            check(clip)
        except Exception as error:  # noqa: BLE001  (report every clip, then fail)
            failures += 1
            print(f"FAIL: {os.path.basename(clip)}: {error!r}")
    print(f"{len(clips)} clips, {failures} failures")
    sys.exit(1 if failures or not clips else 0)


if __name__ == "__main__":
    main()
