#!/usr/bin/python3
"""Writes the fuzzers' seed corpora (fuzz/corpus/safetensors, fuzz/corpus/csv): small valid files
of every kind the readers accept, and a few near misses. Run from the repository root:
/usr/bin/python3 fuzz/corpus/make_seeds.py (standard library only)."""
import json
import os
import struct


def st(header, data=b"", pad=True):
    text = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


f32 = lambda *v: struct.pack("<%df" % len(v), *v)
f64 = lambda *v: struct.pack("<%dd" % len(v), *v)
seeds = {
    "f32.safetensors": st({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, f32(1, 2, 3, 4)),
    "f64_metadata.safetensors": st({"__metadata__": {"format": "pt", "epoch": "3"},
                                    "b": {"dtype": "F64", "shape": [2], "data_offsets": [0, 16]}}, f64(0.5, -1)),
    "half.safetensors": st({"h": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]},
                            "b": {"dtype": "BF16", "shape": [1, 2], "data_offsets": [4, 8]}},
                           bytes([0x00, 0x3C, 0x00, 0x7C, 0x80, 0x3F, 0xC0, 0x7F])),
    "scalar_empty.safetensors": st({"s": {"dtype": "F32", "shape": [], "data_offsets": [0, 4]},
                                    "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [4, 4]}}, f32(7)),
    "checkpoint.safetensors": st({"__metadata__": {"format": "seqgrad.checkpoint", "epoch": "2",
                                                   "rng.loader": "0123456789abcdef," * 3 + "0123456789abcdef"},
                                  "lstm.weight_ih_l0": {"dtype": "F32", "shape": [4, 1], "data_offsets": [0, 16]},
                                  "optim.0.step": {"dtype": "F64", "shape": [], "data_offsets": [16, 24]}},
                                 f32(1, 2, 3, 4) + f64(2)),
    "unpadded_nan.safetensors": st({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                                   struct.pack("<I", 0x7FC00000), pad=False),
    "overlap.safetensors": st({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                               "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, f32(1, 2, 3)),
    "truncated.safetensors": st({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, f32(1, 2)),
}
csv = {
    "basic.csv": "sequence_id,step,temp,pressure,y\na,0,0.5,1.25,0\na,1,0.25,1.5,1\na,2,-0.5,1.0,1\nb,0,1.0,0.0,0\nb,1,0.75,0.5,1\n",
    "multi_label_crlf.csv": "\ufeffsequence_id, step, f, y0, y1\r\n7,0,1e-3,+2,3\r\n7,1,-4.5E+2,5,6\r\n8,0,0,0,0\r\n",
    "no_labels.csv": "sequence_id,step,x1,x2\ns,0,1,2\n",
    "gap.csv": "sequence_id,step,f,y\na,0,1,0\na,2,1,0\n",
    "ragged.csv": "sequence_id,step,f,y\na,0,1\n",
    "nonfinite.csv": "sequence_id,step,f,y\na,0,nan,inf\n",
}
root = os.path.dirname(os.path.abspath(__file__))
for name, data in seeds.items():
    open(os.path.join(root, "safetensors", name), "wb").write(data)
for name, text in csv.items():
    open(os.path.join(root, "csv", name), "wb").write(text.encode())
print("wrote %d safetensors and %d csv seeds" % (len(seeds), len(csv)))
