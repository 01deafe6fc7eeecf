/**
 * The engines' client libraries, loaded when a backend that needs one is made: importing
 * `@trex/executors` (and starting the `trex` CLI) does not load dockerode, ssh2 or the Kubernetes
 * client, which take seconds to load (the Kubernetes client about 2 s on a 2-core machine) and
 * which a run on local processes or on the simulator never uses. Node caches each module after its
 * first load.
 */
import { Effect } from "effect"

/** dockerode's `Docker` class. */
export const dockerode = Effect.promise(() => import("dockerode").then((m) => m.default))

/** ssh2 (its `Client`). */
export const ssh2 = () => import("ssh2")

/** The Kubernetes client. */
export const kubernetes = Effect.promise(() => import("@kubernetes/client-node"))
