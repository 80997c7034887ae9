// pnpm hooks. Its checksum is recorded in pnpm-lock.yaml: after editing this file run
// `pnpm install --no-frozen-lockfile` and commit the lockfile, or frozen installs (CI) refuse to run.
module.exports = {
  hooks: {
    // The published manifests carry no scripts: they are for this workspace (tsc, node-gyp), and an
    // `install` script in @ringline/native would make npm and pnpm build (or ask to approve building)
    // an addon the tarball already ships prebuilt.
    beforePacking(pkg) {
      if (pkg.name.startsWith("@ringline/")) {
        delete pkg.scripts
        delete pkg.devDependencies
      }
      return pkg
    }
  }
}
