import { assert, describe, it } from "@effect/vitest"
import fc from "fast-check"
import * as JobProtocol from "../src/JobProtocol.ts"

const { LineSplitter, MAX_LINE, parseLine, parseMetricsFileLine, Tail } = JobProtocol

/** Feed `bytes` to a splitter cut at `cuts` (byte offsets); every line it returns. */
const split = (bytes: Uint8Array, cuts: ReadonlyArray<number>): Array<string> => {
  const s = new LineSplitter()
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b)
  const out: Array<string> = []
  let prev = 0
  for (const p of [...points, bytes.length]) {
    out.push(...s.push(bytes.subarray(prev, p)))
    prev = p
  }
  return [...out, ...s.end()]
}

const utf8 = (text: string) => new TextEncoder().encode(text)

describe("JobProtocol.parseLine", () => {
  it("parses metrics and progress", () => {
    assert.deepStrictEqual(parseLine('TREX_METRIC {"step":3,"split":"train","name":"loss","value":0.5}'), {
      _tag: "Metric",
      point: { step: 3, split: "train", name: "loss", value: 0.5 }
    })
    assert.deepStrictEqual(parseLine('TREX_PROGRESS {"fraction":0.4}'), { _tag: "Progress", fraction: 0.4 })
    assert.deepStrictEqual(parseLine('TREX_PROGRESS {"fraction":0.4,"message":"epoch 2"}'), { _tag: "Progress", fraction: 0.4, message: "epoch 2" })
  })

  it("clamps progress to [0, 1]", () => {
    assert.deepStrictEqual(parseLine('TREX_PROGRESS {"fraction":1.7}'), { _tag: "Progress", fraction: 1 })
    assert.deepStrictEqual(parseLine('TREX_PROGRESS {"fraction":-2}'), { _tag: "Progress", fraction: 0 })
  })

  it("treats plain and malformed lines as log lines", () => {
    for (const line of [
      "",
      "epoch 1 loss 0.3",
      "TREX_METRIC",
      "TREX_METRIC ",
      "TREX_METRIC{\"step\":1,\"split\":\"train\",\"name\":\"loss\",\"value\":1}",
      "trex_metric {\"step\":1,\"split\":\"train\",\"name\":\"loss\",\"value\":1}",
      "TREX_METRIC {not json",
      "TREX_METRIC [1,2]",
      "TREX_METRIC null",
      'TREX_METRIC {"step":1,"split":"train","name":"loss"}',
      'TREX_METRIC {"step":-1,"split":"train","name":"loss","value":1}',
      'TREX_METRIC {"step":1.5,"split":"train","name":"loss","value":1}',
      'TREX_METRIC {"step":1,"split":"","name":"loss","value":1}',
      'TREX_METRIC {"step":1,"split":"train","name":"loss","value":"0.5"}',
      "TREX_PROGRESS {}",
      'TREX_PROGRESS {"fraction":"half"}',
      '  TREX_PROGRESS {"fraction":0.5}'
    ]) {
      assert.isUndefined(parseLine(line), line)
    }
  })

  it("rejects NaN and Infinity (JSON has neither: strings and overflowing literals)", () => {
    for (const value of ['"NaN"', '"Infinity"', "1e999", "-1e999", "NaN", "Infinity"]) {
      assert.isUndefined(parseLine(`TREX_METRIC {"step":1,"split":"train","name":"loss","value":${value}}`), value)
      assert.isUndefined(parseLine(`TREX_PROGRESS {"fraction":${value}}`), value)
      assert.isUndefined(parseMetricsFileLine(`{"step":1,"split":"eval","name":"acc","value":${value}}`), value)
    }
  })

  it("never throws, whatever the line", () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.string().map((s) => `TREX_METRIC ${s}`), fc.json().map((j) => `TREX_PROGRESS ${j}`)), (line) => {
        const r = parseLine(line)
        assert.isTrue(r === undefined || r._tag === "Metric" || r._tag === "Progress")
      }),
      { numRuns: 500 }
    )
  })

  it("parses metrics.jsonl lines", () => {
    assert.deepStrictEqual(parseMetricsFileLine('{"step":10,"split":"eval","name":"acc","value":0.75}'), {
      step: 10,
      split: "eval",
      name: "acc",
      value: 0.75
    })
    assert.isUndefined(parseMetricsFileLine('{"step":10,"split":"eval"'))
    assert.isUndefined(parseMetricsFileLine(""))
  })
})

describe("JobProtocol.LineSplitter", () => {
  it("reassembles lines from any chunking of UTF-8 bytes, multi-byte characters included", () => {
    const line = fc.string({ unit: "grapheme", maxLength: 30 }).map((s) => s.replace(/[\r\n]/g, ""))
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 12 }), (lines, cuts) => {
        const text = lines.join("\n") + "\n"
        assert.deepStrictEqual(split(utf8(text), cuts), lines)
      }),
      { numRuns: 500 }
    )
  })

  it("splits a 4-byte character at every byte", () => {
    const bytes = utf8("héllo 🎉 wörld\n日本語\n")
    for (let a = 0; a <= bytes.length; a++) {
      for (const b of [a + 1, a + 2, a + 3]) assert.deepStrictEqual(split(bytes, [a, b]), ["héllo 🎉 wörld", "日本語"])
    }
  })

  it("decodes invalid UTF-8 with replacement characters", () => {
    assert.deepStrictEqual(split(Uint8Array.from([0xff, 0x41, 0x0a, 0xc3, 0x28, 0x0a]), []), ["\uFFFDA", "\uFFFD("])
    // a truncated sequence at the end of the stream
    assert.deepStrictEqual(split(Uint8Array.from([0x41, 0xe6, 0x97]), [2]), ["A\uFFFD"])
  })

  it("strips CR of CRLF, also when CR and LF arrive in different chunks", () => {
    assert.deepStrictEqual(split(utf8("a\r\nb\r\n\r\nc"), []), ["a", "b", "", "c"])
    const s = new LineSplitter()
    assert.deepStrictEqual(s.push("x\r"), [])
    assert.deepStrictEqual(s.push("\ny"), ["x"])
    assert.deepStrictEqual(s.end(), ["y"])
  })

  it("cuts enormous lines at MAX_LINE, also when no newline ever comes", () => {
    const huge = "a".repeat(MAX_LINE * 3)
    const [first, second] = split(utf8(`${huge}\nshort\n`), [1000, 40_000])
    assert.strictEqual(first, "a".repeat(MAX_LINE) + "…")
    assert.strictEqual(second, "short")

    const s = new LineSplitter()
    const emitted: Array<string> = []
    const chunk = "b".repeat(10_000)
    for (let i = 0; i < 100; i++) emitted.push(...s.push(chunk))
    // memory stays bounded: lines come out before the stream ends, each cut
    assert.isAbove(emitted.length, 0)
    for (const l of [...emitted, ...s.end()]) assert.isAtMost(l.length, MAX_LINE + 1)
  })

  it("keeps lines that start with `whole` as written (a result marker), cutting the others; past wholeMax they are cut too", () => {
    const marker = "TREX_RESULT " + "QUJD".repeat(MAX_LINE)
    const s = new LineSplitter({ whole: "TREX_RESULT " })
    const out: Array<string> = []
    for (const piece of ["a\r", "b\n", marker.slice(0, 30_000), marker.slice(30_000), "\n", "c".repeat(MAX_LINE * 5), "\n"]) out.push(...s.push(piece))
    assert.deepStrictEqual(out.slice(0, 2), ["b", marker])
    assert.isAtMost(out.at(-1)!.length, MAX_LINE + 1)
    const small = new LineSplitter({ whole: "TREX_RESULT ", wholeMax: MAX_LINE * 4 })
    const cutOut = [...small.push(marker), ...small.end()]
    assert.isAtMost(cutOut[0]!.length, MAX_LINE + 1)
  })

  it("a line rewritten with \\r (a tqdm progress bar) is its last state, also when no newline comes for megabytes", () => {
    assert.deepStrictEqual(split(utf8("\r 10%|#  |\r 20%|## |\n\r 30%|###|\r\n"), [3, 9]), [" 20%|## |", " 30%|###|"])
    assert.deepStrictEqual(JobProtocol.shownLine("done\r   \r"), "done")
    const s = new LineSplitter()
    const emitted: Array<string> = []
    // 100,000 states of one line (about 4 MB), then a newline: nothing before it, then only the last state
    for (let i = 1; i <= 100_000; i += 1000) {
      let chunk = ""
      for (let k = i; k < i + 1000; k++) chunk += `\rstep ${k}/100000 loss=0.${k % 97}`
      emitted.push(...s.push(utf8(chunk)))
    }
    emitted.push(...s.push("\nnext\n"))
    assert.deepStrictEqual(emitted, ["step 100000/100000 loss=0.90", "next"])
  })

  it("end() flushes the last partial line once", () => {
    const s = new LineSplitter()
    assert.deepStrictEqual(s.push("one\ntwo"), ["one"])
    assert.deepStrictEqual(s.end(), ["two"])
    assert.deepStrictEqual(s.end(), [])
  })
})

describe("JobProtocol.Tail", () => {
  it("keeps the last n lines", () => {
    const t = new Tail(3)
    for (const l of ["1", "2", "3", "4", "5"]) t.push(l)
    assert.deepStrictEqual(t.get(), ["3", "4", "5"])
    const copy = t.get() as Array<string>
    copy.push("x")
    assert.deepStrictEqual(t.get(), ["3", "4", "5"])
  })
})

describe("JobProtocol.parseResultBytes", () => {
  const tooBig = "more than the 64 MB the controller reads (keep its metrics and a short summary in it; put bulk data in an artifact)"
  it("parses bytes or text, and names what is wrong in the words every backend uses", () => {
    assert.deepStrictEqual(JobProtocol.parseResultBytes(new TextEncoder().encode('{"metrics":{"é":1}}')), { result: { metrics: { "é": 1 } } })
    assert.deepStrictEqual(JobProtocol.parseResultBytes('{"metrics":{}}'), { result: { metrics: {} } })
    assert.deepStrictEqual(JobProtocol.parseResultBytes(undefined), { resultError: "the job wrote no result.json" })
    const bad = JobProtocol.parseResultBytes("{oops")
    assert.match("resultError" in bad ? bad.resultError : "", /^result\.json is not valid JSON: /)
  })

  it("a file over MAX_RESULT_BYTES is too big: by its size when known, else by a read that got one byte past the bound", () => {
    assert.deepStrictEqual(JobProtocol.parseResultBytes("", 70_000_000), { resultError: `result.json is 67 MB, ${tooBig}` })
    assert.deepStrictEqual(JobProtocol.parseResultBytes(new Uint8Array(JobProtocol.MAX_RESULT_BYTES + 1)), { resultError: `result.json is ${tooBig}` })
    // at the bound it is read
    const at = new Uint8Array(JobProtocol.MAX_RESULT_BYTES).fill(0x20)
    at.set(new TextEncoder().encode("{}"))
    assert.deepStrictEqual(JobProtocol.parseResultBytes(at), { result: {} })
  })
})
