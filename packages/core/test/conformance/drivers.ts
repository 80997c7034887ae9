/** The drivers every conformance scenario runs on. */
import type { DriverUnderTest } from "./driver.js"
import { ringDriver } from "./ringDriver.js"

export const drivers: ReadonlyArray<DriverUnderTest> = [ringDriver]
