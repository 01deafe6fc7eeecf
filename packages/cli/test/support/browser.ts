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

/**
 * A launched browser's one page, in one context (1440×1000), shared by the tests of a file, one at a time: a page of
 * its own for each test cost 0.6-2.3 s (a renderer started at load 11-13), more than most of those tests take
 * otherwise. `open` gives each test the page afresh (a new document, the viewport and the mouse put back, its own
 * lists of problems); a test that wants a second page at once fails clearly. Closed with the layer.
 */
export interface Tab {
  readonly page: Page
  /** Where the page's problems and external requests are written: the open report's, or nowhere. */
  sink: { readonly problems: Array<string>; readonly external: Array<string> } | undefined
}

export class Browser extends Context.Service<Browser, Tab>()("@trex/cli/test/Browser") {
  static readonly layer = Layer.effect(
    Browser,
    Effect.gen(function*() {
      const browser: PlaywrightBrowser = yield* Effect.acquireRelease(
        Effect.promise(() => {
          if (!existsSync(CHROMIUM)) execFileSync("sh", [INSTALL, CHROMIUM, "chromium"], { stdio: "inherit" })
          return chromium.launch({ executablePath: CHROMIUM, args: ARGS })
        }),
        (b) => Effect.promise(() => b.close())
      )
      const context = yield* Effect.promise(() => browser.newContext({ viewport: VIEWPORT, deviceScaleFactor: 1 }))
      return yield* Effect.promise(async () => {
        const tab: { page?: Page; sink: Tab["sink"] } = { sink: undefined }
        await context.route("**/*", (route) => {
          const url = route.request().url()
          if (url.startsWith("file:")) return route.continue()
          tab.sink?.external.push(url)
          return route.abort()
        })
        const page = await context.newPage()
        page.on("console", (m) => {
          if (m.type() === "error") tab.sink?.problems.push(`console: ${m.text()}`)
        })
        page.on("pageerror", (e) => tab.sink?.problems.push(`pageerror: ${e.message}`))
        page.on("requestfailed", (r) => tab.sink?.problems.push(`requestfailed: ${r.url()}`))
        tab.page = page
        return tab as Tab
      })
    })
  )
}

const VIEWPORT = { width: 1440, height: 1000 }

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
 * Write `html` to a fresh temporary directory, open it in the browser's page and wait for the page script to mark
 * the body ready. The page is left blank, and the directory removed, with the scope.
 */
export const open = (html: string): Effect.Effect<OpenedPage, never, Browser | Scope.Scope> =>
  Effect.gen(function*() {
    const tab = yield* Browser
    const { page } = tab
    const dir = yield* Effect.acquireRelease(
      Effect.sync(() => mkdtempSync(join(tmpdir(), "trex-report-"))),
      (d) => Effect.sync(() => rmSync(d, { recursive: true, force: true }))
    )
    const file = join(dir, "report.html")
    writeFileSync(file, html)
    const lists = { problems: [] as Array<string>, external: [] as Array<string> }
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        if (tab.sink !== undefined) throw new Error("the browser's page is already open: its tests run one at a time (no concurrent: true)")
        tab.sink = lists
      }),
      () =>
        Effect.promise(async () => {
          // a blank document: nothing of this test's page runs on, or writes to the next test's lists
          await page.goto("about:blank")
          tab.sink = undefined
        })
    )
    yield* Effect.promise(async () => {
      await page.setViewportSize(VIEWPORT)
      await page.mouse.move(0, 0)
    })
    const start = performance.now()
    yield* Effect.promise(async () => {
      await page.goto(pathToFileURL(file).href)
      await page.waitForSelector("body[data-ready='1']", { timeout: 60_000 })
    })
    return { page, file, dir, problems: lists.problems, external: lists.external, loadMs: performance.now() - start }
  })

/** Run a playwright call as an effect (a failure is a test failure). */
export const pw = <A>(f: () => Promise<A>): Effect.Effect<A> => Effect.promise(f)
