/**
 * How many columns of a terminal a text takes: East Asian Wide and Fullwidth characters (CJK, kana,
 * Hangul, fullwidth forms) and emoji shown as emoji take 2, combining marks, zero-width and format
 * characters (and controls) 0, the rest 1. UAX #11's table, compacted to the ranges text is found in;
 * a character it leaves out counts 1. Where terminals disagree (an emoji made so by U+FE0F), the
 * wider count is taken: a line cut a column short is whole, a line a column too long wraps.
 */

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

// shown as emoji by default: 2 columns (UAX #11 gives them W)
const EMOJI = /\p{Emoji_Presentation}/u
// combining marks, zero-width and format characters (joiners, bidirectional marks, variation selectors), controls
const ZERO = /[\p{Mn}\p{Me}\p{Cc}\u1160-\u11ff\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]/u
const EMOJI_STYLE = 0xfe0f

const wide = (cp: number): boolean => {
  let lo = 0
  let hi = WIDE.length - 1
  while (lo <= hi) {
    const mid = (lo + hi) >> 1
    const [from, to] = WIDE[mid]!
    if (cp < from) hi = mid - 1
    else if (cp > to) lo = mid + 1
    else return true
  }
  return false
}

/** The columns one character takes, `before` the one ahead of it (U+FE0F widens an emoji shown as text). */
const columnsOf = (ch: string, before: string | undefined): number => {
  const cp = ch.codePointAt(0)!
  if (cp < 0x7f) return cp < 0x20 ? 0 : 1
  if (cp === EMOJI_STYLE) return before !== undefined && /\p{Emoji}/u.test(before) && !EMOJI.test(before) && !wide(before.codePointAt(0)!) ? 1 : 0
  if (ZERO.test(ch)) return 0
  return wide(cp) || EMOJI.test(ch) ? 2 : 1
}

/** The columns `text` (one line) takes on a terminal. */
export const width = (text: string): number => {
  let n = 0
  let before: string | undefined
  for (const ch of text) {
    n += columnsOf(ch, before)
    before = ch
  }
  return n
}

/**
 * `text` cut to at most `columns` columns, ending with `…` when cut (the `…` counted, as one column);
 * a wide character that would straddle the edge is left out whole.
 */
export const cut = (text: string, columns: number): string => {
  if (width(text) <= columns) return text
  let n = 0
  let out = ""
  let before: string | undefined
  for (const ch of text) {
    const w = columnsOf(ch, before)
    if (n + w > columns - 1) break
    n += w
    out += ch
    before = ch
  }
  return `${out}…`
}
