/** A run's settings in few words (`trex list`'s SETTINGS, a webhook's end message), and bounded for an end message. */
import * as Settings from "../Settings.ts"
import * as Status from "../Status.ts"
import * as Untrusted from "./untrusted.ts"

/**
 * How a run is wired, in a word each, to tell runs apart (`trex list`'s SETTINGS, a webhook's end message): its backend,
 * researcher and policy (`docker/claude/puct`), then its executor and scheduler when not the defaults (`/code-agent`,
 * `/asha`: their names are no backend's, researcher's or policy's), and how many settings resumes set for the run
 * (`trex status` names them: `Status.settingOverrideText`); `-` for a run that recorded none. A recorded value that is
 * not a name (an edited journal) is shown as JSON; each is cut at 20 characters.
 */
export const settingsWords = (s: Partial<Status.SettingsJson>): string => {
  const o = s.settings ?? {}
  // cut as any untrusted text (marked with `…`, a character outside the BMP kept whole), a value that is no name as its JSON
  const word = (key: string) => Untrusted.line(typeof o[key] === "string" ? o[key] : Status.settingValue(o[key]), 20)
  const shown = ["backend", "researcher", "policy"].some((k) => k in o)
    ? [word("backend"), word("researcher"), word("policy"), ...(["executor", "scheduler"] as const).flatMap((k) => k in o && o[k] !== Settings.defaults[k] ? [word(k)] : [])].join("/")
    : "-"
  const n = s.settingOverrides?.length ?? 0
  return n === 0 ? shown : `${shown} (${n} set on resume)`
}

/** The most settings (and overrides) an end message carries, and the longest key and value (its JSON) it carries as they are. */
const SETTINGS_SHOWN = 40
const SETTING_KEY = 60
const SETTING_VALUE = 200

/** What an end message's `trex.status` carries of the run's settings (see {@link boundedSettings}). */
export interface BoundedSettings extends Status.SettingsJson {
  readonly settingsLeftOut?: number
  readonly settingOverridesLeftOut?: number
}

/**
 * A run's settings as an end message carries them: as `trex status --json` gives them (`Status.settingsJson`), bounded
 * for a journal edited or written by another tool (a run's own are a score of short names and numbers, and carried as
 * they are): a key cut at 60 characters as any untrusted text, a value whose JSON is longer than 200 characters given as
 * `trex status` shows it (`Status.settingValue`: that JSON, cut, with `…`), and the first 40 settings and the first 40
 * overrides only. Every setting not carried is counted in `settingsLeftOut`, those past the 40th and any whose cut key is
 * a setting's already carried (two long keys alike in their first 59 characters: the first is carried); every override
 * not carried in `settingOverridesLeftOut`.
 */
export const boundedSettings = (s: Status.SettingsJson): BoundedSettings => {
  const value = (v: unknown) => v === undefined || (JSON.stringify(v) ?? "").length <= SETTING_VALUE ? v : Status.settingValue(v)
  // (a Map: a key such as `__proto__` is a setting like any other)
  const shown = new Map<string, unknown>()
  for (const key of Object.keys(s.settings)) {
    if (shown.size === SETTINGS_SHOWN) break
    const cut = Untrusted.line(key, SETTING_KEY)
    if (!shown.has(cut)) shown.set(cut, value(s.settings[key]))
  }
  const settingsLeftOut = Object.keys(s.settings).length - shown.size
  const settingOverridesLeftOut = s.settingOverrides.length - SETTINGS_SHOWN
  return {
    settings: Object.fromEntries(shown),
    settingOverrides: s.settingOverrides.slice(0, SETTINGS_SHOWN).map((o) => ({
      ...o,
      key: Untrusted.line(o.key, SETTING_KEY),
      value: value(o.value),
      ...("from" in o ? { from: value(o.from) } : {})
    })),
    ...(settingsLeftOut > 0 ? { settingsLeftOut } : {}),
    ...(settingOverridesLeftOut > 0 ? { settingOverridesLeftOut } : {})
  }
}

/**
 * An end message's words for the run's settings, `settings simulator/heuristic/uct (1 set on resume): <each override
 * as trex status's Setting: line gives it>`, and `; and 10 more` for those not carried; `""` for a run that recorded
 * none. `all`: the run's settings, unbounded (what is counted); `carried`: {@link boundedSettings} of them (what is named).
 */
export const settingsLine = (all: Status.SettingsJson, carried: BoundedSettings): string => {
  if (Object.keys(all.settings).length === 0 && all.settingOverrides.length === 0) return ""
  const more = carried.settingOverridesLeftOut !== undefined ? `; and ${carried.settingOverridesLeftOut} more` : ""
  const named = carried.settingOverrides.length > 0 ? `: ${carried.settingOverrides.map(Status.settingOverrideText).join("; ")}${more}` : ""
  return `settings ${settingsWords(all)}${named}`
}
