// Offline checks of the Kubernetes manifests (k8s/): every kustomization renders, every object
// validates against the Kubernetes / Prometheus Operator schemas and their TypeScript types
// (misspelled fields), and the rendered objects keep DDSplit's deployment rules: labels and
// selectors, restricted security, probes, resources, graceful shutdown, disruption budgets and
// replica counts that agree with the configured k and m, monitoring generated from the repository's
// dashboards and alert rules, and a code shape changed in one place.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { pathToFileURL } from "node:url";
import YAML from "yaml";

import {
  DEPLOY_DIR,
  K8S,
  configuredShape,
  copyOverlay,
  find,
  id,
  ofKind,
  podTemplates,
  projectVersion,
  quantity,
  render,
  renderTargets,
  selects,
  tempDir,
  workloads,
} from "./lib.mjs";

const NODE_MODULES = path.join(DEPLOY_DIR, "node_modules");
const RECOMMENDED = [
  "app.kubernetes.io/part-of",
  "app.kubernetes.io/instance",
  "app.kubernetes.io/version",
  "app.kubernetes.io/managed-by",
];
const PER_COMPONENT = ["app.kubernetes.io/name", "app.kubernetes.io/component"];
const SELECTOR_KEYS = ["app.kubernetes.io/instance", "app.kubernetes.io/name"];
const RESTRICTED_UID = 65532;
// Annotations are limited to 256 KiB; client-side `kubectl apply` stores the whole object in one.
const MAX_APPLY_BYTES = 250 * 1024;

const rendered = new Map();
function renderedTarget(target) {
  if (!rendered.has(target)) rendered.set(target, render(target));
  return rendered.get(target);
}

// ---- schema validation

function modelModule(o) {
  const [group, version] = o.apiVersion.includes("/")
    ? o.apiVersion.split("/")
    : ["", o.apiVersion];
  if (group === "monitoring.coreos.com")
    return `@kubernetes-models/prometheus-operator/${group}/${version}/${o.kind}`;
  return `kubernetes-models/${group ? `${group}/` : ""}${version}/${o.kind}`;
}

async function schemaProblems(objs) {
  const problems = [];
  for (const o of objs) {
    const file = path.join(NODE_MODULES, `${modelModule(o)}.js`);
    if (!fs.existsSync(file)) {
      problems.push(`${id(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    const Model = (await import(pathToFileURL(file).href))[o.kind];
    try {
      new Model(o).validate();
    } catch (e) {
      problems.push(`${id(o)}: ${e.message}`);
    }
  }
  return problems;
}

// One TypeScript program that assigns every rendered object to its kubernetes-models interface:
// excess-property checks catch misspelled field names that the JSON schemas allow.
function typeProblems(renderings) {
  const dir = tempDir("ddsplit-tsc-");
  const files = [];
  const where = []; // per file: [first line of each object, object id]
  for (const [target, objs] of renderings) {
    const lines = [];
    const imports = new Map();
    const owners = [];
    const body = [];
    objs.forEach((o, i) => {
      const iface = `I${o.kind}`;
      const alias = `${iface}_${imports.size}`;
      const mod = path.join(NODE_MODULES, modelModule(o));
      if (!imports.has(mod)) imports.set(mod, alias);
      owners.push([body.length, `${target}: ${id(o)}`]);
      body.push(
        `export const o${i}: ${imports.get(mod)} = ${JSON.stringify(o, null, 1)};`.split("\n"),
      );
    });
    for (const [mod, alias] of imports)
      lines.push(`import type { I${path.basename(mod)} as ${alias} } from ${JSON.stringify(mod)};`);
    const starts = [];
    for (const chunk of body) {
      starts.push(lines.length + 1);
      lines.push(...chunk);
    }
    const file = path.join(dir, `${target.replace(/\W/g, "_")}.ts`);
    fs.writeFileSync(file, lines.join("\n") + "\n");
    files.push(file);
    where.push([file, starts.map((s, i) => [s, owners[i][1]])]);
  }
  fs.writeFileSync(
    path.join(dir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        module: "esnext",
        moduleResolution: "bundler",
        target: "es2022",
        types: [],
      },
      files,
    }),
  );
  let output = "";
  try {
    // tsc names files relative to its working directory: run it in `dir`, where the names are
    // resolved below (from elsewhere, a checkout under /tmp made every name unresolvable).
    execFileSync(process.execPath, [path.join(NODE_MODULES, "typescript/bin/tsc"), "-p", dir], {
      encoding: "utf8",
      cwd: dir,
    });
  } catch (e) {
    output = (e.stdout || "") + (e.stderr || "");
    if (!output) throw e;
  }
  const problems = [];
  for (const line of output.split("\n")) {
    const m = /^(.*\.ts)\((\d+),\d+\): error (TS\d+: .*)$/.exec(line);
    if (!m) continue;
    const starts = where.find(([f]) => f === m[1] || path.resolve(dir, m[1]) === f)?.[1] ?? [];
    const owner = starts.filter(([s]) => s <= Number(m[2])).pop()?.[1] ?? m[1];
    problems.push(`${owner}: ${m[3]}`);
  }
  if (output && problems.length === 0) problems.push(output.trim());
  return problems;
}

// ---- deployment rules

function preStopSeconds(container) {
  const cmd = container.lifecycle?.preStop?.exec?.command;
  if (!cmd) return container.lifecycle?.preStop?.sleep?.seconds ?? 0;
  const m = /(^|\/)sleep$/.test(cmd[0]) ? Number(cmd[1]) : NaN;
  return Number.isFinite(m) ? m : NaN;
}

// Every rule the manifests must keep, as a list of problems (empty: all kept).
export function policyProblems(objs, target) {
  const p = [];
  const version = projectVersion();
  const isOverlay = target.startsWith("overlays/");

  for (const o of objs) {
    const labels = o.metadata?.labels ?? {};
    for (const key of RECOMMENDED) if (!labels[key]) p.push(`${id(o)}: label ${key} missing`);
    if (labels["app.kubernetes.io/part-of"] && labels["app.kubernetes.io/part-of"] !== "ddsplit")
      p.push(`${id(o)}: part-of must be ddsplit`);
    if (labels["app.kubernetes.io/version"] && labels["app.kubernetes.io/version"] !== version) {
      p.push(
        `${id(o)}: version label ${labels["app.kubernetes.io/version"]} != project version ${version}`,
      );
    }
    if (["Deployment", "StatefulSet", "Service", "PodDisruptionBudget"].includes(o.kind)) {
      for (const key of PER_COMPONENT) if (!labels[key]) p.push(`${id(o)}: label ${key} missing`);
    }
    if (o.kind !== "Namespace" && o.metadata?.namespace === undefined && isOverlay)
      p.push(`${id(o)}: no namespace`);
  }

  const pods = podTemplates(objs);
  for (const pod of pods) {
    const w = pod.workload;
    const where = id(w);
    const sel = w.spec.selector?.matchLabels ?? {};
    if (w.spec.selector?.matchExpressions) p.push(`${where}: selector uses matchExpressions`);
    if (JSON.stringify(Object.keys(sel).sort()) !== JSON.stringify(SELECTOR_KEYS)) {
      p.push(
        `${where}: selector must be exactly ${SELECTOR_KEYS.join(" + ")}, is ${Object.keys(sel).join(" + ")}`,
      );
    }
    if (!selects(sel, pod.labels)) p.push(`${where}: selector does not match its pod template`);
    for (const key of [...RECOMMENDED, ...PER_COMPONENT])
      if (!pod.labels[key]) p.push(`${where}: pod label ${key} missing`);
    const others = pods.filter((q) => q !== pod && selects(sel, q.labels));
    if (others.length) p.push(`${where}: selector also matches ${others.map((q) => q.name)}`);

    // Restricted security.
    const spec = pod.spec;
    const psc = spec.securityContext ?? {};
    if (psc.runAsNonRoot !== true) p.push(`${where}: pod runAsNonRoot must be true`);
    if (psc.runAsUser !== RESTRICTED_UID)
      p.push(`${where}: pod runAsUser must be ${RESTRICTED_UID}`);
    if (spec.automountServiceAccountToken !== false)
      p.push(`${where}: automountServiceAccountToken must be false`);
    for (const f of ["hostNetwork", "hostPID", "hostIPC"])
      if (spec[f]) p.push(`${where}: ${f} is set`);
    for (const v of spec.volumes ?? [])
      if (v.hostPath) p.push(`${where}: hostPath volume ${v.name}`);
    if (spec.initContainers?.length)
      p.push(`${where}: init containers are not covered by these checks`);
    if (!spec.containers?.length) p.push(`${where}: no containers`);

    // Spread over nodes and zones, once per topology key, over this workload's own pods.
    const spread = spec.topologySpreadConstraints ?? [];
    const keys = spread.map((c) => c.topologyKey);
    for (const key of ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]) {
      if (!keys.includes(key)) p.push(`${where}: no topology spread over ${key}`);
    }
    if (new Set(keys).size !== keys.length)
      p.push(`${where}: topology spread constraints repeat a key: ${keys}`);
    for (const c of spread)
      if (!selects(c.labelSelector, pod.labels))
        p.push(`${where}: spread over ${c.topologyKey} does not select its own pods`);
    for (const term of spec.affinity?.podAntiAffinity
      ?.requiredDuringSchedulingIgnoredDuringExecution ?? []) {
      if (!selects(term.labelSelector, pod.labels))
        p.push(`${where}: anti-affinity does not select its own pods`);
    }
    for (const term of spec.affinity?.podAntiAffinity
      ?.preferredDuringSchedulingIgnoredDuringExecution ?? []) {
      if (!selects(term.podAffinityTerm.labelSelector, pod.labels))
        p.push(`${where}: preferred anti-affinity does not select its own pods`);
    }

    const mounts = new Map();
    for (const c of spec.containers ?? []) {
      const cw = `${where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if (sc.allowPrivilegeEscalation !== false)
        p.push(`${cw}: allowPrivilegeEscalation must be false`);
      if (sc.readOnlyRootFilesystem !== true) p.push(`${cw}: readOnlyRootFilesystem must be true`);
      if (sc.privileged) p.push(`${cw}: privileged`);
      if (!(sc.capabilities?.drop ?? []).includes("ALL"))
        p.push(`${cw}: capabilities must drop ALL`);
      if ((sc.capabilities?.add ?? []).length) p.push(`${cw}: adds capabilities`);
      if ((sc.runAsNonRoot ?? psc.runAsNonRoot) !== true) p.push(`${cw}: runAsNonRoot`);
      if ((sc.runAsUser ?? psc.runAsUser) !== RESTRICTED_UID)
        p.push(`${cw}: runAsUser must be ${RESTRICTED_UID}`);
      if ((sc.seccompProfile ?? psc.seccompProfile)?.type !== "RuntimeDefault")
        p.push(`${cw}: seccomp profile must be RuntimeDefault`);

      // Image: the project's, at the project's version.
      const [image, tag] = String(c.image).split(/:(?=[^/]+$)/);
      if (!/(^|\/)ddsplit$/.test(image)) p.push(`${cw}: image ${c.image} is not the ddsplit image`);
      if (tag !== version) p.push(`${cw}: image tag ${tag} != project version ${version}`);
      if (!c.command?.length || !c.command[0].startsWith("/usr/local/bin/ddsplit"))
        p.push(`${cw}: command must run a DDSplit binary by absolute path`);

      // Resources.
      for (const r of ["cpu", "memory"]) {
        const req = c.resources?.requests?.[r];
        const lim = c.resources?.limits?.[r];
        if (!req) p.push(`${cw}: no ${r} request`);
        if (!lim) p.push(`${cw}: no ${r} limit`);
        if (req && lim && quantity(req) > quantity(lim))
          p.push(`${cw}: ${r} request ${req} > limit ${lim}`);
      }

      // Probes on a declared port.
      const portNames = new Map((c.ports ?? []).map((port) => [port.name, port.containerPort]));
      const portNumbers = new Set((c.ports ?? []).map((port) => port.containerPort));
      for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
        const probe = c[kind];
        if (!probe?.httpGet) {
          p.push(`${cw}: ${kind} must be an httpGet probe`);
          continue;
        }
        const port = probe.httpGet.port;
        if (typeof port === "string" ? !portNames.has(port) : !portNumbers.has(port))
          p.push(`${cw}: ${kind} port ${port} is not a container port`);
      }
      if (c.readinessProbe?.httpGet?.path !== "/readyz")
        p.push(`${cw}: readiness must probe /readyz`);
      if (!["/healthz", "/livez"].includes(c.livenessProbe?.httpGet?.path))
        p.push(`${cw}: liveness must probe /healthz or /livez (local checks only)`);
      for (const port of c.ports ?? []) {
        if (!port.name) p.push(`${cw}: port ${port.containerPort} has no name`);
      }

      // Graceful shutdown: the preStop delay must leave time for the drain (checked against the
      // binaries' own drain timeout in binaries.test.mjs; here: it leaves some).
      const preStop = preStopSeconds(c);
      if (Number.isNaN(preStop)) p.push(`${cw}: preStop must be a plain sleep`);
      const grace = spec.terminationGracePeriodSeconds ?? 30;
      if (!(grace > preStop))
        p.push(
          `${cw}: terminationGracePeriodSeconds ${grace} must exceed the preStop sleep ${preStop}`,
        );

      for (const m of c.volumeMounts ?? []) mounts.set(m.mountPath, m.name);
      // The store's data directory must be on a volume (the root filesystem is read-only).
      const dataDir = (c.args ?? [])
        .find((a) => a.startsWith("--data-dir="))
        ?.slice("--data-dir=".length);
      if (
        dataDir &&
        ![...mounts.keys()].some(
          (m) => dataDir === m || dataDir.startsWith(m.endsWith("/") ? m : m + "/"),
        )
      ) {
        p.push(`${cw}: --data-dir ${dataDir} is not on a mounted volume`);
      }
      for (const from of c.envFrom ?? []) {
        if (from.configMapRef && !find(objs, "ConfigMap", from.configMapRef.name))
          p.push(`${cw}: ConfigMap ${from.configMapRef.name} not rendered`);
      }
      // Shared settings (the code shape, the store list) come from the one ConfigMap.
      const shared = configuredShape(objs).configMap.metadata.name;
      if (!(c.envFrom ?? []).some((f) => f.configMapRef?.name === shared))
        p.push(`${cw}: does not read the shared settings (envFrom ConfigMap ${shared})`);
    }
    const claimNames = new Set((w.spec.volumeClaimTemplates ?? []).map((v) => v.metadata.name));
    const volumeNames = new Set((spec.volumes ?? []).map((v) => v.name));
    for (const name of mounts.values())
      if (!claimNames.has(name) && !volumeNames.has(name))
        p.push(`${where}: mount of unknown volume ${name}`);

    // One disruption budget per workload, as maxUnavailable.
    const pdbs = ofKind(objs, "PodDisruptionBudget").filter((b) =>
      selects(b.spec.selector, pod.labels),
    );
    if (pdbs.length !== 1)
      p.push(`${where}: ${pdbs.length} PodDisruptionBudgets select its pods (need 1)`);
    for (const b of pdbs) {
      if (typeof b.spec.maxUnavailable !== "number" || b.spec.minAvailable !== undefined)
        p.push(`${id(b)}: use an integer maxUnavailable`);
      if (typeof b.spec.maxUnavailable === "number" && b.spec.maxUnavailable < 1)
        p.push(`${id(b)}: maxUnavailable < 1 blocks every node drain`);
    }
  }

  for (const b of ofKind(objs, "PodDisruptionBudget")) {
    const sel = b.spec.selector?.matchLabels ?? {};
    if (JSON.stringify(Object.keys(sel).sort()) !== JSON.stringify(SELECTOR_KEYS))
      p.push(`${id(b)}: selector must be exactly ${SELECTOR_KEYS.join(" + ")}`);
    if (!pods.some((pod) => selects(sel, pod.labels))) p.push(`${id(b)}: selects no workload`);
  }

  // Services select exactly one workload's pods and target its named ports.
  for (const s of ofKind(objs, "Service")) {
    const sel = s.spec.selector ?? {};
    if (JSON.stringify(Object.keys(sel).sort()) !== JSON.stringify(SELECTOR_KEYS))
      p.push(`${id(s)}: selector must be exactly ${SELECTOR_KEYS.join(" + ")}`);
    const targets = pods.filter((pod) => selects(sel, pod.labels));
    if (targets.length !== 1) {
      p.push(`${id(s)}: selects ${targets.length} workloads (need 1)`);
      continue;
    }
    const containerPorts = targets[0].spec.containers.flatMap((c) => c.ports ?? []);
    for (const port of s.spec.ports ?? []) {
      const t = port.targetPort ?? port.port;
      const ok =
        typeof t === "string"
          ? containerPorts.some((cp) => cp.name === t)
          : containerPorts.some((cp) => cp.containerPort === t);
      if (!ok)
        p.push(
          `${id(s)}: port ${port.name} targets ${t}, which ${targets[0].name} does not expose`,
        );
    }
  }

  // The code shape: one place (the ConfigMap), and everything agrees with it.
  const shape = configuredShape(objs);
  const stores = ofKind(objs, "StatefulSet").filter((s) =>
    s.spec.template.spec.containers.some((c) => c.command?.[0]?.endsWith("ddsplit-fragstore")),
  );
  if (stores.length !== 1) p.push(`need exactly one fragstore StatefulSet, found ${stores.length}`);
  const { k, m, quorum } = shape;
  if (!(k >= 1 && m >= 0 && k + m <= 32 && quorum >= k && quorum <= k + m))
    p.push(`invalid shape k=${k} m=${m} quorum=${quorum}`);
  for (const s of stores) {
    if (s.spec.replicas !== shape.stores)
      p.push(`${id(s)}: replicas ${s.spec.replicas} != DDSPLIT_STORE_COUNT ${shape.stores}`);
    if (s.spec.replicas < k + m)
      p.push(`${id(s)}: ${s.spec.replicas} stores cannot hold k + m = ${k + m} fragments`);
    const pdb = ofKind(objs, "PodDisruptionBudget").find((b) =>
      selects(b.spec.selector, s.spec.template.metadata.labels),
    );
    const maxUnavailable = pdb?.spec.maxUnavailable;
    if (typeof maxUnavailable === "number") {
      if (maxUnavailable > m)
        p.push(
          `${id(pdb)}: maxUnavailable ${maxUnavailable} > m = ${m}: a drain could make records unreadable`,
        );
      if (maxUnavailable > k + m - quorum) {
        p.push(
          `${id(pdb)}: maxUnavailable ${maxUnavailable} > k + m - write quorum = ${k + m - quorum}: a drain could block writes`,
        );
      }
    }
    const svc = find(objs, "Service", s.spec.serviceName);
    if (!svc) p.push(`${id(s)}: serviceName ${s.spec.serviceName} is not a rendered Service`);
    else {
      if (svc.spec.clusterIP !== "None")
        p.push(`${id(svc)}: must be headless (stable per-pod DNS names)`);
      if (svc.spec.publishNotReadyAddresses !== true)
        p.push(`${id(svc)}: must publish not-ready addresses (a restarting store keeps its name)`);
      if (!selects(svc.spec.selector, s.spec.template.metadata.labels))
        p.push(`${id(svc)}: does not select the store pods`);
    }
    if (!(s.spec.volumeClaimTemplates ?? []).length)
      p.push(`${id(s)}: no PersistentVolumeClaim per pod`);
  }
  // Stateless services survive a drain when an overlay runs more than one pod (dev may run one).
  for (const d of ofKind(objs, "Deployment")) {
    const pdb = ofKind(objs, "PodDisruptionBudget").find((b) =>
      selects(b.spec.selector, d.spec.template.metadata.labels),
    );
    if (target !== "overlays/dev" && pdb && (d.spec.replicas ?? 1) <= pdb.spec.maxUnavailable) {
      p.push(
        `${id(d)}: ${d.spec.replicas ?? 1} replicas with maxUnavailable ${pdb.spec.maxUnavailable}: a drain can take every pod`,
      );
    }
    const ru = d.spec.strategy?.rollingUpdate;
    if (d.spec.strategy?.type !== "RollingUpdate" || ru?.maxUnavailable !== 0)
      p.push(
        `${id(d)}: rolling updates must keep every pod until its replacement is ready (maxUnavailable 0)`,
      );
  }

  // Monitoring (overlays include it; the base leaves it to them).
  const monitors = ofKind(objs, "PodMonitor", "ServiceMonitor");
  if (isOverlay && monitors.length === 0) p.push("no PodMonitor or ServiceMonitor");
  for (const mon of ofKind(objs, "PodMonitor")) {
    for (const pod of pods) {
      if (!selects(mon.spec.selector, pod.labels)) {
        p.push(`${id(mon)}: does not select ${pod.name}`);
        continue;
      }
      for (const ep of mon.spec.podMetricsEndpoints ?? []) {
        if (!pod.spec.containers.some((c) => (c.ports ?? []).some((cp) => cp.name === ep.port)))
          p.push(`${id(mon)}: ${pod.name} has no port ${ep.port}`);
      }
    }
  }
  if (isOverlay) {
    for (const o of objs.filter((x) => x.apiVersion.startsWith("monitoring.coreos.com/"))) {
      if (!o.metadata.labels?.release)
        p.push(`${id(o)}: no release label (kube-prometheus-stack selects on it)`);
    }
  }
  return p;
}

// ---- tests

for (const target of renderTargets()) {
  test(`${target}: renders with kubectl kustomize`, () => {
    const objs = renderedTarget(target);
    assert.ok(objs.length > 0);
  });
  test(`${target}: every object validates against its OpenAPI schema`, async () => {
    assert.deepEqual(await schemaProblems(renderedTarget(target)), []);
  });
  test(`${target}: deployment rules hold`, () => {
    assert.deepEqual(policyProblems(renderedTarget(target), target), []);
  });
}

// A copy of the prod rendering with one misspelled field: proves the type check finds one.
function misspelledRendering() {
  const objs = structuredClone(renderedTarget("overlays/prod"));
  find(
    objs,
    "StatefulSet",
    "fragstore",
  ).spec.template.spec.containers[0].securityContext.readOnlyRootFileSystem = true;
  return objs;
}

test("no misspelled fields (TypeScript excess-property check of every rendered object)", () => {
  const renderings = renderTargets().map((t) => [t, renderedTarget(t)]);
  const problems = typeProblems([...renderings, ["mutant", misspelledRendering()]]);
  const mutant = problems.filter((x) => x.startsWith("mutant: "));
  assert.ok(
    mutant.some((x) => x.includes("StatefulSet/fragstore") && x.includes("readOnlyRootFileSystem")),
    `the check missed a misspelled field:\n${mutant.join("\n")}`,
  );
  assert.deepEqual(
    problems.filter((x) => !x.startsWith("mutant: ")),
    [],
  );
});

test("the checks catch a wrong type and broken rules", async () => {
  const objs = structuredClone(renderedTarget("overlays/prod"));
  const sts = find(objs, "StatefulSet", "fragstore");
  sts.spec.replicas = "6";
  const schema = await schemaProblems(objs);
  assert.ok(
    schema.some((x) => x.includes("StatefulSet/fragstore") && x.includes("replicas")),
    schema.join("\n"),
  );

  sts.spec.replicas = 6;
  sts.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = false;
  find(objs, "PodDisruptionBudget", "fragstore").spec.maxUnavailable = 3;
  find(objs, "Service", "splitter").spec.ports[0].targetPort = "clinet";
  const rules = policyProblems(objs, "overlays/prod");
  for (const expected of ["readOnlyRootFilesystem", "maxUnavailable 3 > m = 2", "targets clinet"]) {
    assert.ok(
      rules.some((x) => x.includes(expected)),
      `missed "${expected}" in:\n${rules.join("\n")}`,
    );
  }
});

test("one place changes k, m and the store count (the overlay's ddsplit.env)", () => {
  for (const overlay of renderTargets().filter((t) => t.startsWith("overlays/"))) {
    const dir = copyOverlay(overlay, (d) => {
      const env = path.join(d, "ddsplit.env");
      assert.ok(fs.existsSync(env), `${overlay} has no ddsplit.env`);
      fs.writeFileSync(
        env,
        fs
          .readFileSync(env, "utf8")
          .replace(/^DDSPLIT_K=.*$/m, "DDSPLIT_K=5")
          .replace(/^DDSPLIT_M=.*$/m, "DDSPLIT_M=3")
          .replace(/^DDSPLIT_STORE_COUNT=.*$/m, "DDSPLIT_STORE_COUNT=9"),
      );
    });
    const objs = render(dir);
    const shape = configuredShape(objs);
    assert.deepEqual({ k: shape.k, m: shape.m, stores: shape.stores }, { k: 5, m: 3, stores: 9 });
    assert.equal(find(objs, "StatefulSet", "fragstore").spec.replicas, 9);
    assert.deepEqual(policyProblems(objs, overlay), []);
    // Every pod takes the new values from the same (renamed) ConfigMap, so all of them restart.
    for (const w of workloads(objs)) {
      for (const c of w.spec.template.spec.containers) {
        assert.ok(
          (c.envFrom ?? []).some((f) => f.configMapRef?.name === shape.configMap.metadata.name),
          `${id(w)} does not read ${shape.configMap.metadata.name}`,
        );
      }
    }
    assert.notEqual(
      shape.configMap.metadata.name,
      configuredShape(renderedTarget(overlay)).configMap.metadata.name,
    );

    const tooFew = copyOverlay(overlay, (d) => {
      const env = path.join(d, "ddsplit.env");
      fs.writeFileSync(
        env,
        fs.readFileSync(env, "utf8").replace(/^DDSPLIT_STORE_COUNT=.*$/m, "DDSPLIT_STORE_COUNT=5"),
      );
    });
    const problems = policyProblems(render(tooFew), overlay);
    assert.ok(
      problems.some((x) => x.includes("5 stores cannot hold k + m = 6")),
      problems.join("\n"),
    );
  }
});

// Fields Kubernetes refuses to change after creation. An upgrade that changes one fails to apply.
const IMMUTABLE = {
  StatefulSet: (o) => ({
    selector: o.spec.selector,
    serviceName: o.spec.serviceName,
    podManagementPolicy: o.spec.podManagementPolicy,
    volumeClaimTemplates: o.spec.volumeClaimTemplates,
  }),
  Deployment: (o) => ({ selector: o.spec.selector }),
  Service: (o) => ({ clusterIP: o.spec.clusterIP, type: o.spec.type }),
};

test("an upgrade (new version everywhere) changes no immutable field and rolls every pod", () => {
  const version = projectVersion();
  const next = version.replace(/\d+$/, (n) => String(Number(n) + 1));
  const tree = tempDir("ddsplit-k8s-upgrade-");
  fs.cpSync(K8S, tree, { recursive: true });
  let replaced = 0;
  const bump = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) bump(file);
      else if (/\.ya?ml$/.test(entry.name)) {
        const text = fs.readFileSync(file, "utf8");
        const bumped = text.replaceAll(`"${version}"`, `"${next}"`);
        if (bumped !== text) replaced++;
        fs.writeFileSync(file, bumped);
      }
    }
  };
  bump(tree);
  assert.ok(replaced > 0, `no "${version}" in the manifests`);
  for (const overlay of renderTargets().filter((t) => t.startsWith("overlays/"))) {
    const before = renderedTarget(overlay);
    const after = render(path.join(tree, overlay));
    for (const o of before) {
      const changed = find(after, o.kind, o.metadata.name);
      assert.ok(changed, `${overlay}: ${id(o)} disappears on upgrade`);
      if (IMMUTABLE[o.kind]) {
        assert.deepEqual(
          IMMUTABLE[o.kind](changed),
          IMMUTABLE[o.kind](o),
          `${overlay}: ${id(o)} changes an immutable field on upgrade`,
        );
      }
    }
    for (const w of workloads(after)) {
      assert.equal(w.spec.template.metadata.labels["app.kubernetes.io/version"], next);
      for (const c of w.spec.template.spec.containers)
        assert.ok(c.image.endsWith(`:${next}`), `${id(w)} keeps image ${c.image}`);
    }
  }
});

test("dashboards and alert rules ship from the repository's files (one source of truth)", () => {
  const dashDir = path.join(K8S, "base/monitoring/dashboards");
  const files = fs
    .readdirSync(dashDir)
    .filter((f) => f.endsWith(".json"))
    .sort();
  assert.ok(files.length > 0, "no dashboards");
  const rule = YAML.parse(
    fs.readFileSync(path.join(K8S, "base/monitoring/prometheusrule.yaml"), "utf8"),
  );
  for (const overlay of renderTargets().filter((t) => t.startsWith("overlays/"))) {
    const objs = renderedTarget(overlay);
    const dashboards = objs.filter(
      (o) => o.kind === "ConfigMap" && o.metadata.labels?.grafana_dashboard === "1",
    );
    const shipped = dashboards.flatMap((cm) => Object.keys(cm.data ?? {})).sort();
    assert.deepEqual(shipped, files, `${overlay}: dashboards shipped != ${dashDir}/*.json`);
    for (const cm of dashboards) {
      assert.ok(
        !/-[a-z0-9]{10}$/.test(cm.metadata.name) ||
          cm.metadata.name.startsWith("ddsplit-dashboard-"),
        `${cm.metadata.name}: hashed name`,
      );
      for (const [file, text] of Object.entries(cm.data)) {
        assert.equal(
          text,
          fs.readFileSync(path.join(dashDir, file), "utf8"),
          `${overlay}: ${file} differs from the repository's file`,
        );
        JSON.parse(text);
      }
      const size = Buffer.byteLength(JSON.stringify(cm));
      assert.ok(
        size < MAX_APPLY_BYTES,
        `${cm.metadata.name} is ${size} bytes: too large for client-side kubectl apply (use --server-side)`,
      );
    }
    const rules = ofKind(objs, "PrometheusRule");
    assert.equal(rules.length, 1, `${overlay}: one PrometheusRule expected`);
    assert.deepEqual(
      rules[0].spec,
      rule.spec,
      `${overlay}: PrometheusRule differs from k8s/base/monitoring/prometheusrule.yaml`,
    );
  }
});
