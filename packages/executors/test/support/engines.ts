/**
 * The engines the Docker backend's tests run on: Docker Engine always (its tests fail, naming the script to run,
 * when it is down), and Podman's Docker-compatible API when it is up: `TREX_TEST_PODMAN_HOST` set, or `podman` among
 * the services scripts/services/start-all.sh found up (`TREX_SERVICES` in its `.env`, which the global setup writes).
 */
import * as Fs from "node:fs"
import * as Path from "node:path"

export interface TestEngine {
  readonly name: "docker" | "podman"
  /** The engine's unix socket. */
  readonly socket: string
  /** A local image with busybox (no registry is reachable in CI). */
  readonly image: string
  /** The script that starts it, for the message of a test that finds it down. */
  readonly script: string
}

const ENV_FILE = Path.join(import.meta.dirname, "../../../../scripts/services/.env")

/** The KEY=value facts of scripts/services/.env, none when it is not there. */
const facts = (): Record<string, string> => {
  const text = Fs.existsSync(ENV_FILE) ? Fs.readFileSync(ENV_FILE, "utf8") : ""
  return Object.fromEntries(
    text.split("\n").flatMap((l) => {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(l.trim())
      return m === null ? [] : [[m[1]!, m[2]!.replace(/^"(.*)"$/, "$1")]]
    })
  )
}

const socketOf = (host: string) => host.replace(/^unix:\/\//, "")

export const testEngines = (): ReadonlyArray<TestEngine> => {
  const env = process.env
  const file = facts()
  const docker: TestEngine = {
    name: "docker",
    socket: socketOf(env["DOCKER_HOST"] ?? "unix:///var/run/docker.sock"),
    image: env["TREX_TEST_DOCKER_IMAGE"] ?? "local/busybox:latest",
    script: "start-docker.sh"
  }
  const podmanUp = (file["TREX_SERVICES"] ?? "").split(" ").includes("podman")
  const podmanHost = env["TREX_TEST_PODMAN_HOST"] ?? (podmanUp ? file["TREX_TEST_PODMAN_HOST"] ?? "unix:///run/podman/podman.sock" : undefined)
  if (podmanHost === undefined) return [docker]
  const podman: TestEngine = {
    name: "podman",
    socket: socketOf(podmanHost),
    image: env["TREX_TEST_PODMAN_IMAGE"] ?? file["TREX_TEST_PODMAN_IMAGE"] ?? "local/busybox:latest",
    script: "start-podman.sh"
  }
  return [docker, podman]
}
