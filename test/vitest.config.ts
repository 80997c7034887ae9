import { defineConfig } from "vitest/config"

export default defineConfig({
  // Installs the packed tarballs with npm and pnpm in a temporary app: minutes on a busy machine.
  test: { name: "packaging", include: ["*.test.ts"], testTimeout: 480_000, hookTimeout: 480_000 }
})
