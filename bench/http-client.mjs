// http-client.mjs — the response side of the benchmarks' own HTTP/1.1 clients (http-cost.mjs,
// latency-probe.mjs): counts complete responses in a keep-alive byte stream, checking each.

/**
 * Counts complete responses in a byte stream: status 200 checked, the body's length from
 * Content-Length or chunked framing (the echo's streamed body) checked against `expect`.
 */
export class ResponseCounter {
  buf = Buffer.alloc(0);
  constructor(expect) {
    this.expect = expect;
  }
  /** Appends `data`; returns how many responses completed. */
  push(data) {
    this.buf = this.buf.length === 0 ? data : Buffer.concat([this.buf, data]);
    let n = 0;
    for (;;) {
      const end = this.buf.indexOf("\r\n\r\n");
      if (end < 0) return n;
      const head = this.buf.latin1Slice(0, end);
      if (!head.startsWith("HTTP/1.1 200 ")) throw new Error(`unexpected response: ${head.slice(0, 200)}`);
      const cl = /\r\ncontent-length: *(\d+)/i.exec(head);
      let off = end + 4;
      let len = 0;
      if (cl !== null) {
        len = Number(cl[1]);
        if (this.buf.length < off + len) return n;
        off += len;
      } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
        for (;;) {
          const eol = this.buf.indexOf("\r\n", off);
          if (eol < 0) return n;
          const size = parseInt(this.buf.latin1Slice(off, eol), 16);
          if (this.buf.length < eol + 2 + size + 2) return n;
          off = eol + 2 + size + 2;
          len += size;
          if (size === 0) break;
        }
      } else throw new Error(`response without a length: ${head}`);
      if (len !== this.expect) throw new Error(`body of ${len} bytes, expected ${this.expect}`);
      this.buf = this.buf.subarray(off);
      n++;
    }
  }
}
