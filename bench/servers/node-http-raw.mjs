// node:http with a hand-written handler for the HTTP benchmark's routes (the floor to compare
// with): GET / (text), GET /json, POST /echo (body piped back), GET /stream?n=N.
// Usage: node bench/servers/node-http-raw.mjs --port P [--host H]
import http from "node:http";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { port: { type: "string", default: "8080" }, host: { type: "string", default: "127.0.0.1" } } });
const json = JSON.stringify({ hello: "world" });
const server = http.createServer((req, res) => {
  const url = req.url;
  if (req.method === "GET" && url === "/") {
    res.writeHead(200, { "content-type": "text/plain", "content-length": 13 });
    res.end("Hello, World!");
  } else if (req.method === "GET" && url === "/json") {
    res.writeHead(200, { "content-type": "application/json", "content-length": json.length });
    res.end(json);
  } else if (req.method === "POST" && url === "/echo") {
    res.writeHead(200, { "content-type": req.headers["content-type"] ?? "application/octet-stream" });
    req.pipe(res);
  } else if (req.method === "GET" && url.startsWith("/stream")) {
    const n = Number(new URL(url, "http://x").searchParams.get("n") ?? 10);
    res.writeHead(200, { "content-type": "text/plain" });
    for (let i = 1; i <= n; i++) res.write(`chunk ${i}\n`);
    res.end();
  } else {
    res.writeHead(404, { "content-length": 0 });
    res.end();
  }
});
server.listen(Number(values.port), values.host, () => console.log(`listening on ${values.host}:${server.address().port}`));
const stop = () => server.close(() => process.exit(0));
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
setInterval(() => {}, 1 << 30).unref();
