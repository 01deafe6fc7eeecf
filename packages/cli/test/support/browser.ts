/**
 * A real headless Chromium for browser tests, through playwright-core. The layer installs
 * Debian's chromium first when it is missing (scripts/install-debian.sh is idempotent), so
 * `npm test` alone works on a fresh machine.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { Context, Effect, Layer } from "effect"
import type { Scope } from "effect"
import { chromium } from "playwright-core"
import type { Browser as PlaywrightBrowser, Page } from "playwright-core"

const CHROMIUM = "/usr/bin/chromium"
const INSTALL = fileURLToPath(new URL("../../../../scripts/install-debian.sh", import.meta.url))

const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic"
]

/** A launched browser, closed with the layer. */
export class Browser extends Context.Service<Browser, PlaywrightBrowser>()("@trex/cli/test/Browser") {
  static readonly layer = Layer.effect(
    Browser,
    Effect.acquireRelease(
      Effect.promise(() => {
        if (!existsSync(CHROMIUM)) execFileSync("sh", [INSTALL, CHROMIUM, "chromium"], { stdio: "inherit" })
        return chromium.launch({ executablePath: CHROMIUM, args: ARGS })
      }),
      (browser) => Effect.promise(() => browser.close())
    )
  )
}

/** A report opened from a `file://` URL, with what went wrong while loading it. */
export interface OpenedPage {
  readonly page: Page
  readonly file: string
  readonly dir: string
  /** Console errors, uncaught exceptions and failed requests. */
  readonly problems: Array<string>
  /** Every request for a non-`file:` URL (all are aborted). */
  readonly external: Array<string>
  /** Milliseconds from navigation to the page script's ready mark. */
  readonly loadMs: number
}

/**
 * Write `html` to a fresh temporary directory, open it in a new context (1440×1000) and wait
 * for the page script to mark the body ready. Closed and removed with the scope.
 */
export const open = (html: string): Effect.Effect<OpenedPage, never, Browser | Scope.Scope> =>
  Effect.gen(function*() {
    const browser = yield* Browser
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "trex-report-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
    )
    const file = join(dir, "report.html")
    writeFileSync(file, html)
    const context = yield* Effect.acquireRelease(
      Effect.promise(() => browser.newContext({ viewport: { width: 1440, height: 1000 }, deviceScaleFactor: 1 })),
      (c) => Effect.promise(() => c.close())
    )
    const problems: Array<string> = []
    const external: Array<string> = []
    const page = yield* Effect.promise(async () => {
      await context.route("**/*", (route) => {
        const url = route.request().url()
        if (url.startsWith("file:")) return route.continue()
        external.push(url)
        return route.abort()
      })
      const p = await context.newPage()
      p.on("console", (m) => {
        if (m.type() === "error") problems.push(`console: ${m.text()}`)
      })
      p.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`))
      p.on("requestfailed", (r) => problems.push(`requestfailed: ${r.url()}`))
      return p
    })
    const start = performance.now()
    yield* Effect.promise(async () => {
      await page.goto(pathToFileURL(file).href)
      await page.waitForSelector("body[data-ready='1']", { timeout: 60_000 })
    })
    return { page, file, dir, problems, external, loadMs: performance.now() - start }
  })

/** Run a playwright call as an effect (a failure is a test failure). */
export const pw = <A>(f: () => Promise<A>): Effect.Effect<A> => Effect.promise(f)
