/**
 * The `Ringline` service tag, alone: public modules that the Layer itself builds on (RinglineClock)
 * and Ringline.ts both import it from here, so no public module imports another in a cycle.
 * Re-exported by Ringline.ts, where it is documented.
 */
import { Context } from "effect"
import type { RinglineService } from "../Ringline.js"

export class Ringline extends Context.Tag("@ringline/core/Ringline")<Ringline, RinglineService>() {}
