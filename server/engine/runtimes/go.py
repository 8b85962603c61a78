"""Go nodes: `go build`, with the binary cached by source + go.mod hash."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BuildError
from ..hashing import file_sha256, json_sha256
from ..model import Node, Pipeline
from .. import toolchains
from .base import HELPERS_DIR, BuildLog, Prepared, Runtime, cache_dir, locked, run_build

HELPER_MODULE = "pipeloom.local/pipeloom"


class GoRuntime(Runtime):
    name = "go"
    label = "Go"
    color = "#00ADD8"
    language = "go"
    tool = "go"
    source_ext = ".go"

    def build_files(self, node: Node, pipeline: Pipeline) -> tuple[list[Path], bool]:
        """The files that make up the program, and whether a go.mod sits beside the source."""
        src = self.source_path(node, pipeline)
        folder = src.parent
        if (folder / "go.mod").is_file():
            files = [p for p in folder.glob("*.go") if not p.name.endswith("_test.go")]
            files += [folder / n for n in ("go.mod", "go.sum") if (folder / n).is_file()]
            return sorted(files), True
        return [src], False

    def uses_helper(self, files: list[Path]) -> bool:
        return any(p.suffix == ".go" and f'"{HELPER_MODULE}"' in p.read_text(errors="replace") for p in files)

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        files, _ = self.build_files(node, pipeline)
        return {"files": {p.name: file_sha256(p) for p in files}}

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        files, has_mod = self.build_files(node, pipeline)
        helper = self.uses_helper(files)
        key_src = {p.name: file_sha256(p) for p in files}
        if helper:
            key_src["helper"] = {p.name: file_sha256(p) for p in sorted((HELPERS_DIR / "go").glob("*")) if p.is_file()}
        key_src["go"] = toolchains.version_of("go", "version")
        key = json_sha256(key_src)[:24]
        binary = cache_dir("bin") / f"go-{key}"
        if binary.exists():
            return Prepared([str(binary)], {})
        go = toolchains.resolve("go") or "go"
        with locked(binary):
            if binary.exists():
                return Prepared([str(binary)], {})
            with tempfile.TemporaryDirectory(prefix="pipeloom-go-") as tmp:
                work = Path(tmp)
                for p in files:
                    shutil.copy2(p, work / p.name)
                mod = work / "go.mod"
                if not has_mod:
                    mod.write_text("module pipeloomnode\n\ngo 1.21\n")
                if helper:
                    with open(mod, "a") as fh:
                        fh.write(f"\nrequire {HELPER_MODULE} v0.0.0\nreplace {HELPER_MODULE} => {HELPERS_DIR / 'go'}\n")
                out = binary.with_name(binary.name + ".tmp")
                env = {"GOFLAGS": "-mod=mod", "CGO_ENABLED": os.environ.get("CGO_ENABLED", "0")}
                log(f"building {', '.join(p.name for p in files if p.suffix == '.go')} with go build")
                run_build([go, "build", "-o", str(out), "."], log, cwd=work, env=env, what="go build")
                if not out.exists():
                    raise BuildError("go build produced no binary")
                os.replace(out, binary)
        return Prepared([str(binary)], {})

    def template(self, node_id: str) -> str:
        return (
            f"// {node_id}: read the inputs, do the work, write the outputs.\n"
            "package main\n\n"
            "import (\n\t\"fmt\"\n\t\"log\"\n\n\t\"pipeloom.local/pipeloom\"\n)\n\n"
            "func main() {\n"
            f"\trows := []map[string]any{{{{\"message\": \"hello from {node_id}\"}}}}\n"
            "\tif err := pipeloom.WriteRecords(\"out\", rows); err != nil {\n\t\tlog.Fatal(err)\n\t}\n"
            "\tfmt.Printf(\"wrote %d rows\\n\", len(rows))\n"
            "}\n"
        )
