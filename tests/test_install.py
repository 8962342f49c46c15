"""What `make install` promises: exactly torch 2.13.0 (CPU), no CUDA packages, lava importable."""

import importlib.metadata as md


def test_exactly_torch_2_13_0_and_no_cuda_packages():
    assert md.version("torch").split("+")[0] == "2.13.0"
    # nvidia-ml-py (zeus's NVML bindings, for `lmu2neuro baseline`'s energy) is pure Python, no CUDA library
    cuda = sorted(
        d.metadata["Name"] for d in md.distributions() if d.metadata["Name"].lower().startswith(("nvidia-", "cuda-"))
        and d.metadata["Name"].lower() != "nvidia-ml-py"
    )
    assert cuda == [], f"CUDA packages installed: {cuda}"


def test_lava_and_numpy_pins():
    assert md.version("lava-nc") == "0.10.0"
    assert md.version("lava-dl") == "0.6.0"
    assert int(md.version("numpy").split(".")[0]) < 2  # lava 0.10 needs numpy < 2
