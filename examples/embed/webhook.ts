/**
 * A webhook receiver for `trex run --notify`: it prints each message a run posts (its `text`, the line a
 * Slack or Mattermost channel would show), and with `--json` the `trex` object an application reads.
 * A start for your own receiver: put the run's end in your database, page someone when a run fails.
 *
 *   node --conditions=@trex/source examples/embed/webhook.ts [--json]      # prints its address
 *   TREX_NOTIFY_URL=<that address> npm run trex -- run examples/quickstart/task.yaml --notify-best
 *
 * PORT (default 8788; 0 picks a free port). Each message is answered 200; a body that is not a trex
 * message is answered 400. A message may come twice (delivery is at least once: one whose answer a
 * killed controller never read is posted again by `trex resume`): one whose id (`webhook-id`, the same
 * as `trex.id`) was seen is answered 200 and not printed again. Keep the ids where you keep the messages.
 * A message posted well after it was due (kept across a kill, posted by a later `trex resume`) says when
 * it was due (`trex.at`).
 */
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import type { Notify } from "@trex/cli"

const json = process.argv.includes("--json")
const seen = new Set<string>()

const server = http.createServer((req, res) => {
  if (req.method !== "POST") return void res.writeHead(405, { allow: "POST" }).end()
  let body = ""
  req.setEncoding("utf8")
  req.on("data", (chunk: string) => (body += chunk))
  req.on("end", () => {
    let message: Notify.Message
    try {
      message = JSON.parse(body) as Notify.Message
      if (typeof message.text !== "string" || typeof message.trex?.kind !== "string") throw new Error("not a trex message")
    } catch {
      return void res.writeHead(400).end("expected a trex message: { text, trex }")
    }
    const { trex } = message
    if (seen.has(trex.id)) return void res.writeHead(200).end("ok (seen)")
    seen.add(trex.id)
    // what an application would act on: a run that failed, or stopped, needs someone
    const mark = trex.kind === "best" ? "+" : trex.outcome === "finished" ? "=" : "!"
    // posted by a later session: when it happened, not when it arrived
    const late = Date.now() - Date.parse(trex.at) > 60_000 ? ` (due ${trex.at})` : ""
    console.log(`${mark} ${message.text}${late}`)
    if (json) console.log(JSON.stringify(trex))
    res.writeHead(200).end("ok")
  })
})

server.listen(Number(process.env.PORT ?? 8788), "127.0.0.1", () => {
  console.log(`webhook: http://127.0.0.1:${(server.address() as AddressInfo).port}/trex`)
})
process.once("SIGINT", () => server.close())
