/** The drivers every conformance scenario runs on: the kernel ring and the in-memory RinglineTest. */
import type { DriverUnderTest } from "./driver.js"
import { ringDriver } from "./ringDriver.js"
import { testDriver } from "./testDriver.js"

export const drivers: ReadonlyArray<DriverUnderTest> = [ringDriver, testDriver]
