/**
 * The oldest Node.js the `trex` CLI runs on, and the message for an older one. Checked before
 * anything else is loaded: on an older Node the first import of `node:sqlite` would fail with a
 * stack trace instead.
 *
 * @since 0.1.0
 */

/** Node.js 22.19: `node:sqlite` without a flag, and what `@effect/platform-node` needs. @since 0.1.0 @category constants */
export const minimum = [22, 19] as const

/**
 * `undefined` when `version` (as in `process.versions.node`) is new enough, else what to tell the user.
 * @since 0.1.0 @category utils
 */
export const unsupported = (version: string): string | undefined => {
  const [major = 0, minor = 0] = version.split(".").map(Number)
  if (major > minimum[0] || (major === minimum[0] && minor >= minimum[1])) return undefined
  return `trex needs Node.js ${minimum.join(".")} or later; this is Node.js ${version}: install a newer one (https://nodejs.org)`
}
