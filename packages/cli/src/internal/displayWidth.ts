/**
 * How many columns of a terminal a text takes: East Asian Wide and Fullwidth characters (CJK, kana,
 * Hangul, fullwidth forms) and emoji shown as emoji take 2, combining marks, zero-width and format
 * characters (and controls) 0, East Asian Ambiguous ones (`±`, `§`, `é`, Greek, Cyrillic, `…`, box
 * drawing, and private use: icon fonts' glyphs) 1 or 2 as the terminal draws them (`ambiguous`: 2 on a
 * terminal set to draw them wide, as many in a Japanese, Chinese or Korean locale are), the rest 1. UAX #11's table, the Wide and Fullwidth
 * part compacted to the ranges text is found in; a character it leaves out counts 1. Where terminals
 * disagree (an emoji made so by U+FE0F), the wider count is taken: a line cut a column short is whole,
 * a line a column too long wraps.
 */

/** The columns a terminal draws an East Asian Ambiguous character in: 1 (narrow, most terminals) or 2 (wide). */
export type Ambiguous = 1 | 2

// East Asian Wide (W) and Fullwidth (F) blocks, from Unicode 15's EastAsianWidth.txt (emoji apart: see EMOJI)
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], // Hangul Jamo leading consonants
  [0x2e80, 0x303e], // CJK radicals, Kangxi radicals, ideographic description, CJK symbols and punctuation
  [0x3041, 0x33ff], // Hiragana, Katakana, Bopomofo, Hangul compatibility Jamo, Kanbun, CJK strokes, enclosed CJK, CJK compatibility
  [0x3400, 0x4dbf], // CJK unified ideographs extension A
  [0x4e00, 0x9fff], // CJK unified ideographs
  [0xa000, 0xa4cf], // Yi
  [0xa960, 0xa97f], // Hangul Jamo extended A
  [0xac00, 0xd7a3], // Hangul syllables
  [0xf900, 0xfaff], // CJK compatibility ideographs
  [0xfe10, 0xfe19], // vertical forms
  [0xfe30, 0xfe6f], // CJK compatibility forms, small form variants
  [0xff00, 0xff60], // fullwidth forms
  [0xffe0, 0xffe6], // fullwidth signs
  [0x16fe0, 0x18cff], // ideographic symbols, Tangut, Khitan
  [0x1aff0, 0x1b2ff], // Kana extended, Nushu
  [0x1f200, 0x1f2ff], // enclosed ideographic supplement
  [0x20000, 0x3fffd] // CJK unified ideographs extensions B to H, compatibility supplement
]

// East Asian Ambiguous (A) characters, from Unicode 14's EastAsianWidth.txt (hex code points and ranges), without the
// combining marks (0 columns) and controls. Private use (U+E000-F8FF, planes 15 and 16: icon fonts' glyphs, Nerd
// Fonts' among them) is Ambiguous there too, and counted so: 1 column where terminals count it 1 (glibc's wcwidth,
// tmux: a wider icon is drawn over the cell after it), 2 where they draw Ambiguous characters wide (Markus Kuhn's
// mk_wcwidth_cjk, xterm's cjkWidth, counts private use wide with them)
const AMBIGUOUS_RANGES = [
  "a1 a4 a7-a8 aa ad-ae b0-b4 b6-ba bc-bf c6 d0 d7-d8 de-e1 e6 e8-ea ec-ed f0 f2-f3 f7-fa fc fe 101 111 113",
  "11b 126-127 12b 131-133 138 13f-142 144 148-14b 14d 152-153 166-167 16b 1ce 1d0 1d2 1d4 1d6 1d8 1da 1dc",
  "251 261 2c4 2c7 2c9-2cb 2cd 2d0 2d8-2db 2dd 2df 391-3a1 3a3-3a9 3b1-3c1 3c3-3c9 401 410-44f 451 2010",
  "2013-2016 2018-2019 201c-201d 2020-2022 2024-2027 2030 2032-2033 2035 203b 203e 2074 207f 2081-2084 20ac",
  "2103 2105 2109 2113 2116 2121-2122 2126 212b 2153-2154 215b-215e 2160-216b 2170-2179 2189 2190-2199",
  "21b8-21b9 21d2 21d4 21e7 2200 2202-2203 2207-2208 220b 220f 2211 2215 221a 221d-2220 2223 2225 2227-222c",
  "222e 2234-2237 223c-223d 2248 224c 2252 2260-2261 2264-2267 226a-226b 226e-226f 2282-2283 2286-2287 2295",
  "2299 22a5 22bf 2312 2460-24e9 24eb-254b 2550-2573 2580-258f 2592-2595 25a0-25a1 25a3-25a9 25b2-25b3",
  "25b6-25b7 25bc-25bd 25c0-25c1 25c6-25c8 25cb 25ce-25d1 25e2-25e5 25ef 2605-2606 2609 260e-260f 261c 261e",
  "2640 2642 2660-2661 2663-2665 2667-266a 266c-266d 266f 269e-269f 26bf 26c6-26cd 26cf-26d3 26d5-26e1 26e3",
  "26e8-26e9 26eb-26f1 26f4 26f6-26f9 26fb-26fc 26fe-26ff 273d 2776-277f 2b56-2b59 3248-324f e000-f8ff fffd",
  "1f100-1f10a 1f110-1f12d 1f130-1f169 1f170-1f18d 1f18f-1f190 1f19b-1f1ac f0000-ffffd 100000-10fffd"
].join(" ")
const AMBIGUOUS: ReadonlyArray<readonly [number, number]> = AMBIGUOUS_RANGES.split(" ").map((r) => {
  const [from, to = from] = r.split("-").map((h) => parseInt(h, 16))
  return [from!, to!] as const
})

// shown as emoji by default: 2 columns (UAX #11 gives them W)
const EMOJI = /\p{Emoji_Presentation}/u
// combining marks, zero-width and format characters (joiners, bidirectional marks, variation selectors), controls
const ZERO = /[\p{Mn}\p{Me}\p{Cc}\u1160-\u11ff\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/u
const EMOJI_STYLE = 0xfe0f

const within = (table: ReadonlyArray<readonly [number, number]>, cp: number): boolean => {
  let lo = 0
  let hi = table.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const [from, to] = table[mid]!
    if (cp < from) hi = mid - 1
    else if (cp > to) lo = mid + 1
    else return true
  }
  return false
}
const wide = (cp: number): boolean => within(WIDE, cp)

/** Widths given to code points `from` to `to` (a tmux pane's `codepoint-widths`), ahead of every other rule; the last that names one counts. */
export type Given = ReadonlyArray<readonly [from: number, to: number, columns: 0 | 1 | 2]>

/** The columns one character takes, `before` the one ahead of it (U+FE0F widens an emoji shown as text). */
const columnsOf = (ch: string, before: string | undefined, ambiguous: Ambiguous, given: Given): number => {
  const cp = ch.codePointAt(0)!
  if (cp < 0x7f) return cp < 0x20 ? 0 : 1
  for (let i = given.length - 1; i >= 0; i--) if (cp >= given[i]![0] && cp <= given[i]![1]) return given[i]![2]
  if (cp === EMOJI_STYLE) return before !== undefined && /\p{Emoji}/u.test(before) && !EMOJI.test(before) && !wide(before.codePointAt(0)!) ? 1 : 0
  if (ZERO.test(ch)) return 0
  if (wide(cp) || EMOJI.test(ch)) return 2
  return ambiguous === 2 && within(AMBIGUOUS, cp) ? 2 : 1
}

/** The columns `text` (one line) takes on a terminal that draws East Asian Ambiguous characters `ambiguous` columns wide. */
export const width = (text: string, ambiguous: Ambiguous = 1, given: Given = []): number => {
  let n = 0
  let before: string | undefined
  for (const ch of text) {
    n += columnsOf(ch, before, ambiguous, given)
    before = ch
  }
  return n
}

/**
 * `text` cut to at most `columns` columns, ending with `…` when cut (the `…` counted: itself ambiguous,
 * it takes `ambiguous` columns); a wide character that would straddle the edge is left out whole.
 */
export const cut = (text: string, columns: number, ambiguous: Ambiguous = 1, given: Given = []): string => {
  if (width(text, ambiguous, given) <= columns) return text
  // the `…` that ends a cut line, as it is counted
  const ellipsis = columnsOf("…", undefined, ambiguous, given)
  let n = 0
  let out = ""
  let before: string | undefined
  for (const ch of text) {
    const w = columnsOf(ch, before, ambiguous, given)
    if (n + w > columns - ellipsis) break
    n += w
    out += ch
    before = ch
  }
  return `${out}…`
}
