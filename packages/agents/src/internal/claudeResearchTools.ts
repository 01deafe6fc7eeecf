/**
 * The network side of the research tools: Hugging Face Hub search (datasets and models, its
 * public JSON API) and arXiv search (the Atom API), over `fetch` with the fiber's abort signal
 * and a timeout. Results are short text for the model.
 */
import { Effect } from "effect"

export interface Endpoints {
  readonly huggingFace: string
  readonly arxiv: string
  readonly timeoutMs: number
}

const get = (url: string, timeoutMs: number) =>
  Effect.tryPromise({
    try: async (signal) => {
      const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]) })
      if (!response.ok) throw new Error(`HTTP ${response.status} from ${new URL(url).host}`)
      return response.text()
    },
    catch: (e) => `search failed: ${e instanceof Error ? e.message : String(e)}`
  })

interface HubEntry {
  readonly id?: string
  readonly downloads?: number
  readonly likes?: number
  readonly tags?: ReadonlyArray<string>
  readonly description?: string
}

const hub = (kind: "datasets" | "models") => (endpoints: Endpoints) => (query: string, limit: number) =>
  get(`${endpoints.huggingFace}/api/${kind}?search=${encodeURIComponent(query)}&limit=${limit}&sort=downloads`, endpoints.timeoutMs).pipe(
    Effect.flatMap((text) =>
      Effect.try({
        try: () => JSON.parse(text) as ReadonlyArray<HubEntry>,
        catch: () => "search failed: the Hub returned invalid JSON"
      })
    ),
    Effect.map((entries) =>
      entries.length === 0 ? `no ${kind} found for "${query}"` : entries.slice(0, limit).map((e) =>
        `- ${e.id ?? "?"} (downloads ${e.downloads ?? 0}, likes ${e.likes ?? 0})` +
        `${e.tags && e.tags.length > 0 ? ` tags: ${e.tags.slice(0, 8).join(", ")}` : ""}` +
        `${e.description ? `\n  ${e.description.slice(0, 200)}` : ""}`
      ).join("\n")
    )
  )

export const searchDatasets = hub("datasets")
export const searchModels = hub("models")

const tag = (xml: string, name: string): string =>
  (xml.match(new RegExp(`<${name}[^>]*>([\\s\\S]*?)</${name}>`))?.[1] ?? "").replace(/\s+/g, " ").trim()

export const searchArxiv = (endpoints: Endpoints) => (query: string, limit: number) =>
  get(`${endpoints.arxiv}/api/query?search_query=${encodeURIComponent(`all:${query}`)}&start=0&max_results=${limit}`, endpoints.timeoutMs).pipe(
    Effect.map((xml) => {
      const entries = xml.split("<entry>").slice(1).map((e) => e.split("</entry>")[0]!)
      return entries.length === 0 ? `no papers found for "${query}"` : entries.map((e) =>
        `- ${tag(e, "title")} (${tag(e, "id")}, ${tag(e, "published").slice(0, 10)})\n  ${tag(e, "summary").slice(0, 400)}`
      ).join("\n")
    })
  )
