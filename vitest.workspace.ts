export default ["packages/core", "packages/tls", "packages/storage", "packages/http"]
