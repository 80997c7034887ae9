// heapdiff.mjs — what N more idle connections added to a V8 heap, per connection, from two heap
// snapshots taken after a full GC (bench/conncost.mjs heap). Objects are counted by kind and
// constructor ("object:FiberRuntime", "closure:…"); closures by where their function is defined
// (file:line:col), since most of an Effect fiber's memory is anonymous closures. A script is named
// by matching the start of its source against the .js files under `sourceDirs` (the snapshot keeps
// a script's source but not its URL).
import fs from "node:fs";
import path from "node:path";

const HEAD = 300;

/** Maps the first HEAD characters of each .js/.mjs file under `dirs` to a short path. */
const scriptsByHead = (dirs) => {
  const map = new Map();
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.m?js$/.test(e.name)) map.set(fs.readFileSync(p, "utf8").slice(0, HEAD), p.replace(/^.*\/(node_modules|packages)\//, ""));
    }
  };
  for (const d of dirs) if (fs.existsSync(d)) walk(d);
  return map;
};

/** Bytes and count per key ("kind:name", closures "closure:name@file:line:col") of one snapshot. */
const tally = (file, named) => {
  const j = JSON.parse(fs.readFileSync(file, "utf8"));
  const meta = j.snapshot.meta;
  const nf = meta.node_fields.length;
  const T = meta.node_fields.indexOf("type"), N = meta.node_fields.indexOf("name");
  const S = meta.node_fields.indexOf("self_size"), EC = meta.node_fields.indexOf("edge_count");
  const types = meta.node_types[0], etypes = meta.edge_types[0], ef = meta.edge_fields.length;
  const { nodes, edges, strings } = j;
  const firstEdge = new Uint32Array(nodes.length / nf);
  for (let n = 0, e = 0; n < firstEdge.length; n++) {
    firstEdge[n] = e;
    e += nodes[n * nf + EC] * ef;
  }
  // The node an edge named `name` points to, or -1.
  const edge = (ni, name) => {
    for (let e = firstEdge[ni / nf], end = e + nodes[ni + EC] * ef; e < end; e += ef) {
      const t = etypes[edges[e]];
      if (t !== "element" && t !== "hidden" && strings[edges[e + 1]] === name) return edges[e + 2];
    }
    return -1;
  };
  const locs = new Map();
  const lf = meta.location_fields.length;
  for (let k = 0; k < j.locations.length; k += lf) locs.set(j.locations[k], j.locations.slice(k + 1, k + 4));
  const scriptName = new Map();
  const where = (ni) => {
    const l = locs.get(ni);
    if (l === undefined) return "?";
    let name = scriptName.get(l[0]);
    if (name === undefined) {
      const sfi = edge(ni, "shared");
      const script = sfi < 0 ? -1 : Math.max(edge(sfi, "script"), edge(sfi, "script_or_debug_info"));
      const source = script < 0 ? -1 : edge(script, "source");
      name = (source < 0 ? undefined : named.get(strings[nodes[source + N]].slice(0, HEAD))) ?? `script${l[0]}`;
      scriptName.set(l[0], name);
    }
    return `${name}:${l[1] + 1}:${l[2] + 1}`;
  };
  const out = new Map();
  for (let i = 0; i < nodes.length; i += nf) {
    const type = types[nodes[i + T]];
    let name = /string/.test(type) ? "" : strings[nodes[i + N]].slice(0, 60);
    if (type === "closure") name += `@${where(i)}`;
    const key = `${type}:${name}`;
    const v = out.get(key) ?? { count: 0, bytes: 0 };
    v.count++;
    v.bytes += nodes[i + S];
    out.set(key, v);
  }
  return out;
};

/**
 * Rows { key, count, bytes } per connection (snapshot `after` minus `before`, divided by
 * `conns`), largest first, and the total bytes per connection.
 */
export const heapDiff = (before, after, conns, sourceDirs) => {
  const named = scriptsByHead(sourceDirs);
  const a = tally(before, named), b = tally(after, named);
  const rows = [];
  let total = 0;
  for (const [key, v] of b) {
    const w = a.get(key) ?? { count: 0, bytes: 0 };
    const row = { key, count: (v.count - w.count) / conns, bytes: (v.bytes - w.bytes) / conns };
    total += row.bytes;
    rows.push(row);
  }
  rows.sort((x, y) => y.bytes - x.bytes);
  return { total, rows };
};
