// TREX job-protocol reporter for Node (plain ESM, no dependencies).
// A trial script imports this file to read its inputs and report metrics, progress and its result.
// The protocol is described in docs/job-protocol.md.
import { appendFileSync, readFileSync, renameSync, writeFileSync, statSync } from "node:fs"
import { isAbsolute, join, normalize, sep } from "node:path"

/** Error raised for any misuse of the protocol (bad input, missing job dir). */
export class TrexReporterError extends Error {
  constructor(message) {
    super(message)
    this.name = "TrexReporterError"
  }
}

function fail(message) {
  throw new TrexReporterError(message)
}

function checkFinite(value, what) {
  if (typeof value !== "number" || !Number.isFinite(value)) fail(`${what} must be a finite number, got ${String(value)}`)
}

/** The absolute job directory from $TREX_JOB_DIR; throws if it is unset, relative or not a directory. */
export function jobDir() {
  const dir = process.env.TREX_JOB_DIR
  if (dir === undefined || dir === "") fail("TREX_JOB_DIR is not set")
  if (!isAbsolute(dir)) fail(`TREX_JOB_DIR must be an absolute path, got ${dir}`)
  let isDir = false
  try {
    isDir = statSync(dir).isDirectory()
  } catch {
    isDir = false
  }
  if (!isDir) fail(`TREX_JOB_DIR is not a directory: ${dir}`)
  return dir
}

function readJsonObject(file) {
  const path = join(jobDir(), file)
  let text
  try {
    text = readFileSync(path, "utf8")
  } catch (e) {
    fail(`cannot read ${path}: ${e instanceof Error ? e.message : String(e)}`)
  }
  let value
  try {
    value = JSON.parse(text)
  } catch (e) {
    fail(`${path} is not valid JSON: ${e instanceof Error ? e.message : String(e)}`)
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) fail(`${path} must hold a JSON object`)
  return value
}

/** The parsed `strategy.json` of this job. */
export function readStrategy() {
  return readJsonObject("strategy.json")
}

/** The parsed `job.json` of this job: `{ run, node, task? }`. */
export function readJob() {
  return readJsonObject("job.json")
}

/**
 * Report one metric point: prints `TREX_METRIC {json}` on stdout and appends the same object to
 * `$TREX_JOB_DIR/metrics.jsonl`. `step` is a non-negative integer, `value` a finite number.
 */
export function metric(point) {
  if (point === null || typeof point !== "object") fail("metric() takes an object {step, split, name, value}")
  const { step, split, name, value } = point
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    fail(`metric step must be a non-negative integer, got ${String(step)}`)
  }
  if (typeof split !== "string" || split === "") fail(`metric split must be a non-empty string, got ${String(split)}`)
  if (typeof name !== "string" || name === "") fail(`metric name must be a non-empty string, got ${String(name)}`)
  checkFinite(value, `metric ${name} value`)
  const line = JSON.stringify({ step, split, name, value })
  const dir = jobDir()
  process.stdout.write(`TREX_METRIC ${line}\n`)
  appendFileSync(join(dir, "metrics.jsonl"), `${line}\n`)
}

/** Report progress: prints `TREX_PROGRESS {"fraction":f,"message":m}`; `fraction` in [0, 1]. */
export function progress(fraction, message) {
  checkFinite(fraction, "progress fraction")
  if (fraction < 0 || fraction > 1) fail(`progress fraction must be in [0, 1], got ${fraction}`)
  if (message !== undefined && typeof message !== "string") fail("progress message must be a string")
  const obj = message === undefined ? { fraction } : { fraction, message }
  process.stdout.write(`TREX_PROGRESS ${JSON.stringify(obj)}\n`)
}

function checkArtifactPath(path) {
  if (typeof path !== "string" || path === "") fail("artifact path must be a non-empty string")
  if (isAbsolute(path)) fail(`artifact path must be relative to the job dir, got ${path}`)
  const norm = normalize(path)
  if (norm === ".." || norm.startsWith(`..${sep}`)) fail(`artifact path must stay inside the job dir, got ${path}`)
}

/**
 * Write `$TREX_JOB_DIR/result.json` atomically (temporary file, then rename) and return the object written.
 * `metrics` is a record of finite numbers; `primary` (the score the search maximises) defaults to `metrics.score`
 * when that exists.
 */
export function writeResult(result) {
  if (result === null || typeof result !== "object") fail("writeResult() takes an object {metrics, primary?, artifacts?, summary?}")
  const { metrics, primary, artifacts, summary } = result
  if (metrics === null || typeof metrics !== "object" || Array.isArray(metrics)) fail("result metrics must be an object")
  const cleanMetrics = {}
  for (const [k, v] of Object.entries(metrics)) {
    checkFinite(v, `result metric ${k}`)
    cleanMetrics[k] = v
  }
  const out = { metrics: cleanMetrics }
  if (primary !== undefined) {
    checkFinite(primary, "result primary")
    out.primary = primary
  } else if (cleanMetrics.score !== undefined) {
    out.primary = cleanMetrics.score
  }
  if (artifacts !== undefined) {
    if (!Array.isArray(artifacts)) fail("result artifacts must be an array")
    out.artifacts = artifacts.map((a, i) => {
      if (a === null || typeof a !== "object") fail(`result artifacts[${i}] must be an object {name, path}`)
      if (typeof a.name !== "string" || a.name === "") fail(`result artifacts[${i}].name must be a non-empty string`)
      checkArtifactPath(a.path)
      return { name: a.name, path: a.path }
    })
  }
  if (summary !== undefined) {
    if (typeof summary !== "string") fail("result summary must be a string")
    out.summary = summary
  }
  const dir = jobDir()
  const tmp = join(dir, `.result.json.${process.pid}.tmp`)
  writeFileSync(tmp, `${JSON.stringify(out, null, 2)}\n`)
  renameSync(tmp, join(dir, "result.json"))
  return out
}
