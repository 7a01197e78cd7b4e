// The operator's page: draws the snapshot the server pushes over the websocket (it never polls),
// sends the PackML buttons as JSON commands, and shows each reply. Everything from the line is
// put in as text, never as HTML.
"use strict";
let snapshot = null, user = null, socket = null, retry = 500;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else if (k === "text") node.textContent = v; else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}
const fmt = (x, unit = "") => (x === null || x === undefined) ? "–" : `${x}${unit}`;
const stateClass = (s) => "state-" + String(s || "unknown").toLowerCase();

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws`);
  socket.onopen = () => { retry = 500; badge("live", "up"); };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type !== "state") return;
    if (data.user) user = data.user;
    snapshot = data; render();
  };
  socket.onclose = (event) => {
    badge(event.code === 1008 ? "logged out" : "reconnecting…", "down");
    if (event.code === 1008) { location.href = "/login"; return; }
    setTimeout(connect, retry); retry = Math.min(retry * 2, 8000);
  };
}
function badge(text, cls) { const b = document.getElementById("link"); b.textContent = text; b.className = `badge ${cls}`; }

async function command(cell, name) {
  const reply = await fetch(`/api/cells/${encodeURIComponent(cell)}/command`, {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify({command: name})});
  const data = await reply.json().catch(() => ({message: `error ${reply.status}`}));
  const box = document.getElementById("reply");
  box.textContent = data.message; box.className = reply.ok ? "ok" : "refused";
  const own = document.querySelector(`[data-cell="${CSS.escape(cell)}"] .reply`);
  if (own) { own.textContent = data.message; own.className = `reply ${reply.ok ? "ok" : "refused"}`; }
}

// The line's cells and stations are built once (buttons stay put under a finger: a press is never
// lost to a redraw); each snapshot then updates their text and attributes in place.
let drawn = "";
function buildLine(s) {
  const key = JSON.stringify([s.line, user ? user.commands : []]);
  if (key === drawn) return;
  drawn = key;
  document.getElementById("line").replaceChildren(...s.line.map((item) => item.cell ? buildCell(item.cell, item.robot)
    : el("div", {class: `station ${item.role}`, "data-station": item.station}, item.station, el("small", {}, item.role))));
}
function buildCell(name, robot) {
  const field = (f) => el("dd", {"data-field": f});
  return el("article", {class: "cell", "data-cell": name},
    el("h3", {}, name, el("small", {}, ` robot ${robot}`)),
    el("div", {class: "state", "data-field": "state"}), el("div", {class: "reason", "data-field": "reason"}),
    el("dl", {}, el("dt", {}, "part"), field("part"), el("dt", {}, "skill"), field("skill"),
       el("dt", {}, "parts done"), field("parts_done"), el("dt", {}, "waiting for"), field("waiting_for")),
    el("ul", {class: "links", "data-field": "links"}),
    el("div", {class: "buttons"}, ...(user ? user.commands : []).map((command_) =>
      el("button", {"data-command": command_, text: command_, onclick: () => command(name, command_)}))),
    el("div", {class: "reply"}));
}
function updateCell(c) {
  const node = document.querySelector(`[data-cell="${CSS.escape(c.name)}"]`);
  const set = (f, text) => { const x = node.querySelector(`[data-field="${f}"]`); if (x.textContent !== text) x.textContent = text; };
  node.className = `cell ${stateClass(c.state)} ${c.reachable ? "" : "silent"}`;
  node.setAttribute("data-state", c.state || "");
  set("state", `${c.state || "?"}${c.state_number !== null && c.state_number !== undefined ? ` (${c.state_number})` : ""}`);
  set("reason", c.reachable ? (c.reason || "") : c.silent);
  set("part", c.part || "–");
  set("skill", c.skill ? `${c.skill}${c.phase ? " (" + c.phase + ")" : ""}` : "–");
  set("parts_done", `${fmt(c.parts_done)} / ${fmt(c.work_order)}`);
  set("waiting_for", c.waiting_for || "–");
  const links = c.links.map((l) => el("li", {class: l.up === false ? "down" : l.up ? "up" : "unknown", "data-link": l.role},
    `${l.role}${l.role === "robot" ? "" : " " + l.peer}: ${l.up === false ? "down" : l.up ? "up" : "?"}${l.state && !["up", "down"].includes(l.state) ? " (" + l.state + ")" : ""}`));
  const list = node.querySelector('[data-field="links"]');
  if (list.textContent !== links.map((l) => l.textContent).join("")) list.replaceChildren(...links);
}

function render() {
  const s = snapshot;
  document.getElementById("title").textContent = `cellctl: ${s.title}`;
  document.title = `cellctl: ${s.title}`;
  const who = document.getElementById("who");
  who.textContent = user ? `${user.name} (${user.role}${user.may_command ? "" : ": sees only"})` : "";
  document.getElementById("logout").hidden = !(user && user.login);
  buildLine(s);
  for (const c of Object.values(s.cells)) updateCell(c);
  const k = s.kpis, n = s.counters;
  document.getElementById("kpis").replaceChildren(
    el("p", {}, `parts out ${n.parts_out} · in work ${n.in_work} · faults ${n.faults} · commands ${n.commands} · ` +
                `throughput ${fmt(k.throughput_per_h, " /h")} · sim time ${fmt(k.sim_s, " s")}`),
    el("table", {}, el("tr", {}, ...["cell", "parts", "cycle time", "availability", "time lost per cause"].map((h) => el("th", {}, h))),
       ...Object.entries(k.cells).map(([name, c]) => el("tr", {}, el("td", {}, name), el("td", {}, c.parts),
         el("td", {}, fmt(c.cycle_s, " s")), el("td", {}, c.availability === null ? "–" : `${Math.round(c.availability * 100)} %`),
         el("td", {}, Object.entries(c.lost_s).map(([cause, t]) => `${cause} ${t} s`).join(", ") || "–")))));
  document.getElementById("alarms").replaceChildren(...(s.alarms.active.length ? s.alarms.active.map((a) =>
    el("div", {class: "alarm", "data-alarm": a.cell}, el("b", {}, `${a.cell}:`), ` ${a.text}`,
       a.since ? el("small", {}, ` since ${a.since}`) : "", el("div", {class: "todo"}, `What to do: ${a.todo}`)))
    : [el("p", {class: "none"}, "none")]));
  document.getElementById("history").replaceChildren(...s.alarms.history.map((a) =>
    el("div", {class: "past"}, `${a.cell}: ${a.text} — cleared ${a.cleared || "?"} (${a.cleared_by || ""})`)));
  renderParts();
  document.getElementById("events").replaceChildren(...s.events.map((e) =>
    el("div", {class: `event ${e.kind}`}, el("time", {}, e.at), ` ${e.cell}: ${e.text}`)));
}

function renderParts() {
  if (!snapshot) return;
  const q = document.getElementById("search").value.trim().toLowerCase();
  const rows = snapshot.parts.filter((p) => !q || p.part.toLowerCase().includes(q)).slice(0, 200);
  document.getElementById("parts").replaceChildren(el("table", {},
    el("tr", {}, ...["part", "where", "state", "sim s"].map((h) => el("th", {}, h))),
    ...rows.map((p) => el("tr", {"data-part": p.part}, el("td", {}, p.part),
      el("td", {}, [p.cell, p.station].filter(Boolean).join(" at ")), el("td", {}, p.state || ""),
      el("td", {}, p.sim_time === null || p.sim_time === undefined ? "" : Number(p.sim_time).toFixed(1))))));
}

document.getElementById("search").addEventListener("input", renderParts);
document.getElementById("logout").addEventListener("click", async () => {
  await fetch("/logout", {method: "POST"}); location.href = "/login"; });
setInterval(() => { if (socket && socket.readyState === 1) socket.send(JSON.stringify({type: "ping"})); }, 20000);
connect();
