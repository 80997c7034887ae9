import { defineConfig } from "vitest/config"

export default defineConfig({
  test: { name: "http", include: ["test/**/*.test.ts"], fileParallelism: false, testTimeout: 60_000, hookTimeout: 30_000 }
})
