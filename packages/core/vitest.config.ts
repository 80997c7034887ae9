import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    name: "core",
    include: ["test/**/*.test.ts"],
    // Tests share one machine's loopback and fd table; the fd-count tests need to be alone.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 30_000
  }
})
