#!/usr/bin/python3
"""Writes the PyTorch reference files that tests/test_io_pytorch.cpp reads.

Run from the repository root with Debian's python3-torch: /usr/bin/python3 tests/data/make_pytorch_rnns.py

pytorch_rnns.safetensors     net.state_dict() of the Net below, exactly as torch names it
pytorch_rnns_io.safetensors  an input batch, each layer's output on it, and a few tensors stored as
                             F64, F16 and BF16 (with the F32 values they must read as)

Debian 12 has no python3-safetensors, so save_file() below writes the format itself: an 8-byte
little-endian header length, the JSON header (padded with spaces to a multiple of 8), then each
tensor's bytes as PyTorch lays them out in memory. The values are PyTorch's own.
"""
import json
import struct

import torch

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16"}


def save_file(tensors, path, metadata=None):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().contiguous()
        data = t.view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = torch.nn.RNN(3, 4, batch_first=True)
        self.lstm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = torch.nn.GRU(3, 5, batch_first=True)
        self.head = torch.nn.Linear(5, 2)


torch.manual_seed(0)
net = Net()
x = torch.randn(2, 6, 3)  # (batch, time, features)
with torch.no_grad():
    rnn_out, rnn_h = net.rnn(x)
    lstm_out, (lstm_h, lstm_c) = net.lstm(x)
    gru_out, gru_h = net.gru(x)
    head_out = net.head(gru_out)

save_file(net.state_dict(), "tests/data/pytorch_rnns.safetensors", {"format": "pt", "torch": torch.__version__})
half_src = torch.tensor([1.0, -2.5, 65504.0, 6.0e-8, 0.333251953125, float("inf")])
save_file({
    "x": x,
    "rnn.output": rnn_out, "rnn.h_n": rnn_h,
    "lstm.output": lstm_out, "lstm.h_n": lstm_h, "lstm.c_n": lstm_c,
    "gru.output": gru_out, "gru.h_n": gru_h,
    "head.output": head_out,
    "f64": torch.arange(6, dtype=torch.float64).reshape(2, 3) / 3,
    "f16": half_src.to(torch.float16), "f16.as_f32": half_src.to(torch.float16).float(),
    "bf16": half_src.to(torch.bfloat16), "bf16.as_f32": half_src.to(torch.bfloat16).float(),
}, "tests/data/pytorch_rnns_io.safetensors")
print("wrote tests/data/pytorch_rnns.safetensors and tests/data/pytorch_rnns_io.safetensors")
