// node-opcua-client (an independent OPC UA implementation) against cellctl's OPC UA server.
// node opcua.mjs MODE URL [JSON options]; prints one JSON line; exit status 0 unless the client itself
// failed (what the server answered is in the JSON for the test to judge).
//   browse            every PackML object under Objects: its nested CurrentStates, Status and Admin tags
//   holdcycle         subscribe to CELL's three CurrentStates, call Hold, wait for Held, call Unhold,
//                     wait for Execute; then a command the state forbids
//   call              call METHOD (a browse path from the cell) with ARGS; the status code
//   fuzz              N calls and writes with wrong types, counts and unknown nodes; then one read
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  OPCUAClient, AttributeIds, MessageSecurityMode, SecurityPolicy, UserTokenType,
  TimestampsToReturn, ClientSubscription, ClientMonitoredItem, makeBrowsePath, DataType, Variant, NodeClass,
} from "node-opcua-client";
import { OPCUACertificateManager } from "node-opcua-certificate-manager";

const [mode, url, rawOptions] = process.argv.slice(2);
const opt = JSON.parse(rawOptions || "{}");
const out = { mode };
const finish = (code) => { console.log(JSON.stringify(out)); process.exit(code); };
setTimeout(() => { out.error = "timeout"; finish(1); }, (opt.timeout_s || 60) * 1000);

const pkiRoot = opt.pki || fs.mkdtempSync(path.join(os.tmpdir(), "opcua-pki-"));
const certificateManager = new OPCUACertificateManager({ rootFolder: pkiRoot, automaticallyAcceptUnknownCertificate: true });
const client = OPCUAClient.create({
  applicationName: "cellctl-test-client", applicationUri: opt.application_uri || "urn:cellctl-test:client",
  endpointMustExist: false, connectionStrategy: { maxRetry: 0, initialDelay: 100, maxDelay: 200 },
  securityMode: opt.secure ? MessageSecurityMode.SignAndEncrypt : MessageSecurityMode.None,
  securityPolicy: opt.secure ? SecurityPolicy.Basic256Sha256 : SecurityPolicy.None,
  clientCertificateManager: certificateManager,
  ...(opt.cert ? { certificateFile: opt.cert, privateKeyFile: opt.key } : {}),
});

const identity = opt.user ? { type: UserTokenType.UserName, userName: opt.user, password: opt.password }
  : { type: UserTokenType.Anonymous };
const text = (dv) => dv.value.value?.text ?? null;
const plain = (v) => JSON.parse(JSON.stringify(v, (k, x) => (typeof x === "bigint" ? Number(x) : x)));

async function namespaces(session) {
  const dv = await session.read({ nodeId: "ns=0;i=2255", attributeId: AttributeIds.Value });
  const uris = dv.value.value;
  return { packml: uris.indexOf("http://opcfoundation.org/UA/PackML/"), line: uris.indexOf("urn:cellctl:line") };
}

async function resolve(session, start, relative) {
  const r = await session.translateBrowsePath(makeBrowsePath(start, relative));
  if (!r.targets || r.targets.length === 0) throw new Error(`no node at ${relative}: ${r.statusCode.name}`);
  return r.targets[0].targetId;
}

function paths(p) {
  const sm = `/${p}:BaseStateMachine`;
  return {
    base: `${sm}.CurrentState`, machine: `${sm}/${p}:MachineState.CurrentState`,
    execute: `${sm}/${p}:MachineState/${p}:ExecuteState.CurrentState`,
    executeSm: `${sm}/${p}:MachineState/${p}:ExecuteState`, machineSm: `${sm}/${p}:MachineState`, baseSm: sm,
  };
}

async function cellObjects(session, ns) {
  const browsed = await session.browse({ nodeId: "ns=0;i=85", resultMask: 63 });
  const cells = [];
  for (const ref of browsed.references) {
    if (ref.nodeClass !== NodeClass.Object) continue;
    const type = ref.typeDefinition.toString();
    if (type === `ns=${ns.packml};i=6`) cells.push({ name: ref.browseName.name, nodeId: ref.nodeId.toString(), type });
  }
  return cells;
}

async function readCell(session, ns, cellId) {
  const p = paths(ns.packml);
  const at = async (rel) => resolve(session, cellId, rel);
  const read = async (rel) => (await session.read({ nodeId: await at(rel), attributeId: AttributeIds.Value }));
  const states = {};
  for (const key of ["base", "machine", "execute"]) states[key] = text(await read(p[key]));
  const tag = async (rel) => plain((await read(rel)).value.value);
  return {
    states,
    status: {
      UnitModeCurrent: await tag(`/${ns.packml}:Status/${ns.packml}:UnitModeCurrent`),
      MachSpeed: await tag(`/${ns.packml}:Status/${ns.packml}:MachSpeed`),
      CurMachSpeed: await tag(`/${ns.packml}:Status/${ns.packml}:CurMachSpeed`),
      EquipmentStarved: await tag(`/${ns.packml}:Status/${ns.packml}:EquipmentStarved`),
      EquipmentBlocked: await tag(`/${ns.packml}:Status/${ns.packml}:EquipmentBlocked`),
    },
    admin: {
      ProdProcessedCount: await tag(`/${ns.packml}:Admin/${ns.packml}:ProdProcessedCount`),
      ProdDefectiveCount: await tag(`/${ns.packml}:Admin/${ns.packml}:ProdDefectiveCount`),
      StopReason: await tag(`/${ns.packml}:Admin/${ns.packml}:StopReason`),
      AlarmHistory: await tag(`/${ns.packml}:Admin/${ns.packml}:AlarmHistory`),
    },
  };
}

async function call(session, objectId, methodId, inputArguments = []) {
  const r = await session.call({ objectId, methodId, inputArguments });
  return { status: r.statusCode.name, diagnostics: (r.inputArgumentDiagnosticInfos || []).map((d) => d?.additionalInfo) };
}

async function cellId(session, ns, name) {
  return await resolve(session, "ns=0;i=85", `/${ns.line}:${name}`);
}

async function method(session, ns, cell, rel) {
  const p = paths(ns.packml);
  const [sm, name] = rel.split(".");
  const smId = await resolve(session, cell, p[sm]);
  return { objectId: smId, methodId: await resolve(session, smId, `/${ns.packml}:${name}`) };
}

async function holdcycle(session, ns) {
  const cell = await cellId(session, ns, opt.cell);
  const p = paths(ns.packml);
  const sub = ClientSubscription.create(session, {
    requestedPublishingInterval: 50, requestedLifetimeCount: 1000, requestedMaxKeepAliveCount: 20,
    maxNotificationsPerPublish: 1000, publishingEnabled: true, priority: 1,
  });
  const seen = { base: [], machine: [], execute: [] };
  for (const key of Object.keys(seen)) {
    const item = ClientMonitoredItem.create(sub, { nodeId: await resolve(session, cell, p[key]), attributeId: AttributeIds.Value },
      { samplingInterval: 0, discardOldest: false, queueSize: 100 }, TimestampsToReturn.Both);
    item.on("changed", (dv) => { seen[key].push(text(dv)); });
  }
  const until = async (state, ms) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (seen.execute.at(-1) === state) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };
  out.ready = await until("Execute", 20000);
  const hold = await method(session, ns, cell, "executeSm.Hold");
  out.hold = await call(session, hold.objectId, hold.methodId);
  out.held = await until("Held", 20000);
  await new Promise((r) => setTimeout(r, (opt.held_s || 0) * 1000));  // the test reads `cellctl status` meanwhile
  const unhold = await method(session, ns, cell, "executeSm.Unhold");
  out.unhold = await call(session, unhold.objectId, unhold.methodId);
  out.back = await until("Execute", 20000);
  await new Promise((r) => setTimeout(r, 300));
  out.forbidden = await call(session, unhold.objectId, unhold.methodId);  // Unhold in Execute
  const clear = await method(session, ns, cell, "baseSm.Clear");
  out.forbidden_clear = await call(session, clear.objectId, clear.methodId);  // Clear when not Aborted
  out.seen = seen;
  await sub.terminate();
}

async function fuzz(session, ns) {
  const cell = await cellId(session, ns, opt.cell);
  const targets = [];
  for (const rel of ["executeSm.Start", "executeSm.Hold", "machineSm.Stop", "baseSm.Abort"]) {
    targets.push(await method(session, ns, cell, rel));
  }
  for (const name of ["SetUnitMode", "SetMachSpeed", "SetParameter", "SetProduct"]) {
    targets.push({ objectId: cell, methodId: await resolve(session, cell, `/${ns.packml}:${name}`) });
  }
  const variables = [];
  for (const rel of [paths(ns.packml).execute, `/${ns.packml}:Admin/${ns.packml}:ProdProcessedCount`,
    `/${ns.packml}:Status/${ns.packml}:MachSpeed`, `/${ns.packml}:Admin/${ns.packml}:StopReason`]) {
    variables.push(await resolve(session, cell, rel));
  }
  let seed = opt.seed || 1;
  const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return Math.floor(seed / 65536) % n; };
  const junk = [
    () => new Variant({ dataType: DataType.String, value: "x".repeat(rand(5000)) }),
    () => new Variant({ dataType: DataType.Int32, value: rand(1 << 30) - (1 << 29) }),
    () => new Variant({ dataType: DataType.Double, value: Number.NaN }),
    () => new Variant({ dataType: DataType.Boolean, value: true }),
    () => new Variant({ dataType: DataType.ByteString, value: Buffer.alloc(rand(20000)) }),
    () => new Variant({ dataType: DataType.Float, value: 1e38 }),
    () => new Variant({ dataType: DataType.Int32, value: 1 }),
  ];
  const statuses = {};
  const count = (name) => { statuses[name] = (statuses[name] || 0) + 1; };
  for (let i = 0; i < (opt.n || 200); i++) {
    const kind = rand(4);
    try {
      if (kind === 0) {  // a method with random arguments
        const t = targets[rand(targets.length)];
        const args = Array.from({ length: rand(4) }, () => junk[rand(junk.length)]());
        if (t.methodId.toString().includes("Hold") || t.methodId.toString().includes("Stop")
          || t.methodId.toString().includes("Abort")) { if (args.length === 0) args.push(junk[0]()); }
        count((await session.call({ objectId: t.objectId, methodId: t.methodId, inputArguments: args })).statusCode.name);
      } else if (kind === 1) {  // a write to a read-only tag
        const r = await session.write({ nodeId: variables[rand(variables.length)], attributeId: AttributeIds.Value,
          value: { value: junk[rand(junk.length)]() } });
        count(r.name);
      } else if (kind === 2) {  // an unknown node or method
        const r = await session.call({ objectId: `ns=${ns.line};s=nope${rand(99)}`, methodId: `ns=${ns.line};i=${rand(1 << 20)}`,
          inputArguments: [] });
        count(r.statusCode.name);
      } else {  // a method called on the wrong object
        const t = targets[rand(targets.length)];
        const r = await session.call({ objectId: "ns=0;i=85", methodId: t.methodId, inputArguments: [junk[rand(junk.length)]()] });
        count(r.statusCode.name);
      }
    } catch (e) {
      count(`error: ${String(e.message).slice(0, 60)}`);
    }
  }
  out.statuses = statuses;
  out.after = text(await session.read({ nodeId: variables[0], attributeId: AttributeIds.Value }));
}

try {
  await client.connect(url);
  let session;
  try {
    session = await client.createSession(identity);
  } catch (e) {
    out.session_error = String(e.message).split("\n")[0];
    await client.disconnect();
    finish(0);
  }
  const ns = await namespaces(session);
  out.namespaces = ns;
  if (mode === "browse") {
    out.cells = {};
    for (const c of await cellObjects(session, ns)) out.cells[c.name] = { nodeId: c.nodeId, ...(await readCell(session, ns, c.nodeId)) };
  } else if (mode === "holdcycle") {
    await holdcycle(session, ns);
  } else if (mode === "call") {
    const cell = await cellId(session, ns, opt.cell);
    const m = await method(session, ns, cell, opt.method);
    out.result = await call(session, m.objectId, m.methodId, (opt.args || []).map((a) => new Variant(a)));
  } else if (mode === "fuzz") {
    await fuzz(session, ns);
  }
  await session.close();
  await client.disconnect();
  finish(0);
} catch (e) {
  out.error = String(e.message || e).split("\n")[0];
  finish(1);
}
