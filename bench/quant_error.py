#!/usr/bin/env python3
r"""int8 output error, seqgrad against PyTorch, on the same weights and inputs.

For each of LSTM and GRU (input 64, batch 64, 100 steps, hidden 256 and 512, PyTorch's default
initialisation, inputs N(0, 1)): PyTorch's float model and its torch.quantization.quantize_dynamic
copy (qint8) run on the input, and the weights and input go to a safetensors file that
build/bench/quant_error loads into seqgrad's layer, whose float and quantize_dynamic outputs it
compares the same way. Each error is the int8 model's output against its own float model's:
max and mean absolute difference.

  /usr/bin/python3 bench/quant_error.py [--build build]
"""
import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile


def write_safetensors(path, tensors):
    """The safetensors layout: an 8-byte little-endian header size, a JSON header, raw data."""
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    args = ap.parse_args()
    tool = os.path.join(args.build, "bench", "quant_error")
    if not os.path.exists(tool):
        sys.exit(f"{tool} not found: build the project first")
    try:
        import torch
    except ImportError:
        print("PyTorch not found (apt-get install python3-torch; run with /usr/bin/python3): nothing to compare")
        return
    engines = torch.backends.quantized.supported_engines
    torch.backends.quantized.engine = next(e for e in ("fbgemm", "onednn", "x86", "qnnpack") if e in engines)
    torch.manual_seed(0)
    print(f"PyTorch {torch.__version__}, quantized engine {torch.backends.quantized.engine}; "
          "error = int8 output vs the same model's float output")
    print()
    print("| layer    | seqgrad max abs | seqgrad mean abs | PyTorch max abs | PyTorch mean abs |")
    print("|----------|-----------------|------------------|-----------------|------------------|")
    with tempfile.TemporaryDirectory() as tmp:
        for cell, cls in (("lstm", torch.nn.LSTM), ("gru", torch.nn.GRU)):
            for hidden in (256, 512):
                model = cls(64, hidden, batch_first=True).eval()
                x = torch.randn(64, 100, 64)
                with torch.no_grad():
                    ref = model(x)[0]
                    # quantize_dynamic swaps a model's children, never the model itself: wrap the layer.
                    qmodel = torch.quantization.quantize_dynamic(torch.nn.Sequential(model), {cls},
                                                                 dtype=torch.qint8)[0]
                    assert type(qmodel) is not cls, "quantize_dynamic left the layer in float32"
                    q = qmodel(x)[0]
                diff = (q - ref).abs()
                path = os.path.join(tmp, f"{cell}{hidden}.safetensors")
                write_safetensors(path, {**dict(model.named_parameters()), "input": x})
                ours = json.loads(subprocess.run([tool, cell, path], check=True, capture_output=True,
                                                 text=True).stdout)
                print(f"| {cell.upper():4} {hidden:3} | {ours['max_abs']:15.5f} | {ours['mean_abs']:16.6f} | "
                      f"{diff.max().item():15.5f} | {diff.mean().item():16.6f} |")


if __name__ == "__main__":
    main()
