"""Rust nodes: built with cargo into one shared target directory, binaries cached by hash.

Dependencies come from a leading cargo-script frontmatter block:

    ---
    [dependencies]
    serde_json = "1"
    ---

or from a Cargo.toml beside the source.
"""

from __future__ import annotations

import os
import re
import shutil
import tomllib
from pathlib import Path

from ..errors import BuildError
from ..hashing import file_sha256, json_sha256, text_sha256
from ..model import Node, Pipeline
from .. import toolchains
from .base import HELPERS_DIR, BuildLog, Prepared, Runtime, cache_dir, locked, run_build

_FENCE_RE = re.compile(r"^(-{3,})\s*([A-Za-z0-9_-]*)\s*$")
# `path = "..."` (dependencies, [lib], [[bin]]) and `build = "..."`: relative to the manifest's folder
_PATH_RE = re.compile(r'(\b(?:path|build)\s*=\s*)"([^"\\]+)"')


def split_frontmatter(text: str) -> tuple[str | None, str]:
    """(manifest, body): the cargo-script frontmatter if the file starts with one.

    The body keeps blank lines where the frontmatter was, so compiler line
    numbers still match the file the user edits.
    """
    lines = text.splitlines(keepends=True)
    i = 0
    if lines and lines[0].startswith("#!") and not lines[0].startswith("#!["):
        i = 1
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines):
        return None, text
    m = _FENCE_RE.match(lines[i].rstrip("\n"))
    if not m:
        return None, text
    fence = m.group(1)
    for j in range(i + 1, len(lines)):
        if lines[j].rstrip("\n").rstrip() == fence:
            manifest = "".join(lines[i + 1: j])
            body = "\n" * (j + 1) + "".join(lines[j + 1:])
            return manifest, body
    raise BuildError(f"the frontmatter opened with `{fence}` on line {i + 1} is never closed")


class RustRuntime(Runtime):
    name = "rust"
    label = "Rust"
    color = "#dea584"
    language = "rust"
    tool = "cargo"
    source_ext = ".rs"

    def missing_toolchain(self) -> str | None:
        if not toolchains.resolve("cargo"):
            return "runtime `rust` needs the `cargo` command; not found on PATH"
        return None

    def project_manifest(self, node: Node, pipeline: Pipeline) -> Path | None:
        folder = self.source_path(node, pipeline).parent
        for cand in (folder, folder.parent if folder.name == "src" else None):
            if cand is not None and (cand / "Cargo.toml").is_file():
                return cand / "Cargo.toml"
        return None

    def project_files(self, manifest: Path) -> list[Path]:
        root = manifest.parent
        files = [manifest] + [root / "Cargo.lock"] * (root / "Cargo.lock").is_file()
        for sub in ("src", "build.rs"):
            p = root / sub
            if p.is_file():
                files.append(p)
            elif p.is_dir():
                files += sorted(q for q in p.rglob("*") if q.is_file())
        src_files = [p for p in root.glob("*.rs")]
        return sorted(set(files + src_files))

    def fingerprint(self, node: Node, pipeline: Pipeline) -> dict:
        manifest = self.project_manifest(node, pipeline)
        if manifest:
            return {"project": {str(p.relative_to(manifest.parent)): file_sha256(p) for p in self.project_files(manifest)}}
        return {"source": file_sha256(self.source_path(node, pipeline))}

    def _helper_hash(self) -> str:
        root = HELPERS_DIR / "rust"
        files = [p for p in root.rglob("*") if p.is_file() and "target" not in p.parts]
        return json_sha256({str(p.relative_to(root)): file_sha256(p) for p in sorted(files)})

    def prepare(self, node: Node, pipeline: Pipeline, log: BuildLog) -> Prepared:
        cargo = toolchains.resolve("cargo") or "cargo"
        target = cache_dir("cargo-target")
        env = {"CARGO_TARGET_DIR": str(target), "CARGO_TERM_COLOR": "never"}
        manifest = self.project_manifest(node, pipeline)
        rustc = toolchains.version_of("cargo")
        if manifest:
            key = json_sha256({"project": self.fingerprint(node, pipeline), "cargo": rustc})[:24]
            binary = cache_dir("bin") / f"rust-{key}"
            if binary.exists():
                return Prepared([str(binary)], {})
            with locked(binary):
                if not binary.exists():
                    name = self._bin_name(manifest)
                    copy = self._copy_project(manifest, cache_dir("rust-projects") / f"proj-{key}")
                    log(f"building {manifest.parent.name} with cargo (release)")
                    run_build([cargo, "build", "--release", "--manifest-path", str(copy)], log, env=env,
                              what="cargo build")
                    self._publish(target / "release" / name, binary)
            return Prepared([str(binary)], {})

        src = self.source_path(node, pipeline)
        text = src.read_text(encoding="utf-8", errors="replace")
        frontmatter, body = split_frontmatter(text)
        uses_helper = "pipeloom::" in body or re.search(r"\buse\s+pipeloom\b", body) is not None
        key = json_sha256({"source": text_sha256(text), "helper": self._helper_hash() if uses_helper else None,
                           "cargo": rustc})[:24]
        binary = cache_dir("bin") / f"rust-{key}"
        if binary.exists():
            return Prepared([str(binary)], {})
        with locked(binary):
            if binary.exists():
                return Prepared([str(binary)], {})
            pkg = f"pl-{re.sub(r'[^a-z0-9_-]', '-', node.id)}-{key[:10]}"
            proj = cache_dir("rust-projects") / key
            (proj / "src").mkdir(parents=True, exist_ok=True)
            deps = ""
            if frontmatter:
                try:
                    parsed = tomllib.loads(frontmatter)
                except tomllib.TOMLDecodeError as exc:
                    raise BuildError(f"invalid TOML in the cargo frontmatter of {src.name}: {exc}") from exc
                unknown = set(parsed) - {"dependencies", "package", "profile", "features"}
                if unknown:
                    raise BuildError(f"unsupported table(s) in the cargo frontmatter: {', '.join(sorted(unknown))}")
                deps = frontmatter
            manifest_text = self._manifest(pkg, deps, uses_helper)
            (proj / "Cargo.toml").write_text(manifest_text)
            (proj / "src" / "main.rs").write_text(body)
            log(f"building {src.name} with cargo (release)")
            run_build([cargo, "build", "--release", "--manifest-path", str(proj / "Cargo.toml")], log, env=env,
                      what="cargo build")
            self._publish(target / "release" / pkg, binary)
        return Prepared([str(binary)], {})

    def _copy_project(self, manifest: Path, dest: Path) -> Path:
        """A private copy of the user's project to build in.

        cargo writes Cargo.lock beside the manifest it builds; in the user's folder that file would change the
        node's fingerprint, so the next run would rebuild and re-run. Relative paths in the manifest are made
        absolute, so path dependencies still point at the user's folders.
        """
        root = manifest.parent
        if dest.exists():
            shutil.rmtree(dest)
        for f in self.project_files(manifest):
            target = dest / f.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, target)

        def absolute(m: re.Match) -> str:
            value = m.group(2)
            return m.group(0) if os.path.isabs(value) else m.group(1) + _toml_value(str((root / value).resolve()))

        text = _PATH_RE.sub(absolute, manifest.read_text(encoding="utf-8"))
        if not re.search(r"^\s*\[workspace\]", text, re.M):
            text += "\n[workspace]\n"  # stand alone: never join a workspace found above the copy
        (dest / "Cargo.toml").write_text(text, encoding="utf-8")
        return dest / "Cargo.toml"

    @staticmethod
    def _manifest(pkg: str, frontmatter: str, uses_helper: bool) -> str:
        parsed = tomllib.loads(frontmatter) if frontmatter else {}
        lines = ["[package]", f'name = "{pkg}"', 'version = "0.0.0"', 'edition = "2021"', "publish = false", ""]
        edition = (parsed.get("package") or {}).get("edition")
        if edition:
            lines[3] = f'edition = "{edition}"'
        deps = dict(parsed.get("dependencies") or {})
        lines.append("[dependencies]")
        for name, spec in deps.items():
            lines.append(f"{_toml_key(name)} = {_toml_value(spec)}")
        if uses_helper and "pipeloom" not in deps:
            lines.append(f'pipeloom = {{ path = "{HELPERS_DIR / "rust"}" }}')
        lines += ["", "[workspace]", "", "[profile.release]", "opt-level = 3", "debug = false", "incremental = false", ""]
        return "\n".join(lines)

    @staticmethod
    def _bin_name(manifest: Path) -> str:
        data = tomllib.loads(manifest.read_text())
        bins = data.get("bin") or []
        if bins and isinstance(bins, list) and bins[0].get("name"):
            return bins[0]["name"]
        name = (data.get("package") or {}).get("name")
        if not name:
            raise BuildError(f"{manifest}: no [package] name")
        return name

    @staticmethod
    def _publish(built: Path, binary: Path) -> None:
        if not built.exists():
            raise BuildError(f"cargo build finished but {built.name} was not produced")
        tmp = binary.with_name(binary.name + ".tmp")
        shutil.copy2(built, tmp)
        os.replace(tmp, binary)

    def template(self, node_id: str) -> str:
        return (
            f"// {node_id}: read the inputs, do the work, write the outputs.\n"
            "// Extra crates go in a cargo frontmatter block at the top of this file:\n"
            "// ---\n// [dependencies]\n// regex = \"1\"\n// ---\n"
            "use pipeloom::json::json;\n\n"
            "fn main() -> Result<(), Box<dyn std::error::Error>> {\n"
            f"    let rows = vec![json!({{\"message\": \"hello from {node_id}\"}})];\n"
            "    pipeloom::write_json(\"out\", &rows)?;\n"
            "    println!(\"wrote {} rows\", rows.len());\n"
            "    Ok(())\n"
            "}\n"
        )


def _toml_key(k: str) -> str:
    return k if re.match(r"^[A-Za-z0-9_-]+$", k) else '"' + k.replace('"', '\\"') + '"'


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise BuildError(f"unsupported value in the cargo frontmatter: {v!r}")
