/**
 * A small RFC 4180 CSV reader for the simulator's recorded tables: quoted fields, embedded
 * commas, quotes (`""`) and newlines, CRLF or LF line ends, an optional BOM; UTF-8, or UTF-16
 * with its byte-order mark.
 */
import { Buffer } from "node:buffer"

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

/**
 * A table file's bytes as text: UTF-8 (a BOM or none), or UTF-16 with its byte-order mark (what
 * some spreadsheet exports write). A file that is not text (an Excel workbook, NUL bytes) is
 * refused, saying what it looks like, rather than read as one garbled column.
 */
export const decode = (bytes: Uint8Array): string => {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  // (a UTF-16 text has an even length; a stray last byte is dropped)
  const utf16 = () => buf.subarray(2, 2 + ((buf.length - 2) & ~1))
  if (buf[0] === 0xff && buf[1] === 0xfe) return utf16().toString("utf16le")
  if (buf[0] === 0xfe && buf[1] === 0xff) return Buffer.from(utf16()).swap16().toString("utf16le")
  const save = "save it as comma-separated CSV in UTF-8 (a spreadsheet's Save As > CSV UTF-8, pandas' to_csv)"
  // a zip archive (.xlsx, .ods) or an OLE compound file (.xls)
  if (buf.subarray(0, 4).equals(Buffer.from([0x50, 0x4b, 0x03, 0x04]))) {
    throw new CsvError(`the table is a zip archive (an Excel .xlsx or OpenDocument workbook?), not CSV text: ${save}`)
  }
  if (buf.subarray(0, 4).equals(Buffer.from([0xd0, 0xcf, 0x11, 0xe0]))) {
    throw new CsvError(`the table is an Excel .xls workbook, not CSV text: ${save}`)
  }
  const nul = buf.indexOf(0)
  if (nul >= 0) {
    const line = buf.subarray(0, nul).toString("utf8").split("\n").length
    throw new CsvError(`the table holds a NUL byte (line ${line}): it is binary, or UTF-16 without a byte-order mark; ${save}`)
  }
  return buf.toString("utf8")
}

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

/** A cell's text as an error quotes it: at most 60 characters, then `...`. */
export const shortened = (text: string): string => (text.length > 60 ? `${text.slice(0, 60)}...` : text)

// a header read as one field holding another separator: a spreadsheet's export in a locale with decimal commas, or TSV
const separatorHint = (header: ReadonlyArray<string>): string | undefined => {
  if (header.length !== 1) return undefined
  const h = header[0]!
  const kind = h.includes(";") ? "semicolon" : h.includes("\t") ? "tab" : undefined
  if (kind === undefined) return undefined
  return `the header line has no comma but ${kind}s (${JSON.stringify(shortened(h))}): ` +
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

const listFix = "write a JSON list of finite numbers, one per checkpoint, such as [0.52, 0.61, 0.64] (the field quoted, " +
  "as it holds commas), or leave the cell empty for a run without a curve"

// what a JSON value that is no list is, to say so
const kindOf = (v: unknown): string =>
  v === null ? "null" : typeof v === "number" ? "a number" : typeof v === "string" ? "a string" : typeof v === "boolean" ? "a boolean" : "an object"

/**
 * A curve cell: a JSON list of finite numbers, one per checkpoint (`[]` is a curve without points);
 * `undefined` for a run without a curve (an empty cell, or `NaN` in any case, as in a metric cell);
 * else why the text is no such list, as a fix. A `null`, `NaN` or infinite element is refused, not
 * dropped or read as a missing checkpoint: every later point would move to another step, and the
 * recorded curves (`bench/data/nmtlc_scratch_ppl_curves.csv`) hold finite values only.
 */
export const numberList = (raw: string): ReadonlyArray<number> | undefined | { readonly problem: string } => {
  const s = raw.trim()
  if (s === "" || s.toLowerCase() === "nan") return undefined
  let list: unknown
  try {
    list = JSON.parse(s)
  } catch {
    // Python's json.dumps writes NaN and Infinity, which JSON has no word for
    return /\b(NaN|Infinity)\b/.test(s)
      ? { problem: `NaN and Infinity are not JSON, and a curve holds finite values only: correct the value, or end the list before it (a run that diverged stops at its last finite value)` }
      : { problem: `it is not JSON: ${listFix}` }
  }
  if (!Array.isArray(list)) {
    return { problem: `it is ${kindOf(list)}, not a list${typeof list === "number" ? ` (a curve of one point is [${s}])` : ""}: ${listFix}` }
  }
  const bad = list.findIndex((x) => !(typeof x === "number" && Number.isFinite(x)))
  if (bad >= 0) {
    const x: unknown = list[bad]
    return {
      problem: `element ${bad + 1} is ${typeof x === "number" ? x : JSON.stringify(x)}, not a finite number: ` +
        (x === null || typeof x === "number"
          ? "correct it, or end the list before it (a run that diverged stops at its last finite value)"
          : listFix)
    }
  }
  return list as Array<number>
}

/**
 * Type a raw field: number when it looks like one, a number list for a JSON list, else the string,
 * trimmed (as names are: `1e-4, adamw` and `1e-4,adamw` hold the same value).
 */
export const cell = (raw: string): Cell => {
  const s = raw.trim()
  if (s === "") return undefined
  if (numberPattern.test(s)) {
    const v = Number(s)
    return Number.isFinite(v) ? v : s
  }
  if (s.startsWith("[") && s.endsWith("]")) {
    const list = numberList(s)
    if (Array.isArray(list)) return list
  }
  return s
}
