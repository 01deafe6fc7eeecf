/** A run's lock holder (`Journal.Holder`) as messages name it. */
import * as os from "node:os"
import { Journal } from "@trex/core"
import * as Untrusted from "./untrusted.ts"

/**
 * `process 12`, `process 12 on host h` (when not this machine), `process 12 on this machine (its host name c1)` (a
 * container's of a host name of its own), `another process (why its record names none)`: a lock's holder.
 */
export const processOf = (holder: Journal.Holder | undefined): string =>
  holder?.pid !== undefined
    ? `process ${holder.pid}${
      holder.host === undefined || holder.host === os.hostname() ? ""
      : holder.thisMachine === true ? ` on this machine (its host name ${Journal.hostName(holder.host)})`
      : ` on host ${Journal.hostName(holder.host)}`
    }`
    : `another process${holder?.unknown !== undefined ? ` (${Untrusted.line(holder.unknown, 300)})` : ""}`
