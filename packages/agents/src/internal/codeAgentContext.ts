/**
 * The code agent's conversation when it outgrows the model's context window: each turn adds the
 * model's calls (a file written in full) and their results (a command's output, a file read back),
 * and a long session that rewrote its scripts a few times can pass 200 000 tokens. The API then
 * refuses every further turn (`prompt is too long`), or stops its answer (stop reason
 * `model_context_window_exceeded`). The bulk of such a conversation is old content the session no
 * longer needs whole: the files it wrote are kept in its workspace (read_file shows them as they
 * are now), and an output's error is in its last lines.
 */
import type * as Model from "../model/Model.ts"

/** Content up to this many characters is kept as it is. */
const KEEP = 400

const elideFile = (path: unknown, length: number): string =>
  `[${length} characters elided to keep this conversation within the model's context window; ` +
  `the workspace keeps the file${typeof path === "string" ? `: read_file ${path} shows it as it is now` : ""}]`

/** The last lines of `text` that fit in KEEP characters, after a line saying how much went. */
const tail = (text: string): string => {
  const lines = text.split("\n")
  const kept: Array<string> = []
  let size = 0
  for (let i = lines.length - 1; i >= 0 && size + lines[i]!.length < KEEP; i--) {
    kept.unshift(lines[i]!)
    size += lines[i]!.length + 1
  }
  return `[${text.length - size} characters elided to keep this conversation within the model's context window; its last lines:]\n${kept.join("\n")}`
}

/**
 * Make `messages` shorter in place: in every message but the first (the task), the contents of
 * files written (`write_file`) and tool results longer than a few hundred characters are elided,
 * a result's last lines kept. Returns how many characters went: 0 when nothing was left to elide.
 */
export const compact = (messages: Array<Model.Message>): number => {
  let saved = 0
  for (let i = 1; i < messages.length; i++) {
    const message = messages[i]!
    const content = message.content.map((block): Model.ContentBlock => {
      if (block.type === "tool_use" && block.name === "write_file") {
        const input = block.input as { path?: unknown; content?: unknown } | null
        if (input === null || typeof input !== "object" || typeof input.content !== "string" || input.content.length <= KEEP) return block
        const elided = elideFile(input.path, input.content.length)
        saved += input.content.length - elided.length
        return { ...block, input: { ...input, content: elided } }
      }
      if (block.type === "tool_result" && block.content.length > KEEP * 2) {
        const short = tail(block.content)
        saved += block.content.length - short.length
        return { ...block, content: short }
      }
      return block
    })
    messages[i] = { ...message, content }
  }
  return saved
}
