/**
 * A small RFC 4180 CSV reader for the simulator's recorded tables: quoted fields, embedded
 * commas, quotes (`""`) and newlines, CRLF or LF line ends, an optional BOM.
 */

/** A parsed table: the header (names trimmed) and the data rows (each as long as the header). */
export interface Csv {
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
  /** The physical line (1-based) each row starts on: quoted fields may span lines, blank lines are skipped. */
  readonly lines: ReadonlyArray<number>
}

/** A typed cell: a finite number, a JSON list of numbers, a string, or `undefined` when empty. */
export type Cell = number | string | ReadonlyArray<number> | undefined

/** Thrown for malformed input; the message names the line. */
export class CsvError extends Error {}

/** Split CSV text into records of raw field strings, with the line each record starts on. */
const read = (text: string): { readonly records: Array<Array<string>>; readonly lines: Array<number> } => {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  const records: Array<Array<string>> = []
  const lines: Array<number> = []
  let record: Array<string> = []
  let field = ""
  let quoted = false
  let line = 1
  // a record starts right after the previous line end (blank lines move it on)
  let start = 1
  let i = 0
  const n = src.length
  const endField = () => {
    record.push(field)
    field = ""
  }
  const endRecord = () => {
    endField()
    // a blank line is no record (a quoted empty field is one)
    if (!(record.length === 1 && record[0] === "" && !quoted)) {
      records.push(record)
      lines.push(start)
    }
    record = []
    quoted = false
  }
  while (i < n) {
    const c = src[i]!
    if (c === "\"" && field === "") {
      const start = line
      quoted = true
      i++
      for (;;) {
        if (i >= n) throw new CsvError(`unterminated quoted field starting on line ${start}`)
        const q = src[i]!
        if (q === "\"") {
          if (src[i + 1] === "\"") {
            field += "\""
            i += 2
            continue
          }
          i++
          break
        }
        if (q === "\n" || (q === "\r" && src[i + 1] !== "\n")) line++
        field += q
        i++
      }
      const next = src[i]
      if (next !== undefined && next !== "," && next !== "\n" && next !== "\r") {
        throw new CsvError(`unexpected character after a closing quote on line ${line}`)
      }
      continue
    }
    if (c === ",") {
      endField()
      i++
    } else if (c === "\r" || c === "\n") {
      endRecord()
      i += c === "\r" && src[i + 1] === "\n" ? 2 : 1
      line++
      start = line
    } else {
      field += c
      i++
    }
  }
  if (field !== "" || record.length > 0 || quoted) endRecord()
  return { records, lines }
}

/** Split CSV text into records of raw field strings. */
export const parseRecords = (text: string): Array<Array<string>> => read(text).records

// a header read as one field holding another separator: a spreadsheet's export in a locale with decimal commas, or TSV
const separatorHint = (header: ReadonlyArray<string>): string | undefined => {
  if (header.length !== 1) return undefined
  const h = header[0]!
  const kind = h.includes(";") ? "semicolon" : h.includes("\t") ? "tab" : undefined
  if (kind === undefined) return undefined
  return `the header line has no comma but ${kind}s (${JSON.stringify(h.length > 60 ? `${h.slice(0, 60)}...` : h)}): ` +
    `the table looks ${kind}-separated. Save it as comma-separated CSV (fields separated by ",", numbers with a decimal point)`
}

/** Parse CSV text with a header line; every row must have as many fields as the header. */
export const parse = (text: string): Csv => {
  const { records, lines } = read(text)
  const first = records[0]
  if (first === undefined) throw new CsvError("the table is empty (no header line)")
  const hint = separatorHint(first)
  if (hint !== undefined) throw new CsvError(hint)
  // cells are trimmed when read; names are too, so "a, lr" has a column "lr"
  const header = first.map((h) => h.trim())
  const seen = new Set<string>()
  for (const h of header) {
    if (seen.has(h)) throw new CsvError(`duplicate column "${h}" in the header`)
    seen.add(h)
  }
  const rows = records.slice(1)
  rows.forEach((r, i) => {
    if (r.length !== header.length) {
      throw new CsvError(
        `line ${lines[i + 1]}: the row has ${r.length} field${r.length === 1 ? "" : "s"}, the header has ${header.length}; ` +
          `quote a field that holds a comma ("0,81"), and give every row one field per column (empty for a missing value)`
      )
    }
  })
  return { header, rows, lines: lines.slice(1) }
}

const numberPattern = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

/**
 * A metric or cost cell: a finite number; `undefined` for a run without one (an empty cell, or
 * `NaN` in any case: a run that diverged or is missing); else why the text is no number, as a fix
 * (with the number meant, for a decimal comma or thousands separators).
 */
export const numeric = (raw: string): number | undefined | { readonly problem: string; readonly fixed?: number } => {
  const s = raw.trim()
  if (s === "" || s.toLowerCase() === "nan") return undefined
  if (numberPattern.test(s)) {
    const v = Number(s)
    if (Number.isFinite(v)) return v
  }
  // a decimal comma (a spreadsheet in a European locale), or thousands separators
  const fixed = /^[+-]?(\d+,\d*|,\d+)$/.test(s)
    ? s.replace(",", ".")
    : /^[+-]?\d{1,3}(,\d{3})+(\.\d*)?$/.test(s)
    ? s.replaceAll(",", "")
    : undefined
  if (fixed !== undefined) {
    return { problem: `write numbers with a decimal point and no thousands separator (${fixed}, not ${s})`, fixed: Number(fixed) }
  }
  return { problem: "leave the cell empty, or NaN, for a run that diverged or is missing; else correct it to a finite number" }
}

/** Type a raw field: number when it looks like one, a number list for a JSON list, else the string. */
export const cell = (raw: string): Cell => {
  const s = raw.trim()
  if (s === "") return undefined
  if (numberPattern.test(s)) {
    const v = Number(s)
    return Number.isFinite(v) ? v : s
  }
  if (s.startsWith("[") && s.endsWith("]")) {
    try {
      const list: unknown = JSON.parse(s)
      if (Array.isArray(list) && list.every((x) => typeof x === "number" && Number.isFinite(x))) return list as Array<number>
    } catch {
      // not JSON: keep the text
    }
  }
  return raw
}
