/**
 * Test PKI made with the openssl CLI in a temp dir, once per test file: a CA, a server certificate
 * for localhost/127.0.0.1, one for "other.test" (SNI), an expired one, one from an untrusted CA,
 * and a client certificate.
 */
import { execFileSync } from "node:child_process"
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface Pki {
  readonly dir: string
  readonly ca: string
  readonly caFile: string
  readonly cert: string
  readonly key: string
  readonly certFile: string
  readonly keyFile: string
  readonly other: { cert: string; key: string }
  readonly expired: { cert: string; key: string }
  readonly untrusted: { cert: string; key: string }
  readonly client: { cert: string; key: string; certFile: string; keyFile: string }
}

const openssl = (dir: string, args: Array<string>) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" })

const issue = (dir: string, name: string, cn: string, san: string, ca: string, days: number, usage: string) => {
  openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`])
  writeFileSync(join(dir, `${name}.ext`), `basicConstraints=CA:FALSE\nextendedKeyUsage=${usage}\n${san === "" ? "" : `subjectAltName=${san}\n`}`)
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", `${ca}.pem`, "-CAkey", `${ca}.key`, "-set_serial", String(Date.now() % 1e9 + name.length), "-out", `${name}.pem`, "-days", String(days), "-extfile", `${name}.ext`])
  return { cert: readFileSync(join(dir, `${name}.pem`), "utf8"), key: readFileSync(join(dir, `${name}.key`), "utf8") }
}

const makeCa = (dir: string, name: string) =>
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "30", "-subj", `/CN=ringline test ${name}`])

let cached: Pki | undefined

export const pki = (): Pki => {
  if (cached !== undefined) return cached
  const dir = mkdtempSync(join(tmpdir(), "ringline-tls-"))
  makeCa(dir, "ca")
  makeCa(dir, "rogue")
  const server = issue(dir, "server", "localhost", "DNS:localhost,IP:127.0.0.1", "ca", 30, "serverAuth")
  const client = issue(dir, "client", "ringline client", "", "ca", 30, "clientAuth")
  cached = {
    dir,
    ca: readFileSync(join(dir, "ca.pem"), "utf8"),
    caFile: join(dir, "ca.pem"),
    ...server,
    certFile: join(dir, "server.pem"),
    keyFile: join(dir, "server.key"),
    other: issue(dir, "other", "other.test", "DNS:other.test", "ca", 30, "serverAuth"),
    // notAfter one day before notBefore: expired from the start.
    expired: issue(dir, "expired", "localhost", "DNS:localhost,IP:127.0.0.1", "ca", -1, "serverAuth"),
    untrusted: issue(dir, "untrusted", "localhost", "DNS:localhost,IP:127.0.0.1", "rogue", 30, "serverAuth"),
    client: { ...client, certFile: join(dir, "client.pem"), keyFile: join(dir, "client.key") }
  }
  return cached
}
