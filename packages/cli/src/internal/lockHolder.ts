/** A run's lock holder (`Journal.Holder`) as messages name it. */
import * as os from "node:os"
import type { Journal } from "@trex/core"
import * as Untrusted from "./untrusted.ts"

/** A host name as the machine names itself, shown: as it is when one plain word, else quoted (`""`, `"gpu node 2"`), controls dropped. */
export const hostName = (host: string): string => /^[\x21-\x7e]{1,80}$/.test(host) ? host : Untrusted.line(JSON.stringify(host), 80)

/** `process 12`, `process 12 on host h` (when not this machine), `another process (why its record names none)`: a lock's holder. */
export const processOf = (holder: Journal.Holder | undefined): string =>
  holder?.pid !== undefined
    ? `process ${holder.pid}${holder.host !== undefined && holder.host !== os.hostname() ? ` on host ${hostName(holder.host)}` : ""}`
    : `another process${holder?.unknown !== undefined ? ` (${Untrusted.line(holder.unknown, 300)})` : ""}`
