/**
 * Package boundaries: a package's source imports other packages only through their public
 * entry points, and core's package.json `exports` names each public module (no wildcard that
 * would make every internal file importable).
 */
import { describe, expect, it } from "@effect/vitest"
import * as fs from "node:fs"
import { dirname, join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const packagesDir = resolve(dirname(fileURLToPath(import.meta.url)), "../..")
const packages = fs.readdirSync(packagesDir).filter((p) => fs.existsSync(join(packagesDir, p, "package.json")))

const sourceFiles = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return sourceFiles(p)
    return /\.(ts|mts|js|mjs)$/.test(e.name) && !e.name.endsWith(".d.ts") ? [p] : []
  })

/** Module specifiers of static imports, re-exports and dynamic imports. */
const specifiers = (code: string): Array<string> => {
  const out: Array<string> = []
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)["']([^"']+)["']/g
  for (let m = re.exec(code); m !== null; m = re.exec(code)) out.push(m[1]!)
  return out
}

/** Violations in one package's src: deep imports of another @ringline package, or relative escapes. */
const violations = (pkg: string): Array<string> => {
  const src = join(packagesDir, pkg, "src")
  if (!fs.existsSync(src)) return []
  const found: Array<string> = []
  for (const file of sourceFiles(src)) {
    for (const spec of specifiers(fs.readFileSync(file, "utf8"))) {
      const where = `${relative(packagesDir, file)}: ${spec}`
      if (/^@ringline\/[^/]+\/internal(\/|$)/.test(spec)) found.push(where)
      if (spec.startsWith(".")) {
        const target = resolve(dirname(file), spec)
        if (!target.startsWith(join(packagesDir, pkg) + "/")) found.push(where)
      }
    }
  }
  return found
}

describe("package boundaries", () => {
  it("the scan finds the packages and their imports", () => {
    expect(packages).toEqual(expect.arrayContaining(["core", "native", "storage", "tls"]))
    expect(specifiers(`import { a } from "@ringline/core/internal/x"\nexport * from "../../core/src/y.js"\nawait import("./z.js")`))
      .toEqual(["@ringline/core/internal/x", "../../core/src/y.js", "./z.js"])
  })

  it("no package source imports another package's internals or reaches into it by relative path", () => {
    const all = packages.flatMap(violations)
    expect(all, `deep imports:\n${all.join("\n")}`).toEqual([])
  })

  it("core's exports list each public module and no wildcard", () => {
    const pkg = JSON.parse(fs.readFileSync(join(packagesDir, "core", "package.json"), "utf8")) as {
      exports: Record<string, unknown>
    }
    const keys = Object.keys(pkg.exports)
    expect(keys.filter((k) => k.includes("*")), "wildcard export entries").toEqual([])
    expect(keys.some((k) => k.includes("internal")), "an internal module is exported").toBe(false)
    // One entry per public module: every top-level src module except the barrel, nothing else.
    const modules = fs.readdirSync(join(packagesDir, "core", "src"))
      .filter((f) => f.endsWith(".ts") && f !== "index.ts")
      .map((f) => `./${f.slice(0, -3)}`)
    expect(keys.sort()).toEqual([".", ...modules].sort())
  })
})
