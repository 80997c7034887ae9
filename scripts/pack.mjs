// `pnpm run pack`: every package's tarball into dist-pack/, as they would be published.
//
// TypeScript is brought up to date (outputs of deleted sources removed first);
// @ringline/native's prepack makes its prebuilt binary; pnpm rewrites `workspace:` ranges and
// .pnpmfile.cjs drops scripts and devDependencies from the manifests. Then each tarball's file
// list is checked: no tests, no build intermediates, and the native one ships its binary.
import { execFileSync } from "node:child_process"
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..")
const out = join(root, "dist-pack")
const say = (msg) => process.stderr.write(`[ringline] ${msg}\n`)
const run = (cmd, args) => execFileSync(cmd, args, { cwd: root, stdio: ["ignore", "ignore", "inherit"] })
// The pnpm running this script (`pnpm run pack`, or dev.sh's `npx pnpm@10` when none is installed), else PATH's.
const pnpmCli = /pnpm/.test(process.env.npm_execpath ?? "") ? process.env.npm_execpath : undefined
const pnpm = (args) => pnpmCli ? run(process.execPath, [pnpmCli, ...args]) : run("pnpm", args)

// dist/ may still hold outputs of sources deleted since (tsc never removes them): drop those, then build.
for (const pkg of readdirSync(join(root, "packages"))) {
  const dist = join(root, "packages", pkg, "dist")
  if (!existsSync(dist)) continue
  for (const file of readdirSync(dist, { recursive: true })) {
    const source = String(file).match(/^(.*)\.(js|d\.ts)(\.map)?$/)
    if (source && !existsSync(join(root, "packages", pkg, "src", `${source[1]}.ts`))) {
      say(`removing stale packages/${pkg}/dist/${file}`)
      rmSync(join(dist, String(file)))
    }
  }
}
say("building TypeScript")
pnpm(["exec", "tsc", "-b"])

rmSync(out, { recursive: true, force: true })
mkdirSync(out)
say("packing")
pnpm(["-r", "--filter", "./packages/*", "pack", "--pack-destination", out])

const forbidden = [
  [/(^|\/)test\//, "a test"],
  [/\.test\.[cm]?[jt]s$/, "a test"],
  [/(^|\/)(Makefile|config\.gypi|binding\.gyp)$/, "a build file"],
  [/\.(o|d|a|tsbuildinfo|mk)$/, "a build intermediate"],
  [/(^|\/)build\//, "the local build directory"],
  [/(^|\/)node_modules\//, "node_modules"]
]
let bad = 0
for (const tarball of readdirSync(out).filter((f) => f.endsWith(".tgz")).sort()) {
  const files = execFileSync("tar", ["tzf", join(out, tarball)], { encoding: "utf8" }).split("\n").filter(Boolean)
    .map((f) => f.replace(/^package\//, ""))
  for (const file of files) {
    const hit = forbidden.find(([re]) => re.test(file))
    if (hit) {
      say(`${tarball}: ${file} is ${hit[1]}`)
      bad++
    }
  }
  if (tarball.startsWith("ringline-native-") && !files.includes("prebuilds/linux-x64-glibc/ringline.node")) {
    say(`${tarball}: the prebuilt binary prebuilds/linux-x64-glibc/ringline.node is missing`)
    bad++
  }
  if (!files.includes("README.md")) {
    say(`${tarball}: no README.md`)
    bad++
  }
  say(`${join("dist-pack", tarball)} (${files.length} files)`)
}
if (bad > 0) {
  say(`${bad} problem(s) in the tarballs`)
  process.exit(1)
}
