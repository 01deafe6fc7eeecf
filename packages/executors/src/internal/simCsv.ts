/**
 * A small RFC 4180 CSV reader for the simulator's recorded tables: quoted fields, embedded
 * commas, quotes (`""`) and newlines, CRLF or LF line ends, an optional BOM.
 */

/** A parsed table: the header and the data rows (each as long as the header). */
export interface Csv {
  readonly header: ReadonlyArray<string>
  readonly rows: ReadonlyArray<ReadonlyArray<string>>
}

/** A typed cell: a finite number, a JSON list of numbers, a string, or `undefined` when empty. */
export type Cell = number | string | ReadonlyArray<number> | undefined

/** Thrown for malformed input; the message names the line. */
export class CsvError extends Error {}

/** Split CSV text into records of raw field strings. */
export const parseRecords = (text: string): Array<Array<string>> => {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text
  const records: Array<Array<string>> = []
  let record: Array<string> = []
  let field = ""
  let quoted = false
  let line = 1
  let i = 0
  const n = src.length
  const endField = () => {
    record.push(field)
    field = ""
  }
  const endRecord = () => {
    endField()
    // a blank line is no record (a quoted empty field is one)
    if (!(record.length === 1 && record[0] === "" && !quoted)) records.push(record)
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
        if (q === "\n") line++
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
    } else {
      field += c
      i++
    }
  }
  if (field !== "" || record.length > 0 || quoted) endRecord()
  return records
}

/** Parse CSV text with a header line; every row must have as many fields as the header. */
export const parse = (text: string): Csv => {
  const records = parseRecords(text)
  const header = records[0]
  if (header === undefined) throw new CsvError("the table is empty (no header line)")
  const seen = new Set<string>()
  for (const h of header) {
    if (seen.has(h)) throw new CsvError(`duplicate column "${h}" in the header`)
    seen.add(h)
  }
  const rows = records.slice(1)
  rows.forEach((r, i) => {
    if (r.length !== header.length) {
      throw new CsvError(`record ${i + 2} has ${r.length} fields, the header has ${header.length}`)
    }
  })
  return { header, rows }
}

const numberPattern = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/

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
