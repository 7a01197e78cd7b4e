// An independent Sparkplug B reader and commander: mqtt.js with Eclipse Tahu's sparkplug-payload.
//   node sparkplug.mjs record URL OUT_FILE STOP_FILE   every message under spBv1.0/#, decoded, one JSON line each
//                                                       in OUT_FILE, until STOP_FILE exists (a persistent session:
//                                                       a broker restarted with its store still delivers to it)
//   node sparkplug.mjs send URL TOPIC METRICS_JSON      publish a command ([{name, type, value}]) and exit
import fs from "node:fs";
import mqtt from "mqtt";
import sparkplugPayload from "sparkplug-payload";

const sparkplug = sparkplugPayload.get("spBv1.0");
const [mode, url, ...rest] = process.argv.slice(2);
// a secured broker: MQTT_CA (a CA file), MQTT_USER and MQTT_PASSWORD from the environment
const secured = process.env.MQTT_USER ? { username: process.env.MQTT_USER, password: process.env.MQTT_PASSWORD,
  ca: fs.readFileSync(process.env.MQTT_CA) } : {};
const plain = (v) => (v !== null && typeof v === "object" && typeof v.toNumber === "function" ? v.toNumber() : v);

if (mode === "record") {
  const [outFile, stopFile] = rest;
  const client = mqtt.connect(url, { clientId: `sparkplug-recorder-${process.pid}`, clean: false, reconnectPeriod: 200,
    ...secured });
  client.on("connect", () => {
    client.subscribe("spBv1.0/#", { qos: 1 });
    fs.appendFileSync(outFile, JSON.stringify({ recorder: "connected", at: Date.now() }) + "\n");
  });
  client.on("message", (topic, buffer) => {
    let line;
    try {
      const p = sparkplug.decodePayload(new Uint8Array(buffer));
      const metrics = {};
      const types = {};
      for (const m of p.metrics || []) { metrics[m.name] = m.isNull ? null : plain(m.value); types[m.name] = m.type; }
      line = { topic, seq: p.seq === undefined || p.seq === null ? null : plain(p.seq), timestamp: plain(p.timestamp),
        metrics, types };
    } catch (e) {
      line = { topic, error: String(e.message || e) };
    }
    fs.appendFileSync(outFile, JSON.stringify(line) + "\n");
  });
  const timer = setInterval(() => {
    if (fs.existsSync(stopFile)) { clearInterval(timer); client.end(false, {}, () => process.exit(0)); }
  }, 100);
} else if (mode === "send") {
  const [topic, metricsJson] = rest;
  const payload = sparkplug.encodePayload({ timestamp: Date.now(), metrics: JSON.parse(metricsJson) });
  const client = mqtt.connect(url, { clientId: `sparkplug-commander-${process.pid}`, ...secured });
  client.on("connect", () => client.publish(topic, Buffer.from(payload), { qos: 0 }, () => client.end(false, {}, () => process.exit(0))));
  client.on("error", (e) => { console.error(String(e)); process.exit(1); });
  setTimeout(() => { console.error("timeout"); process.exit(1); }, 15000);
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
