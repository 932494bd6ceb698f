// Shared helpers of the deploy tests: render the kustomize trees, index the rendered objects, read
// the effective configuration of a container, and run processes that are always cleaned up.
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";

export const DEPLOY_DIR = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(DEPLOY_DIR, "../..");
export const K8S = path.join(REPO, "k8s");

// Every kustomization a user may apply or build on: the base and each overlay.
export function renderTargets() {
  const overlays = fs
    .readdirSync(path.join(K8S, "overlays"), { withFileTypes: true })
    .filter(
      (d) =>
        d.isDirectory() && fs.existsSync(path.join(K8S, "overlays", d.name, "kustomization.yaml")),
    )
    .map((d) => `overlays/${d.name}`)
    .sort();
  return ["base", ...overlays];
}

// `kubectl kustomize DIR` parsed into plain objects. Throws with kubectl's message on failure.
export function render(dir) {
  const abs = path.isAbsolute(dir) ? dir : path.join(K8S, dir);
  let text;
  try {
    text = execFileSync("kubectl", ["kustomize", abs], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (e) {
    throw new Error(`kubectl kustomize ${dir} failed: ${e.stderr || e.message}`);
  }
  const docs = YAML.parseAllDocuments(text);
  for (const d of docs)
    if (d.errors.length) throw new Error(`${dir}: YAML error ${d.errors[0].message}`);
  return docs.map((d) => d.toJS()).filter((o) => o !== null);
}

export const id = (o) => `${o.kind}/${o.metadata?.name}`;
export const find = (objs, kind, name) =>
  objs.find((o) => o.kind === kind && o.metadata?.name === name);
export const ofKind = (objs, ...kinds) => objs.filter((o) => kinds.includes(o.kind));
export const workloads = (objs) => ofKind(objs, "Deployment", "StatefulSet", "DaemonSet");

// Does a label selector (matchLabels only; matchExpressions are not used here) match `labels`?
export function selects(selector, labels) {
  const match = selector?.matchLabels ?? selector;
  if (!match || Object.keys(match).length === 0) return false;
  return Object.entries(match).every(([k, v]) => labels?.[k] === v);
}

// The ConfigMap a generated name refers to ("ddsplit-config-abc123" as rendered).
export function configMapData(objs, name) {
  const cm = find(objs, "ConfigMap", name);
  if (!cm) throw new Error(`ConfigMap ${name} is referenced but not rendered`);
  return cm.data ?? {};
}

// Stand-ins for downward-API fields when a container is run outside Kubernetes. 192.0.2.0/24 is
// TEST-NET-1: never contacted (check-config connects nowhere).
export const FAKE_POD_IP = "192.0.2.10";

// The environment a container gets from the manifests: envFrom ConfigMaps, then env (which wins).
export function containerEnv(objs, podName, container) {
  const env = {};
  for (const from of container.envFrom ?? []) {
    if (from.configMapRef) Object.assign(env, configMapData(objs, from.configMapRef.name));
    else
      throw new Error(
        `${container.name}: envFrom ${JSON.stringify(from)} is not supported by the checks`,
      );
  }
  for (const e of container.env ?? []) {
    if ("value" in e) env[e.name] = String(e.value);
    else if (e.valueFrom?.fieldRef) {
      const field = e.valueFrom.fieldRef.fieldPath;
      const values = {
        "status.podIP": FAKE_POD_IP,
        "metadata.name": podName,
        "metadata.namespace": "ddsplit",
      };
      if (!(field in values))
        throw new Error(`${container.name}: fieldRef ${field} has no stand-in`);
      env[e.name] = values[field];
    } else if (e.valueFrom?.configMapKeyRef) {
      const { name, key } = e.valueFrom.configMapKeyRef;
      const data = configMapData(objs, name);
      if (!(key in data)) throw new Error(`${container.name}: ConfigMap ${name} has no key ${key}`);
      env[e.name] = data[key];
    } else
      throw new Error(`${container.name}: env ${e.name} uses a source the checks cannot resolve`);
  }
  return env;
}

// The value of a flag as the process will see it: `--flag=V` or `--flag V` in args wins over the
// environment variable (CLI11 semantics). undefined when neither is set.
export function effectiveOption(args, env, flag, envName) {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === flag) return args[i + 1];
    if (args[i].startsWith(flag + "=")) return args[i].slice(flag.length + 1);
  }
  return envName && envName in env ? env[envName] : undefined;
}

// Returns args with each `flag` in `overrides` set to its value (replaced where present, else
// appended). A value of null removes the flag.
export function overrideArgs(args, overrides) {
  const out = [];
  const done = new Set();
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const flag = Object.keys(overrides).find((f) => a === f || a.startsWith(f + "="));
    if (!flag) {
      out.push(a);
      continue;
    }
    if (a === flag) i++; // the value is the next argument
    done.add(flag);
    if (overrides[flag] !== null) out.push(`${flag}=${overrides[flag]}`);
  }
  for (const [flag, value] of Object.entries(overrides)) {
    if (!done.has(flag) && value !== null) out.push(`${flag}=${value}`);
  }
  return out;
}

// The pod templates of the rendered workloads with what the checks need about each.
export function podTemplates(objs) {
  return workloads(objs).map((w) => ({
    workload: w,
    name: w.metadata.name,
    kind: w.kind,
    spec: w.spec.template.spec,
    labels: w.spec.template.metadata?.labels ?? {},
    replicas: w.spec.replicas ?? 1,
    // A representative pod name: a StatefulSet's last ordinal (the highest store id), a
    // Deployment's generated name.
    podName:
      w.kind === "StatefulSet"
        ? `${w.metadata.name}-${(w.spec.replicas ?? 1) - 1}`
        : `${w.metadata.name}-7d9f8c6b5-x2x4z`,
  }));
}

// The shape the ConfigMap gives: k, m, write quorum (0 means k + 1) and the store count.
export function configuredShape(objs) {
  const cm = objs.find((o) => o.kind === "ConfigMap" && o.data && "DDSPLIT_K" in o.data);
  if (!cm) throw new Error("no ConfigMap sets DDSPLIT_K");
  const int = (key) => {
    const v = cm.data[key];
    if (v === undefined || !/^\d+$/.test(v))
      throw new Error(`${id(cm)}: ${key} must be an integer, got ${v}`);
    return Number(v);
  };
  const k = int("DDSPLIT_K");
  const m = int("DDSPLIT_M");
  const quorumSetting = int("DDSPLIT_WRITE_QUORUM");
  return {
    k,
    m,
    quorum: quorumSetting === 0 ? Math.min(k + 1, k + m) : quorumSetting,
    stores: int("DDSPLIT_STORE_COUNT"),
    configMap: cm,
  };
}

// Kubernetes quantity ("500m", "2", "1Gi") as a number of base units.
export function quantity(q) {
  const m = /^([0-9.]+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(q));
  if (!m) throw new Error(`bad quantity ${q}`);
  const scale = {
    m: 1e-3,
    k: 1e3,
    M: 1e6,
    G: 1e9,
    T: 1e12,
    Ki: 1024,
    Mi: 1024 ** 2,
    Gi: 1024 ** 3,
    Ti: 1024 ** 4,
  };
  return Number(m[1]) * (m[2] ? scale[m[2]] : 1);
}

// The project version from the top-level CMakeLists.txt.
export function projectVersion() {
  const text = fs.readFileSync(path.join(REPO, "CMakeLists.txt"), "utf8");
  const m = /project\(\s*ddsplit\s+VERSION\s+([0-9.]+)/.exec(text);
  if (!m) throw new Error("no project(ddsplit VERSION x.y.z) in CMakeLists.txt");
  return m[1];
}

// A scratch directory removed when the process exits.
export function tempDir(prefix) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// Copies an overlay to a scratch directory (its references to ../.. rewritten: kustomize takes
// relative paths only) so that a test can change one file and render it: how the "one-place
// change" claims are tested.
export function copyOverlay(overlay, edit) {
  const src = path.join(K8S, overlay);
  const dst = tempDir("ddsplit-overlay-");
  fs.cpSync(src, dst, { recursive: true });
  const kfile = path.join(dst, "kustomization.yaml");
  const text = fs
    .readFileSync(kfile, "utf8")
    .replace(
      /(\s-\s+|path:\s+)(\.\.\/[^\s]+)/g,
      (all, lead, rel) => lead + path.relative(dst, path.resolve(src, rel)),
    );
  fs.writeFileSync(kfile, text);
  edit(dst);
  return dst;
}

// ---- processes

const children = new Set();
function killAll() {
  for (const c of children) {
    try {
      c.kill("SIGKILL");
    } catch {}
  }
}
process.on("exit", killAll);
for (const sig of ["SIGINT", "SIGTERM"])
  process.on(sig, () => {
    killAll();
    process.exit(1);
  });

// Starts a process (killed at the latest when this test process exits). Keeps its output for
// error messages. With `announce`, fd 3 is a pipe the process writes its JSON line to.
export function start(file, args, { env, announce = false, cwd } = {}) {
  const stdio = ["ignore", "pipe", "pipe"];
  if (announce) stdio.push("pipe");
  const child = spawn(file, args, { env, stdio, cwd });
  children.add(child);
  const proc = { child, output: "", exited: null, announced: null };
  child.stdout.on("data", (d) => (proc.output += d));
  child.stderr.on("data", (d) => (proc.output += d));
  proc.exit = new Promise((resolve) => {
    child.on("exit", (code, signal) => {
      children.delete(child);
      proc.exited = { code, signal };
      resolve(proc.exited);
    });
    child.on("error", (err) => {
      children.delete(child);
      proc.exited = { code: null, signal: null, error: err };
      resolve(proc.exited);
    });
  });
  if (announce) {
    proc.announcement = new Promise((resolve, reject) => {
      let buffer = "";
      child.stdio[3].on("data", (d) => {
        buffer += d;
        const nl = buffer.indexOf("\n");
        if (nl >= 0 && !proc.announced) {
          try {
            proc.announced = JSON.parse(buffer.slice(0, nl));
            resolve(proc.announced);
          } catch (e) {
            reject(new Error(`bad announcement ${buffer.slice(0, nl)}`));
          }
        }
      });
      proc.exit.then((e) =>
        reject(
          new Error(
            `${path.basename(file)} exited (${JSON.stringify(e)}) before announcing:\n${proc.output}`,
          ),
        ),
      );
    });
    proc.announcement.catch(() => {});
  }
  return proc;
}

// Resolves `promise` or rejects after `ms` with `what` in the message.
export function withDeadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// Runs a process to completion (with a deadline); returns { code, signal, stdout, stderr }.
export function run(file, args, { env, timeoutMs = 30000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ code: null, signal: null, stdout, stderr: stderr + String(err) });
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      children.delete(child);
      // Wait for the pipes to drain.
      setImmediate(() => resolve({ code, signal, stdout, stderr }));
    });
  });
}

// The environment for a DDSplit process outside Kubernetes: this process's environment without
// any DDSPLIT_* variable (ctest sets DDSPLIT_BIN_DIR; a developer may have others), plus `env`.
export function processEnv(env) {
  const base = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("DDSPLIT_")),
  );
  return { ...base, ...env };
}

// How to run a command with a chosen host name (the UTS namespace of unshare(1)), so that
// `--store-id=auto` sees a StatefulSet pod's name. null when this machine does not allow it.
let cachedHostnameRunner;
export async function hostnameRunner() {
  if (cachedHostnameRunner !== undefined) return cachedHostnameRunner;
  cachedHostnameRunner = null;
  const script = 'hostname "$0" && exec "$@"';
  for (const prefix of [
    ["unshare", "--uts"],
    ["unshare", "--user", "--map-root-user", "--uts"],
  ]) {
    const r = await run(
      prefix[0],
      [...prefix.slice(1), "--", "sh", "-c", script, "probe-7", "hostname"],
      { timeoutMs: 10000 },
    );
    if (r.code === 0 && r.stdout.trim() === "probe-7") {
      cachedHostnameRunner = (hostname, file, args) => [
        prefix[0],
        [...prefix.slice(1), "--", "sh", "-c", script, hostname, file, ...args],
      ];
      break;
    }
  }
  return cachedHostnameRunner;
}

// GET http://127.0.0.1:PORT/PATH; resolves { status, body }.
export async function httpGet(port, urlPath, timeoutMs = 5000) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), timeoutMs);
  try {
    const res = await fetch(`http://127.0.0.1:${port}${urlPath}`, { signal: controller.signal });
    return { status: res.status, body: await res.text() };
  } finally {
    clearTimeout(timer);
  }
}

// Polls `probe` until it returns a truthy value or the deadline passes (then throws with `what`).
export async function waitFor(probe, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(
        `timed out after ${ms} ms waiting for ${what}${last ? `: ${last.message}` : ""}`,
      );
    await new Promise((r) => setTimeout(r, 50));
  }
}

export function binDir() {
  const dir = process.env.DDSPLIT_BIN_DIR;
  if (!dir)
    throw new Error("DDSPLIT_BIN_DIR is not set (ctest sets it to the build's bin directory)");
  return dir;
}
