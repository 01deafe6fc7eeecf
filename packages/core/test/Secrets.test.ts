import { assert, describe, it } from "@effect/vitest"
import { Redacted } from "effect"
import { Secrets } from "@trex/core"

describe("Secrets", () => {
  it("of: env's Redacted values and the environment's variables named like a secret, longest first; plain values, short ones and other names left", () => {
    const secrets = Secrets.of(
      { HUB: Redacted.make("hub_0123456789"), PLAIN: "not_a_secret_value", SHORT: Redacted.make("abc1234") },
      { HF_TOKEN: "hf_abcdefghijklmnop", OPENAI_API_KEY: "sk-0123456789", DB_PASSWORD: "p4ssw0rd!", HOME: "/home/someone/long", MONKEY: "not a key at all", KEY: "k".repeat(9) }
    )
    assert.deepStrictEqual(secrets, [
      ["HF_TOKEN", "hf_abcdefghijklmnop"],
      ["HUB", "hub_0123456789"],
      ["OPENAI_API_KEY", "sk-0123456789"],
      ["DB_PASSWORD", "p4ssw0rd!"],
      ["KEY", "kkkkkkkkk"]
    ])
  })

  it("scrubber: every occurrence of each value reads <secret NAME>; a value holding another is replaced whole", () => {
    const scrub = Secrets.scrubber(Secrets.of({ LONG: Redacted.make("tok_12345678_extra"), INNER: Redacted.make("tok_12345678") }, {}))
    assert.strictEqual(
      scrub("a tok_12345678_extra b tok_12345678 c tok_12345678"),
      "a <secret LONG> b <secret INNER> c <secret INNER>"
    )
    assert.strictEqual(scrub("nothing here"), "nothing here")
  })
})
