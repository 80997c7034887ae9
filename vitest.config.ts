import { defineConfig } from "vitest/config"

// One project per folder with its own vitest.config.ts; `test` holds the packaging test.
export default defineConfig({
  test: {
    projects: [
      "packages/core",
      "packages/tls",
      "packages/storage",
      "packages/http",
      "test"
    ]
  }
})
