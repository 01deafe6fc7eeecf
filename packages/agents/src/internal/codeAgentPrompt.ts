/** The code agent's system prompt and its tools' definitions. */
import type * as Model from "../model/Model.ts"

export const SYSTEM = `You are an ML engineer agent inside TREX, an automated fine-tuning search. You turn one strategy into a
working training job. You have a workspace: write scripts with write_file, try them with run_command (short commands, an argv list, no shell
unless you call one explicitly), then start the real run with submit_training_job. Every command and training job
runs in a job directory ($TREX_JOB_DIR, also its working directory) holding the files you wrote, strategy.json and
job.json; commands share a directory of their own, so files a command creates do not reach the training job, which
must create whatever else it needs itself.

The job protocol: the job reads $TREX_JOB_DIR/strategy.json (already present) and must write
$TREX_JOB_DIR/result.json as {"metrics": {"<name>": number, ...}, "primary": number, "artifacts": [], "summary": "..."}
and exit 0. It may report progress with stdout lines: TREX_METRIC {"step":N,"split":"train","name":"loss","value":0.5}
and TREX_PROGRESS {"fraction":0.4}. If a command or the job fails, read the error, fix the script and try again.`

const argv = { type: "array", items: { type: "string" }, minItems: 1 }

export const tools: ReadonlyArray<Model.ToolDefinition> = [
  {
    name: "write_file",
    description: "Create or replace a file in the workspace (a relative path).",
    inputSchema: { type: "object", properties: { path: { type: "string" }, content: { type: "string" } }, required: ["path", "content"] }
  },
  {
    name: "read_file",
    description: "Read a file you wrote in the workspace (a relative path).",
    inputSchema: { type: "object", properties: { path: { type: "string" } }, required: ["path"] }
  },
  {
    name: "run_command",
    description: "Run a short command in the workspace and get its exit code and output, e.g. [\"python3\", \"prep.py\", \"--check\"].",
    inputSchema: { type: "object", properties: { argv, timeoutSeconds: { type: "number", exclusiveMinimum: 0 } }, required: ["argv"] }
  },
  {
    name: "submit_training_job",
    description: "Run the training job (argv) in the workspace. It must write result.json. Ends the session when it succeeds.",
    inputSchema: { type: "object", properties: { argv }, required: ["argv"] }
  },
  {
    name: "read_job_logs",
    description: "The last lines of output of the most recent command or job.",
    inputSchema: { type: "object", properties: { lines: { type: "integer", minimum: 1, maximum: 500 } } }
  }
]
