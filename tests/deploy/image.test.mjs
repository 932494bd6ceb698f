// Offline checks of the container image recipe (Dockerfile): two linters, the conventions
// (multi-stage, bookworm -> bookworm-slim, numeric non-root USER, exec-form ENTRYPOINT), the
// binaries the manifests run are the ones the image ships at those paths, the build stage needs
// nothing scripts/install-deps does not install, and the runtime stage installs exactly the
// packages of the shared libraries this build's binaries link (ldd + dpkg -S). Building the image
// for real is k8s/build-image.sh (slow, not part of CI).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { test } from "node:test";

import { DEPLOY_DIR, REPO, binDir, podTemplates, render, renderTargets } from "./lib.mjs";

const require = createRequire(import.meta.url);
const DOCKERFILE = path.join(REPO, "Dockerfile");
const text = fs.readFileSync(DOCKERFILE, "utf8");
const MAY_BE_MISSING = new Set(
  (process.env.DDSPLIT_DEPLOY_ALLOW_MISSING ?? "").split(/[\s,;]+/).filter(Boolean),
);
// Always present (bookworm-slim is built on them) or only in sanitizer builds.
const NOT_LISTED = new Set(["libc6", "libasan8", "libubsan1", "libtsan2", "liblsan0"]);

// Instructions with continuation lines joined and comments dropped: [{ line, op, args }].
function instructions(source) {
  const out = [];
  let current = null;
  source.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (!current && (line === "" || line.startsWith("#"))) return;
    if (current && line.startsWith("#")) return;
    const body = line.endsWith("\\") ? line.slice(0, -1) : line;
    if (!current) {
      const m = /^(\S+)\s*(.*)$/.exec(body);
      current = { line: i + 1, op: m[1].toUpperCase(), args: m[2] };
    } else current.args += " " + body;
    if (!line.endsWith("\\")) {
      current.args = current.args.replace(/\s+/g, " ").trim();
      out.push(current);
      current = null;
    }
  });
  return out;
}

function stages(source) {
  const result = [];
  for (const ins of instructions(source)) {
    if (ins.op === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      result.push({ image: m[1], name: m[2], instructions: [] });
    } else if (result.length) result[result.length - 1].instructions.push(ins);
  }
  return result;
}

// Packages named in `apt-get install` commands of a stage.
function aptPackages(stage) {
  const pkgs = new Set();
  for (const ins of stage.instructions.filter((i) => i.op === "RUN")) {
    for (const cmd of ins.args.split(/&&|;/)) {
      const m = /apt-get\s+install\s+(.*)$/.exec(cmd.trim());
      if (!m) continue;
      for (const word of m[1].split(/\s+/)) if (word && !word.startsWith("-")) pkgs.add(word);
    }
  }
  return pkgs;
}

const argDefault = (stage, name) => {
  const ins = stage.instructions.find((i) => i.op === "ARG" && i.args.startsWith(`${name}=`));
  return ins ? ins.args.slice(name.length + 1).replace(/^"|"$/g, "") : undefined;
};

const all = stages(text);
const build = all.find((s) => s.name === "build");
const runtime = all[all.length - 1];
const targets = (argDefault(build ?? { instructions: [] }, "DDSPLIT_TARGETS") ?? "")
  .split(/\s+/)
  .filter(Boolean);

test("Dockerfile: dockerfilelint and dockerfile-utils find nothing", () => {
  const lint = path.join(DEPLOY_DIR, "node_modules/dockerfilelint/bin/dockerfilelint");
  let out;
  try {
    out = execFileSync(process.execPath, [lint, "-o", "json", DOCKERFILE], { encoding: "utf8" });
  } catch (e) {
    out = e.stdout;
  }
  const report = JSON.parse(out);
  assert.deepEqual(
    report.files.flatMap((f) =>
      f.issues.map((i) => `line ${i.line}: ${i.title}: ${i.description}`),
    ),
    [],
  );
  const diagnostics = require("dockerfile-utils").validate(text);
  assert.deepEqual(
    diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`),
    [],
  );
});

test("Dockerfile: multi-stage, bookworm to bookworm-slim, numeric non-root user, exec-form entrypoint", () => {
  assert.ok(build, "no stage named build");
  assert.equal(build.image, "debian:bookworm");
  assert.equal(runtime.image, "debian:bookworm-slim");
  const users = runtime.instructions.filter((i) => i.op === "USER");
  assert.ok(users.length > 0, "runtime stage sets no USER");
  assert.match(
    users[users.length - 1].args,
    /^65532(:65532)?$/,
    "USER must be numeric 65532 (Kubernetes runAsNonRoot checks a numeric uid)",
  );
  const entry = runtime.instructions.filter((i) => i.op === "ENTRYPOINT").pop();
  assert.ok(entry && Array.isArray(JSON.parse(entry.args)), "ENTRYPOINT must be exec form");
  assert.ok(targets.length > 0, "no DDSPLIT_TARGETS default in the build stage");
  assert.ok(
    runtime.instructions.some(
      (i) => i.op === "COPY" && /--from=build\s+\/out\/?\s+\/usr\/local\/bin\/?$/.test(i.args),
    ),
    "runtime stage must copy the built binaries to /usr/local/bin/",
  );
  const ignore = fs
    .readFileSync(path.join(REPO, ".dockerignore"), "utf8")
    .split("\n")
    .map((l) => l.trim());
  for (const entry of [".git", "build", "**/node_modules"])
    assert.ok(ignore.includes(entry), `.dockerignore must exclude ${entry}`);
});

test("Dockerfile ships every binary the manifests run, at the path they run it from", () => {
  for (const target of renderTargets()) {
    for (const pod of podTemplates(render(target))) {
      for (const c of pod.spec.containers) {
        const cmd = c.command[0];
        assert.equal(path.dirname(cmd), "/usr/local/bin", `${target} ${pod.name}: runs ${cmd}`);
        assert.ok(
          targets.includes(path.basename(cmd)),
          `${target} ${pod.name}: ${path.basename(cmd)} is not in the image's DDSPLIT_TARGETS`,
        );
      }
    }
  }
  assert.ok(targets.includes("ddsplit"), "the image ships the CLI too");
});

test("Dockerfile build stage installs nothing scripts/install-deps does not", () => {
  const script = fs.readFileSync(path.join(REPO, "scripts/install-deps"), "utf8");
  const listed = new Set(script.replace(/#.*$/gm, "").split(/\s+/));
  const extra = [...aptPackages(build)].filter((p) => !listed.has(p));
  assert.deepEqual(
    extra,
    [],
    "build-stage packages missing from scripts/install-deps (the two must agree)",
  );
});

test("Dockerfile runtime stage installs exactly the packages of the libraries the binaries link", (t) => {
  const bin = binDir();
  const needed = new Map(); // package -> binaries that need it
  let complete = true;
  for (const target of targets) {
    const file = path.join(bin, target);
    if (!fs.existsSync(file)) {
      if (!MAY_BE_MISSING.has(target)) assert.fail(`${file} does not exist: build it`);
      t.diagnostic(`${target} is not built here: its libraries are NOT CHECKED`);
      complete = false;
      continue;
    }
    const sonames = execFileSync("readelf", ["-d", file], { encoding: "utf8" })
      .split("\n")
      .map((l) => /\(NEEDED\).*\[(.+)\]/.exec(l)?.[1])
      .filter(Boolean);
    const resolved = new Map(
      execFileSync("ldd", [file], { encoding: "utf8" })
        .split("\n")
        .map((l) => /^\s*(\S+) => (\/\S+)/.exec(l))
        .filter(Boolean)
        .map((m) => [m[1], m[2]]),
    );
    for (const soname of sonames) {
      const lib = resolved.get(soname);
      assert.ok(lib, `${target}: ${soname} does not resolve (ldd)`);
      const pkg = owningPackage(lib);
      if (!needed.has(pkg)) needed.set(pkg, new Set());
      needed.get(pkg).add(target);
    }
  }
  const installed = aptPackages(runtime);
  const missingPkgs = [...needed.keys()].filter((p) => !installed.has(p) && !NOT_LISTED.has(p));
  assert.deepEqual(
    missingPkgs.map((p) => `${p} (needed by ${[...needed.get(p)].join(", ")})`),
    [],
    "runtime stage lacks packages",
  );
  if (complete) {
    const unneeded = [...installed].filter((p) => !needed.has(p));
    assert.deepEqual(unneeded, [], "runtime stage installs packages no binary links");
  } else {
    t.diagnostic(
      "not every binary is built: packages the runtime stage installs beyond need are NOT CHECKED",
    );
  }
});

// The Debian package that owns a library file; tries the merged-/usr spellings of its path.
const owners = new Map();
function owningPackage(file) {
  if (!owners.has(file)) owners.set(file, findOwner(file));
  return owners.get(file);
}

function findOwner(file) {
  const real = fs.realpathSync(file);
  const candidates = new Set([file, real]);
  for (const f of [file, real]) {
    if (f.startsWith("/usr/")) candidates.add(f.slice(4));
    else candidates.add("/usr" + f);
  }
  for (const c of candidates) {
    try {
      const out = execFileSync("dpkg", ["-S", c], {
        encoding: "utf8",
        stdio: ["ignore", "pipe", "ignore"],
      });
      return out.split(":")[0].trim();
    } catch {}
  }
  throw new Error(`no Debian package owns ${file}`);
}
