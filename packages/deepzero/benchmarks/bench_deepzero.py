"""Benchmark of the deepzero method: prints ratios against the baseline and the hardware (TODO)."""

from repro import environment

if __name__ == "__main__":
    print(f"{environment.cpu_name()}: TODO")
