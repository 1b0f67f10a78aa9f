"""The bare minimum of a cold start: interpreter, numpy, onnxruntime, session creation, one run.

    python bench/bare_start.py MODEL.onnx

Prints ``ready`` once the first inference (on zeros of the input's shape, dynamic axes as 64 or 1)
has returned; ``bench.coldstart`` times from spawning this script to that line.
"""

import sys

import numpy as np
import onnxruntime as ort


def main() -> int:
    session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
    arg = session.get_inputs()[0]
    dims = [d if isinstance(d, int) else 64 for d in arg.shape]
    if dims and not isinstance(arg.shape[0], int):
        dims[0] = 1
    session.run(None, {arg.name: np.zeros(dims, dtype=np.float32)})
    print("ready", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
