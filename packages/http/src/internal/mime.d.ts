// mime@3 ships no types (the same package @effect/platform-node uses for file responses).
declare module "mime" {
  const Mime: { getType(path: string): string | null }
  export default Mime
}
