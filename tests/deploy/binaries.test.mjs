// Manifests and binaries cannot drift: every container's command, arguments and environment are
// taken from the rendered manifests and run against the real binary (DDSPLIT_BIN_DIR) with
// --check-config, which prints what the process would serve; every probe path and port, every
// Service port, the store list and the code shape in the manifests must agree with it. Then one
// rendering runs for real on loopback (admin ports 0, binds moved to 127.0.0.1): every probe path
// answers, a record goes in and comes back, and SIGTERM ends each process in its grace period.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

import {
  FAKE_POD_IP,
  binDir,
  configuredShape,
  containerEnv,
  copyOverlay,
  effectiveOption,
  find,
  hostnameRunner,
  httpGet,
  id,
  ofKind,
  overrideArgs,
  podTemplates,
  processEnv,
  render,
  renderTargets,
  run,
  selects,
  start,
  tempDir,
  waitFor,
  withDeadline,
} from "./lib.mjs";

const BIN = binDir();
// Binaries a build may lack (CMake lists the targets it does not define); their containers are
// reported as skipped, never silently passed.
const MAY_BE_MISSING = new Set(
  (process.env.DDSPLIT_DEPLOY_ALLOW_MISSING ?? "").split(/[\s,;]+/).filter(Boolean),
);
// Sanitizer builds start slowly.
const START_MS = 30000;

const binaryOf = (container) => path.join(BIN, path.basename(container.command[0]));
const serviceOf = (container) => path.basename(container.command[0]).replace(/^ddsplit-/, "");
const ordinalOf = (podName) => Number(/-(\d+)$/.exec(podName)[1]);

function missing(container) {
  const file = binaryOf(container);
  if (fs.existsSync(file)) return null;
  const name = path.basename(file);
  if (MAY_BE_MISSING.has(name))
    return `${name} is not built here (DDSPLIT_DEPLOY_ALLOW_MISSING): NOT CHECKED`;
  throw new Error(`${file} does not exist: build it (the manifests run it)`);
}

// Runs the container's command line with --check-config, as the manifests give it. A
// StatefulSet pod runs with its pod's host name, so `--store-id=auto` resolves as in the cluster.
async function checkConfig(objs, pod, container) {
  const env = containerEnv(objs, pod.podName, container);
  const file = binaryOf(container);
  let args = [...(container.args ?? []), "--check-config"];
  let command = [file, args];
  if (pod.kind === "StatefulSet") {
    const runner = await hostnameRunner();
    if (runner) command = runner(pod.podName, file, args);
    else command = [file, overrideArgs(args, { "--store-id": ordinalOf(pod.podName) })];
  }
  const r = await run(command[0], command[1], { env: processEnv(env) });
  assert.equal(
    r.code,
    0,
    `${file} ${args.join(" ")} --check-config failed (${r.code}):\n${r.stderr}${r.stdout}`,
  );
  const lines = r.stdout.trim().split("\n");
  assert.equal(lines.length, 1, `--check-config must print one JSON line, printed:\n${r.stdout}`);
  return JSON.parse(lines[0]);
}

// What the manifests claim about one container, compared with what its binary says it serves.
function containerProblems(objs, pod, container, served) {
  const p = [];
  const where = `${id(pod.workload)} container ${container.name}`;
  if (served.service !== serviceOf(container))
    p.push(`${where}: runs ${served.service}, expected ${serviceOf(container)}`);
  const ports = new Map((container.ports ?? []).map((cp) => [cp.name, cp.containerPort]));
  const portNumber = (port) => (typeof port === "string" ? ports.get(port) : port);

  if (ports.get("admin") !== served.admin_port)
    p.push(
      `${where}: container port admin ${ports.get("admin")} but the process serves its admin HTTP on ${served.admin_port}`,
    );
  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"]) {
    const get = container[kind]?.httpGet;
    if (!get) continue;
    if (!served.admin_paths.includes(get.path))
      p.push(`${where}: ${kind} path ${get.path} is not served (serves ${served.admin_paths})`);
    if (portNumber(get.port) !== served.admin_port)
      p.push(`${where}: ${kind} port ${get.port} is not the admin port ${served.admin_port}`);
  }
  for (const [name, number] of Object.entries(served.ports ?? {})) {
    if (number === null) continue;
    if (ports.get(name) !== number)
      p.push(
        `${where}: the process listens on ${name} ${number}; container port ${name} is ${ports.get(name)}`,
      );
  }
  for (const [name, number] of ports) {
    if (name !== "admin" && served.ports?.[name] !== number)
      p.push(
        `${where}: container port ${name} ${number} is not served (serves ${JSON.stringify(served.ports)})`,
      );
  }
  const grace = pod.spec.terminationGracePeriodSeconds ?? 30;
  const preStop = Number(container.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
  const drain = (served.drain_timeout_ms ?? 0) / 1000;
  if (grace < preStop + drain)
    p.push(
      `${where}: terminationGracePeriodSeconds ${grace} < preStop ${preStop} s + drain ${drain} s`,
    );
  // Every Service in front of this pod targets a port the process serves.
  for (const s of ofKind(objs, "Service").filter((x) => selects(x.spec.selector, pod.labels))) {
    for (const sp of s.spec.ports ?? []) {
      const target = portNumber(sp.targetPort ?? sp.port);
      const servedNumbers = [served.admin_port, ...Object.values(served.ports ?? {})];
      if (!servedNumbers.includes(target))
        p.push(
          `${id(s)}: port ${sp.name} targets ${sp.targetPort}, which ${served.service} does not serve`,
        );
    }
  }
  for (const mon of ofKind(objs, "PodMonitor").filter((x) =>
    selects(x.spec.selector, pod.labels),
  )) {
    for (const ep of mon.spec.podMetricsEndpoints ?? []) {
      if (ports.get(ep.port) !== served.admin_port)
        p.push(`${id(mon)}: scrapes port ${ep.port}, not the admin port`);
      if (!served.admin_paths.includes(ep.path ?? "/metrics"))
        p.push(`${id(mon)}: scrapes ${ep.path}, which is not served`);
    }
  }
  return p;
}

// The splitter's and assembler's view of the stores and the code shape, against the StatefulSet,
// its headless Service, the stores' own ports and the disruption budget.
function clusterProblems(objs, served) {
  const p = [];
  const stores = served.find((s) => s.service === "fragstore");
  if (!stores) return ["no fragstore container"];
  const sts = stores.pod.workload;
  const shape = configuredShape(objs);
  const pdb = ofKind(objs, "PodDisruptionBudget").find((b) =>
    selects(b.spec.selector, stores.pod.labels),
  );
  if (stores.json.store_id !== ordinalOf(stores.pod.podName))
    p.push(`${stores.pod.podName} would be store ${stores.json.store_id}`);
  for (const s of served.filter((x) => x.service === "splitter" || x.service === "assembler")) {
    const name = `${s.service} (${id(s.pod.workload)})`;
    const { k, m, write_quorum: quorum } = s.json;
    if (k !== shape.k || m !== shape.m || quorum !== shape.quorum)
      p.push(
        `${name}: runs k=${k} m=${m} quorum=${quorum}, the ConfigMap says ${JSON.stringify(shape)}`,
      );
    if (s.json.stores.length !== sts.spec.replicas)
      p.push(
        `${name}: uses ${s.json.stores.length} stores, the StatefulSet runs ${sts.spec.replicas}`,
      );
    if (sts.spec.replicas < k + m)
      p.push(`${name}: ${sts.spec.replicas} store pods cannot hold k + m = ${k + m}`);
    if (pdb && pdb.spec.maxUnavailable > Math.min(m, k + m - quorum))
      p.push(
        `${id(pdb)}: maxUnavailable ${pdb.spec.maxUnavailable} > min(m, k + m - quorum) = ${Math.min(m, k + m - quorum)} for ${name}`,
      );
    s.json.stores.forEach((store, i) => {
      const host = `${sts.metadata.name}-${i}.${sts.spec.serviceName}`;
      const expected = {
        id: i,
        ingest: `tcp://${host}:${stores.json.ports.ingest}`,
        read: `tcp://${host}:${stores.json.ports.read}`,
      };
      if (
        store.id !== expected.id ||
        store.ingest !== expected.ingest ||
        store.read !== expected.read
      ) {
        p.push(
          `${name}: store ${JSON.stringify(store)} is not StatefulSet pod ${JSON.stringify(expected)}`,
        );
      }
    });
    if (
      s.service === "splitter" &&
      s.json.advertised_ack_endpoint !== `tcp://${FAKE_POD_IP}:${s.json.ports.ack}`
    ) {
      p.push(
        `${name}: stores would push acks to ${s.json.advertised_ack_endpoint}, not to the pod IP (DDSPLIT_ADVERTISE_HOST from status.podIP)`,
      );
    }
  }
  if (
    !served.some((s) => s.service === "splitter") ||
    !served.some((s) => s.service === "assembler")
  )
    p.push("no splitter or no assembler container");
  return p;
}

// The gateway (and any other client in a pod) reaches splitters and assemblers through headless
// Services that select them, on ports they serve: checked from the manifests alone.
function clientProblems(objs, served) {
  const p = [];
  for (const pod of podTemplates(objs)) {
    for (const c of pod.spec.containers) {
      if (serviceOf(c) !== "gateway") continue;
      const env = containerEnv(objs, pod.podName, c);
      for (const [flag, envName, target] of [
        ["--splitters", "DDSPLIT_SPLITTERS", "splitter"],
        ["--assemblers", "DDSPLIT_ASSEMBLERS", "assembler"],
      ]) {
        const value = effectiveOption(c.args ?? [], env, flag, envName);
        if (!value) {
          p.push(`${id(pod.workload)}: no ${flag} / ${envName}`);
          continue;
        }
        const backend = served.find((s) => s.service === target);
        for (const endpoint of value.split(";").filter(Boolean)) {
          const m = /^dns\+tcp:\/\/([a-z0-9-]+):(\d+)$/.exec(endpoint);
          if (!m) {
            p.push(
              `${id(pod.workload)}: ${flag} ${endpoint} is not dns+tcp://SERVICE:PORT (requests would not spread per message)`,
            );
            continue;
          }
          const svc = find(objs, "Service", m[1]);
          if (!svc) {
            p.push(`${id(pod.workload)}: ${flag} names Service ${m[1]}, which is not rendered`);
            continue;
          }
          if (svc.spec.clusterIP !== "None")
            p.push(`${id(svc)}: must be headless so that DNS returns every ${target} pod`);
          if (!backend || !selects(svc.spec.selector, backend.pod.labels))
            p.push(`${id(svc)}: does not select the ${target} pods`);
          const sp = (svc.spec.ports ?? []).find((x) => x.port === Number(m[2]));
          // A headless Service does not translate ports: the client connects to the pod's port.
          if (!sp) p.push(`${id(svc)}: has no port ${m[2]} (${flag})`);
          else if (backend && Number(m[2]) !== backend.json.ports.client)
            p.push(
              `${id(pod.workload)}: ${flag} port ${m[2]} but ${target} serves clients on ${backend.json.ports.client}`,
            );
        }
      }
    }
  }
  return p;
}

async function checkRendering(t, objs) {
  const served = [];
  const problems = [];
  for (const pod of podTemplates(objs)) {
    for (const container of pod.spec.containers) {
      const why = missing(container);
      if (why) {
        t.diagnostic(`${id(pod.workload)}: ${why}`);
        continue;
      }
      const json = await checkConfig(objs, pod, container);
      served.push({ service: json.service, pod, container, json });
      problems.push(...containerProblems(objs, pod, container, json));
    }
  }
  problems.push(...clusterProblems(objs, served), ...clientProblems(objs, served));
  return { served, problems };
}

const renderings = renderTargets().map((target) => [target, () => render(target)]);
// The one-place change of the code shape reaches the binaries too.
renderings.push([
  "overlays/prod with k=5 m=3 on 9 stores",
  () =>
    render(
      copyOverlay("overlays/prod", (d) => {
        const env = path.join(d, "ddsplit.env");
        fs.writeFileSync(
          env,
          fs
            .readFileSync(env, "utf8")
            .replace(/^DDSPLIT_K=.*$/m, "DDSPLIT_K=5")
            .replace(/^DDSPLIT_M=.*$/m, "DDSPLIT_M=3")
            .replace(/^DDSPLIT_STORE_COUNT=.*$/m, "DDSPLIT_STORE_COUNT=9"),
        );
      }),
    ),
]);

for (const [name, make] of renderings) {
  test(`${name}: every container's configuration runs, and serves what the manifests say`, async (t) => {
    const { served, problems } = await checkRendering(t, make());
    assert.deepEqual(problems, []);
    assert.ok(served.length >= 3);
    if (name.includes("k=5"))
      assert.equal(served.find((s) => s.service === "splitter").json.stores.length, 9);
  });
}

test("the checks catch drift: a wrong probe path, port, store count and advertise host", async (t) => {
  const objs = render("overlays/prod");
  const sts = find(objs, "StatefulSet", "fragstore");
  sts.spec.template.spec.containers[0].livenessProbe.httpGet.path = "/livez";
  sts.spec.template.spec.containers[0].args = overrideArgs(
    sts.spec.template.spec.containers[0].args,
    { "--read-bind": "tcp://0.0.0.0:7102" },
  );
  sts.spec.replicas = 7;
  const splitter = find(objs, "Deployment", "splitter").spec.template.spec.containers[0];
  splitter.env = splitter.env.filter((e) => e.name !== "DDSPLIT_ADVERTISE_HOST");
  const { problems } = await checkRendering(t, objs);
  for (const expected of [
    "livenessProbe path /livez is not served",
    "container port read 7101 is not served",
    "the StatefulSet runs 7",
    "not to the pod IP",
  ]) {
    assert.ok(
      problems.some((x) => x.includes(expected)),
      `missed "${expected}" in:\n${problems.join("\n")}`,
    );
  }
});

test("--check-config rejects an invalid configuration with a clear message", async () => {
  const cases = [
    ["ddsplit-fragstore", ["--store-id=auto", "--data-dir=/nonexistent"], {}, /store-id/],
    [
      "ddsplit-fragstore",
      ["--store-id=1", "--data-dir=/tmp/x", "--ingest-bind=tcp://0.0.0.0"],
      {},
      /ingest-bind/,
    ],
    [
      "ddsplit-splitter",
      ["--admin-port=70000"],
      { DDSPLIT_STORE_TEMPLATE: "{id}=tcp://s-{id}:1,tcp://s-{id}:2", DDSPLIT_STORE_COUNT: "6" },
      /admin-port/,
    ],
    [
      "ddsplit-splitter",
      [],
      { DDSPLIT_STORE_TEMPLATE: "{id}=tcp://s-{id}:1,tcp://s-{id}:2", DDSPLIT_STORE_COUNT: "5" },
      /5 stores cannot hold k \+ m = 6/,
    ],
    [
      "ddsplit-assembler",
      ["--client-bind=tcp//x:1"],
      { DDSPLIT_STORE_TEMPLATE: "{id}=tcp://s-{id}:1,tcp://s-{id}:2", DDSPLIT_STORE_COUNT: "6" },
      /client-bind/,
    ],
    [
      "ddsplit-assembler",
      ["--k=4", "--m=2", "--write-quorum=9"],
      { DDSPLIT_STORE_TEMPLATE: "{id}=tcp://s-{id}:1,tcp://s-{id}:2", DDSPLIT_STORE_COUNT: "6" },
      /quorum/,
    ],
  ];
  // A host name without an ordinal: --store-id=auto must refuse it.
  const runner = await hostnameRunner();
  for (const [binary, args, env, message] of cases) {
    const file = path.join(BIN, binary);
    let command = [file, [...args, "--check-config"]];
    if (runner && args.includes("--store-id=auto"))
      command = runner("no-ordinal", file, command[1]);
    else if (args.includes("--store-id=auto")) continue;
    const r = await run(command[0], command[1], { env: processEnv(env) });
    assert.notEqual(
      r.code,
      0,
      `${binary} ${args.join(" ")} --check-config accepted an invalid configuration:\n${r.stdout}`,
    );
    assert.match(r.stderr, message, `${binary} ${args.join(" ")}: unclear message`);
    assert.equal(r.stdout, "", "nothing on stdout when the configuration is invalid");
  }
});

// ---- the prod rendering, run for real on loopback

const LOOPBACK = "127.0.0.1";

test("overlays/prod runs on loopback: probes answer, a record round-trips, SIGTERM drains in the grace period", async (t) => {
  const objs = render("overlays/prod");
  const pods = podTemplates(objs);
  const podOf = (service) =>
    pods.find((p) => p.spec.containers.some((c) => serviceOf(c) === service));
  const containerOf = (service) =>
    podOf(service).spec.containers.find((c) => serviceOf(c) === service);
  const scratch = tempDir("ddsplit-deploy-live-");
  const runner = await hostnameRunner();
  if (!runner)
    t.diagnostic(
      "unshare is not allowed here: stores get --store-id from the test, not from their host name",
    );
  const procs = [];
  t.after(() => procs.forEach((p) => p.child.kill("SIGKILL")));

  const launch = (service, podName, overrides, envOverrides = {}, dropEnv = []) => {
    const pod = podOf(service);
    const container = containerOf(service);
    const env = containerEnv(objs, podName, container);
    for (const key of dropEnv) delete env[key];
    Object.assign(env, envOverrides);
    const args = overrideArgs(container.args ?? [], {
      "--admin-host": LOOPBACK,
      "--admin-port": 0,
      "--announce-fd": 3,
      ...overrides,
    });
    let command = [binaryOf(container), args];
    if (pod.kind === "StatefulSet")
      command = runner
        ? runner(podName, command[0], args)
        : [command[0], overrideArgs(args, { "--store-id": ordinalOf(podName) })];
    const proc = start(command[0], command[1], { env: processEnv(env), announce: true });
    Object.assign(proc, { service, podName, pod, container });
    procs.push(proc);
    return proc;
  };

  // Stores: every StatefulSet pod, named as in the cluster.
  const sts = podOf("fragstore").workload;
  const stores = [];
  for (let i = 0; i < sts.spec.replicas; i++) {
    stores.push(
      launch("fragstore", `${sts.metadata.name}-${i}`, {
        "--data-dir": path.join(scratch, `store-${i}`),
        "--ingest-bind": `tcp://${LOOPBACK}:0`,
        "--read-bind": `tcp://${LOOPBACK}:0`,
      }),
    );
  }
  const storeInfo = await withDeadline(
    Promise.all(stores.map((s) => s.announcement)),
    START_MS,
    "stores announcing",
  );
  storeInfo.forEach((info, i) =>
    assert.equal(info.store_id, i, `${stores[i].podName} took store id ${info.store_id}`),
  );
  const storeList = storeInfo.map((s) => `${s.store_id}=${s.ingest},${s.read}`).join(";");
  const storeEnv = { DDSPLIT_STORES: storeList };
  const noTemplate = ["DDSPLIT_STORE_TEMPLATE", "DDSPLIT_STORE_COUNT"];

  const splitter = launch(
    "splitter",
    podOf("splitter").podName,
    { "--client-bind": `tcp://${LOOPBACK}:0`, "--ack-bind": `tcp://${LOOPBACK}:0` },
    { ...storeEnv, DDSPLIT_ADVERTISE_HOST: LOOPBACK },
    noTemplate,
  );
  const assembler = launch(
    "assembler",
    podOf("assembler").podName,
    { "--client-bind": `tcp://${LOOPBACK}:0` },
    storeEnv,
    noTemplate,
  );
  const [splitterInfo, assemblerInfo] = await withDeadline(
    Promise.all([splitter.announcement, assembler.announcement]),
    START_MS,
    "splitter and assembler announcing",
  );

  let gateway = null;
  if (podOf("gateway") && !missing(containerOf("gateway"))) {
    gateway = launch(
      "gateway",
      podOf("gateway").podName,
      { "--host": LOOPBACK, "--port": 0 },
      { DDSPLIT_SPLITTERS: splitterInfo.endpoint, DDSPLIT_ASSEMBLERS: assemblerInfo.endpoint },
    );
    await withDeadline(gateway.announcement, START_MS, "gateway announcing");
  } else if (podOf("gateway")) {
    t.diagnostic(`gateway: ${missing(containerOf("gateway"))}`);
  }

  // Every probe path of the manifests answers on the admin port; an unknown path does not.
  for (const proc of procs) {
    const port = proc.announced.admin_port;
    const what = `${proc.podName} admin port ${port}`;
    for (const kind of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const get = proc.container[kind].httpGet;
      const first = await waitFor(() => httpGet(port, get.path), START_MS, `${what} answering`);
      assert.notEqual(first.status, 404, `${what}: ${kind} path ${get.path} is not served`);
      await waitFor(
        async () => (await httpGet(port, get.path)).status === 200,
        START_MS,
        `${what}: ${kind} ${get.path} answering 200`,
      );
    }
    const metrics = await httpGet(port, "/metrics");
    assert.equal(metrics.status, 200, `${what}: /metrics`);
    assert.match(
      metrics.body,
      /^# (HELP|TYPE) ddsplit_/m,
      `${what}: /metrics is not Prometheus text with ddsplit_ metrics`,
    );
    assert.equal(
      (await httpGet(port, "/no-such-path")).status,
      404,
      `${what}: unknown paths must answer 404, or a wrong probe path would pass`,
    );
  }

  // The configuration works end to end: a record written through the splitter reads back.
  const clusterFile = path.join(scratch, "cluster.json");
  fs.writeFileSync(
    clusterFile,
    JSON.stringify({ splitters: [splitterInfo], assemblers: [assemblerInfo] }),
  );
  const payload = path.join(scratch, "payload.bin");
  const bytes = Buffer.alloc(300 * 1024);
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(payload, bytes);
  const cli = path.join(BIN, "ddsplit");
  const put = await run(cli, ["--cluster", clusterFile, "put", "deploy/record", payload], {
    env: processEnv({}),
  });
  assert.equal(put.code, 0, `ddsplit put failed:\n${put.stderr}`);
  const copy = path.join(scratch, "copy.bin");
  const get = await run(cli, ["--cluster", clusterFile, "get", "deploy/record", copy], {
    env: processEnv({}),
  });
  assert.equal(get.code, 0, `ddsplit get failed:\n${get.stderr}`);
  assert.ok(fs.readFileSync(copy).equals(bytes), "the record read back differs");
  if (gateway) {
    // And through the gateway's HTTP API, the way clients of the Service "gateway" use it.
    const url = `http://${LOOPBACK}:${gateway.announced.port}/v1/records/deploy-http`;
    const putHttp = await fetch(url, {
      method: "PUT",
      body: bytes,
      headers: { "Content-Type": "application/octet-stream" },
    });
    assert.ok(
      [200, 201].includes(putHttp.status),
      `PUT through the gateway: ${putHttp.status} ${await putHttp.text()}`,
    );
    const getHttp = await fetch(url);
    assert.equal(getHttp.status, 200, "GET through the gateway");
    assert.ok(
      Buffer.from(await getHttp.arrayBuffer()).equals(bytes),
      "the record read back through the gateway differs",
    );
  }
  t.diagnostic(
    `${procs.length} processes answered every probe; a ${bytes.length}-byte record round-tripped${gateway ? " (native and HTTP)" : ""}`,
  );

  // SIGTERM: clients first (gateway), then coordinators, then stores, as a rollout would. Each
  // exits 0 within what the pod's grace period leaves after its preStop sleep.
  const order = [gateway, splitter, assembler, ...stores].filter(Boolean);
  let slowest = 0;
  for (const proc of order) {
    const grace = proc.pod.spec.terminationGracePeriodSeconds ?? 30;
    const preStop = Number(proc.container.lifecycle?.preStop?.exec?.command?.[1] ?? 0);
    proc.child.kill("SIGTERM");
    const began = Date.now();
    const exit = await withDeadline(
      proc.exit,
      (grace - preStop) * 1000,
      `${proc.podName} exiting after SIGTERM`,
    );
    assert.deepEqual(
      { code: exit.code, signal: exit.signal },
      { code: 0, signal: null },
      `${proc.podName} did not exit cleanly:\n${proc.output}`,
    );
    slowest = Math.max(slowest, Date.now() - began);
  }
  t.diagnostic(`every process exited 0 on SIGTERM; the slowest took ${slowest} ms`);
});
