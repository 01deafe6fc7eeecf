/**
 * Generates each package's `API.md` (`packages/<package>/API.md`, shipped in its tarball, so the
 * reference is there for npm users too) and the index `docs/api/README.md` from the doc comments
 * of each package's public modules: for every entry point (the `@trex/source` conditions in `package.json` `exports`), every
 * `export * as X from "./X.ts"` module, and every top-level export with its JSDoc summary,
 * `@category`, `@since` and `@example` blocks.
 *
 *   node scripts/gen-api-docs.ts           # write packages/<package>/API.md and docs/api/README.md
 *   node scripts/gen-api-docs.ts --check   # exit 1 when a committed file is out of date
 *
 * TypeScript 7's package has no JavaScript compiler API, so this reads the sources with a small
 * scanner: a `/** ... *\/` comment directly before a top-level `export` declaration documents it.
 * Output is deterministic (source order, no dates).
 */
import * as fs from "node:fs"
import * as path from "node:path"

/** A parsed JSDoc comment. */
interface Doc {
  readonly summary: string
  readonly since?: string
  readonly category?: string
  readonly examples: ReadonlyArray<string>
  readonly deprecated?: string
}

interface Symbol {
  readonly name: string
  readonly kind: string
  readonly signature: string
  readonly doc: Doc | undefined
}

interface Module {
  readonly name: string
  readonly file: string
  readonly doc: Doc | undefined
  readonly symbols: ReadonlyArray<Symbol>
}

const TAGS = ["since", "category", "example", "deprecated", "see", "param", "returns", "internal"]
const tagPattern = new RegExp(`(^|\\s)@(${TAGS.join("|")})\\b`, "g")

/** Strip the comment markers and parse the tags we document. */
export const parseDoc = (comment: string): Doc => {
  const body = comment
    .replace(/^\/\*\*\s?/, "")
    .replace(/\s*\*\/$/, "")
    .split("\n")
    .map((line) => line.replace(/^\s*\* ?/, ""))
    .join("\n")
  const marks = [...body.matchAll(tagPattern)].map((m) => ({ tag: m[2]!, at: m.index! + m[1]!.length }))
  const summary = body.slice(0, marks[0]?.at ?? body.length).trim()
  const tags = marks.map((m, i) => ({
    tag: m.tag,
    text: body.slice(m.at + m.tag.length + 1, marks[i + 1]?.at ?? body.length).replace(/^[ \t]+/, "").trimEnd()
  }))
  const first = (tag: string) => tags.find((t) => t.tag === tag)?.text.trim()
  const since = first("since")
  const category = first("category")
  const deprecated = first("deprecated")
  return {
    summary: links(summary),
    examples: tags.filter((t) => t.tag === "example").map((t) => t.text.replace(/^\n+/, "").trimEnd()),
    ...(since !== undefined ? { since } : {}),
    ...(category !== undefined ? { category } : {}),
    ...(deprecated !== undefined ? { deprecated } : {})
  }
}

const links = (text: string) => text.replace(/\{@link\s+([^}\s|]+)(?:[\s|]+([^}]+))?\}/g, (_, target: string, label?: string) => `\`${label?.trim() ?? target}\``)

const declaration = /^export\s+(?:declare\s+)?(abstract class|class|interface|type|const|let|function\*?|async function|enum)\s+([A-Za-z_$][\w$]*)/

/** The leading module comment: a JSDoc at the top of the file, before any code. */
const moduleDoc = (source: string): Doc | undefined => {
  const m = /^\s*(\/\*\*[\s\S]*?\*\/)/.exec(source)
  if (m === null) return undefined
  const after = source.slice(m.index + m[0].length)
  // A comment directly followed by an export documents that export, not the module.
  return /^\s*\n\s*export\s/.test(after) && !/^\s*\n\s*\n/.test(after) && !/^\s*\n\s*(import|export \*)/.test(after) ? undefined : parseDoc(m[1]!)
}

/** Top-level exports in source order, each with the JSDoc right above it. */
export const parseModule = (source: string): { doc: Doc | undefined; symbols: ReadonlyArray<Symbol> } => {
  const lines = source.split("\n")
  const symbols: Array<Symbol> = []
  const seen = new Set<string>()
  const header = /^\s*(\/\*\*[\s\S]*?\*\/)/.exec(source)
  const headerEnd = header === null ? 0 : header[0].split("\n").length
  const headerIsModule = moduleDoc(source) !== undefined
  for (let i = 0; i < lines.length; i++) {
    const m = declaration.exec(lines[i]!)
    if (m === null) continue
    const kind = m[1]!.replace("abstract ", "").replace("*", "").replace("async ", "")
    const name = m[2]!
    if (seen.has(name)) continue // overloads and `type X = typeof X.Type` after `const X`: keep the first
    seen.add(name)
    let doc: Doc | undefined
    let j = i - 1
    while (j >= 0 && lines[j]!.trim() === "") j--
    if (j >= 0 && lines[j]!.trim().endsWith("*/")) {
      let k = j
      while (k >= 0 && !lines[k]!.includes("/**")) k--
      const isHeader = headerIsModule && k === 0 && j < headerEnd
      if (k >= 0 && !isHeader) doc = parseDoc(lines.slice(k, j + 1).join("\n").trim())
    }
    symbols.push({ name, kind: kind === "let" ? "const" : kind, signature: signatureOf(lines, i), doc })
  }
  return { doc: moduleDoc(source), symbols }
}

/** The declaration's first line, shortened: enough to recognise it. */
const signatureOf = (lines: ReadonlyArray<string>, i: number): string => {
  const line = lines[i]!.replace(/\s*(=>\s*)?[({=]*\s*$/, "").replace(/\s+/g, " ").trim()
  return line.length > 140 ? `${line.slice(0, 137)}...` : line
}

interface Entry {
  readonly specifier: string
  readonly doc: Doc | undefined
  readonly modules: ReadonlyArray<Module>
}

const reexport = /^export \* as (\w+) from "(\.[^"]+)"/gm

const readEntry = (pkgDir: string, specifier: string, barrel: string): Entry => {
  const source = fs.readFileSync(path.join(pkgDir, barrel), "utf8")
  const modules: Array<Module> = []
  for (const m of source.matchAll(reexport)) {
    const file = path.join(path.dirname(barrel), m[2]!)
    const parsed = parseModule(fs.readFileSync(path.join(pkgDir, file), "utf8"))
    modules.push({ name: m[1]!, file: file.split(path.sep).join("/"), ...parsed })
  }
  return { specifier, doc: moduleDoc(source), modules }
}

const anchor = (text: string) => text.toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")

const renderDoc = (doc: Doc | undefined, out: Array<string>) => {
  if (doc === undefined) return
  if (doc.summary !== "") out.push(doc.summary, "")
  if (doc.deprecated !== undefined) out.push(`**Deprecated.** ${doc.deprecated}`, "")
  for (const example of doc.examples) {
    out.push(example.includes("```") ? example : "```ts\n" + example + "\n```", "")
  }
}

const renderPackage = (name: string, entries: ReadonlyArray<Entry>): string => {
  const out: Array<string> = [
    `# ${name}`,
    "",
    "<!-- Generated by scripts/gen-api-docs.ts from the doc comments in the sources. Do not edit by hand. -->",
    ""
  ]
  if (entries[0]?.doc !== undefined) out.push(entries[0].doc.summary, "")
  for (const entry of entries) {
    out.push(`## \`${entry.specifier}\``, "")
    if (entry !== entries[0] && entry.doc !== undefined) out.push(entry.doc.summary, "")
    out.push("| module | summary |", "|---|---|")
    for (const m of entry.modules) {
      const line = (m.doc?.summary ?? "").split(/\n\s*\n/)[0]!.replace(/\s+/g, " ").replace(/\|/g, "\\|")
      out.push(`| [${m.name}](#${anchor(`${m.name}`)}) | ${line} |`)
    }
    out.push("")
    for (const m of entry.modules) {
      out.push(`### ${m.name}`, "", `\`import { ${m.name} } from "${entry.specifier}"\` · source: \`${m.file}\``, "")
      renderDoc(m.doc, out)
      const byCategory = new Map<string, Array<Symbol>>()
      for (const s of m.symbols) {
        const category = s.doc?.category ?? "other"
        byCategory.set(category, [...(byCategory.get(category) ?? []), s])
      }
      for (const category of [...byCategory.keys()].sort()) {
        out.push(`#### ${category}`, "")
        for (const s of byCategory.get(category)!) {
          const since = s.doc?.since !== undefined ? ` · since ${s.doc.since}` : ""
          out.push(`##### \`${m.name}.${s.name}\``, "", `${s.kind}${since}`, "", "<!-- not-checked: declaration signature -->", "```ts", s.signature, "```", "")
          if (s.doc === undefined) out.push("_Not documented._", "")
          renderDoc(s.doc, out)
        }
      }
    }
  }
  return out.join("\n").replace(/\n{3,}/g, "\n\n").trimEnd() + "\n"
}

/** The generated files, keyed by path relative to the repository root. */
export const generate = (root: string): Map<string, string> => {
  const files = new Map<string, string>()
  const packagesDir = path.join(root, "packages")
  for (const dir of fs.readdirSync(packagesDir).sort()) {
    const pkgDir = path.join(packagesDir, dir)
    const manifestPath = path.join(pkgDir, "package.json")
    if (!fs.existsSync(manifestPath)) continue
    const manifest = JSON.parse(fs.readFileSync(manifestPath, "utf8")) as {
      readonly name: string
      readonly exports?: Record<string, string | Record<string, string>>
    }
    const entries: Array<Entry> = []
    for (const [key, value] of Object.entries(manifest.exports ?? {}).sort(([a], [b]) => (a === "." ? -1 : b === "." ? 1 : a.localeCompare(b)))) {
      const source = typeof value === "object" ? value["@trex/source"] : undefined
      if (source === undefined || !source.endsWith(".ts")) continue
      entries.push(readEntry(pkgDir, key === "." ? manifest.name : `${manifest.name}/${key.replace(/^\.\//, "")}`, source.replace(/^\.\//, "")))
    }
    if (entries.length > 0) files.set(`packages/${dir}/API.md`, renderPackage(manifest.name, entries))
  }
  const index = [
    "# API reference",
    "",
    "<!-- Generated by scripts/gen-api-docs.ts. Do not edit by hand. -->",
    "",
    ...[...files.keys()].map((f) => `- [@trex/${path.basename(path.dirname(f))}](../../${f})`),
    ""
  ]
  files.set("docs/api/README.md", index.join("\n"))
  return files
}

if (import.meta.main) {
  const root = path.resolve(import.meta.dirname, "..")
  const check = process.argv.includes("--check")
  let stale = 0
  for (const [file, content] of generate(root)) {
    const target = path.join(root, file)
    const current = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : undefined
    if (current === content) continue
    if (check) {
      console.error(`out of date: ${file}`)
      stale++
    } else {
      fs.mkdirSync(path.dirname(target), { recursive: true })
      fs.writeFileSync(target, content)
      console.log(`wrote ${file}`)
    }
  }
  if (stale > 0) {
    console.error("run: node scripts/gen-api-docs.ts")
    process.exitCode = 1
  }
}
