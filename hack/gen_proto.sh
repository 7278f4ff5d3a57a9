#!/usr/bin/env bash
# Regenerate the Python stubs for our trimmed etcd v3 API protos in xlinefed/consensus/_proto.
#
# Usage: hack/gen_proto.sh            (uses .venv/bin/python, or $PYTHON)
#
# Post-processing, so the committed stubs work as a package with any supported runtime:
#  - imports between generated modules become package-relative (`from . import kv_pb2`);
#  - the protobuf gencode/runtime version assertion is removed: the stubs only use the
#    descriptor builder API present in protobuf >= 5.27 (our declared floor), while the
#    bundled protoc stamps its own, newer version;
#  - the grpcio "generated with version X" guard is removed for the same reason (grpcio >= 1.60).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
OUT=xlinefed/consensus/_proto

"$PYTHON" -m grpc_tools.protoc \
  -I . \
  --python_out=. \
  --pyi_out=. \
  "$OUT/kv.proto" "$OUT/rpc.proto"
"$PYTHON" -m grpc_tools.protoc -I . --grpc_python_out=. "$OUT/rpc.proto"

"$PYTHON" - "$OUT" <<'PY'
import pathlib
import re
import sys

out = pathlib.Path(sys.argv[1])
for path in sorted(out.glob("*_pb2*.py*")):
    text = path.read_text()
    # absolute imports of sibling stubs -> package-relative imports
    text = re.sub(
        r"^from xlinefed\.consensus\._proto import (\w+_pb2) as (\w+)$",
        r"from . import \1 as \2",
        text,
        flags=re.M,
    )
    text = re.sub(
        r"^from xlinefed\.consensus\._proto import (\w+_pb2)$",
        r"from . import \1",
        text,
        flags=re.M,
    )
    # protobuf gencode/runtime version check
    text = re.sub(r"^from google\.protobuf import runtime_version as _runtime_version\n", "", text, flags=re.M)
    text = re.sub(r"^_runtime_version\.ValidateProtobufRuntimeVersion\(\n(?:.*\n)*?\)\n", "", text, flags=re.M)
    # grpcio generated-version guard: drop from `GRPC_GENERATED_VERSION =` to the end of
    # its `raise RuntimeError(...)` block (the first line that is just "    )").
    lines = text.splitlines(keepends=True)
    if any(line.startswith("GRPC_GENERATED_VERSION =") for line in lines):
        start = next(i for i, line in enumerate(lines) if line.startswith("GRPC_GENERATED_VERSION ="))
        end = next(i for i in range(start, len(lines)) if lines[i].rstrip() == "    )")
        del lines[start : end + 1]
        text = "".join(lines).replace("import warnings\n", "", 1)
    path.write_text(text)
PY

touch "$OUT/__init__.py"
echo "generated: $(ls "$OUT"/*_pb2*.py* | tr '\n' ' ')"
