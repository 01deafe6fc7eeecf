/**
 * Text that models, jobs and backends write (rationales, insights, analyses, failure messages, wait
 * reasons), made safe to show: on a terminal it cannot move the cursor, recolour, hide or reverse what
 * follows, nor start a line of its own; in Markdown it renders as the text it is (no heading, link,
 * table cell or HTML of its own). The HTML report escapes it on its own (`escapeHtml`).
 */

// C0 and C1 controls (escape sequences, NUL, backspace...; whitespace is folded separately) and the
// bidirectional overrides and isolates, which can make text read backwards (`gnp.exe` shown as `exe.png`).
const CONTROLS = /[\u0000-\u0008\u000E-\u001F\u007F-\u009F\u200E\u200F\u202A-\u202E\u2066-\u2069]/g

/**
 * One line of plain text: controls removed, whitespace (newlines too) folded to single spaces, cut to `max` (the cut
 * marked with `…`, before a character outside the BMP rather than through its surrogate pair).
 */
export const line = (text: string, max = Number.POSITIVE_INFINITY): string => {
  const one = text.replace(CONTROLS, "").replace(/\s+/g, " ").trim()
  if (one.length <= max) return one
  const end = max - 1
  const high = one.charCodeAt(end - 1)
  return `${one.slice(0, high >= 0xd800 && high <= 0xdbff ? end - 1 : end)}…`
}

/**
 * Text of several lines, as an error message on stderr: controls removed as in {@link line}, and
 * carriage returns (which would print over the line), but its line breaks kept.
 */
export const lines = (text: string): string => text.replace(CONTROLS, "").replace(/\r\n?/g, "\n")

/**
 * {@link line}, for Markdown (a paragraph, a list item, a table cell): the punctuation Markdown and
 * HTML act on is escaped with a backslash (CommonMark), and so is a first character that would open
 * a heading, a list or a quote.
 */
export const markdown = (text: string, max = Number.POSITIVE_INFINITY): string =>
  line(text, max)
    .replace(/[\\`*_[\]<>|~]/g, "\\$&")
    .replace(/^([#+\-=>]|\d+[.)])/, "\\$1")

/**
 * {@link line}, for a chat message (a Slack or Mattermost webhook's `text`): `&`, `<` and `>` as
 * Slack's entities, so the text makes no link, mention (`<!channel>`) or user reference of its own, and
 * a zero-width space after each `@`, so it pings nobody (`@channel`, `@here`, `@user`) where `@` does.
 */
export const chat = (text: string, max = Number.POSITIVE_INFINITY): string =>
  line(text, max).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/@/g, "@\u200B")
