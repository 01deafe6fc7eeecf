/** The code agent's system prompt, what it is told of where its jobs run, and its tools' definitions. */
import type { Task } from "@trex/core"
import type * as Model from "../model/Model.ts"

export const SYSTEM = `You are an ML engineer agent inside TREX, an automated fine-tuning search. You turn one strategy into a
working training job. You have a workspace: write scripts with write_file, try them with run_command (short commands, an argv list, no shell
unless you call one explicitly), then start the real run with submit_training_job. Every command and training job
runs in a job directory ($TREX_JOB_DIR, also its working directory) holding the files you wrote, strategy.json and
job.json. Where the jobs run, what is installed there and what else a job directory holds depend on the backend: the
task's message says so. Files a command creates never reach the training job, which must create whatever else it
needs itself.

The job protocol: the job reads $TREX_JOB_DIR/strategy.json (already present) and must write
$TREX_JOB_DIR/result.json as {"metrics": {"<name>": number, ...}, "primary": number, "artifacts": [], "summary": "..."}
and exit 0. It may report progress with stdout lines: TREX_METRIC {"step":N,"split":"train","name":"loss","value":0.5}
and TREX_PROGRESS {"fraction":0.4}. If a command or the job fails, read the error, fix the script and try again.`

/** What the agent is told of its jobs' environment: the backend, the recipe's image, command, env and resources. */
export interface JobEnvironment {
  /** `Backend.name`: local, docker, slurm, gridengine, ssh, kubernetes, or a custom backend's. */
  readonly backend: string
  readonly recipe: Task.Recipe | undefined
  /** The recipe's command with its placeholders substituted (it runs on this backend). */
  readonly command: ReadonlyArray<string> | undefined
  /** The recipe's env, substituted: names and values (never secret: a task file holds none). */
  readonly env: Readonly<Record<string, string>>
  /** Names of the secret variables every job gets (their values are never shown). */
  readonly secrets: ReadonlyArray<string>
  /** The folder `{taskDir}` stands for, on the controller's machine. */
  readonly taskDir: string
  /** `run_command`'s time limit, in seconds. */
  readonly commandLimit: number
}

/** Where a backend's jobs run, and what of the controller's machine they see. */
const where = (e: JobEnvironment): string => {
  const image = e.recipe?.image !== undefined ? `image ${e.recipe.image}` : "the backend's default image (the recipe names none)"
  switch (e.backend) {
    case "local":
      return "processes on the controller's machine, as its user: the programs installed there, and the task folder " +
        `(${e.taskDir}), are at hand.`
    case "docker":
      return `containers of ${image}: only what the image installs is there. Of the controller's machine the container sees ` +
        `the job directory (at $TREX_JOB_DIR) and the mounts the backend adds, nothing else: not the task folder (${e.taskDir}) ` +
        "nor the controller's programs. The backend's default network is none: a download may fail."
    case "kubernetes":
      return `pods of ${image} in a Kubernetes cluster: only what the image ` +
        `installs is there, and nothing of the controller's machine (not the task folder ${e.taskDir}).`
    case "slurm":
    case "gridengine":
      return "batch jobs on the cluster's compute nodes, each waiting in the queue for its turn (a command too): the programs " +
        "are the compute nodes' (use full paths, as the task's command does), and of the " +
        `controller's files only those on the cluster's shared filesystem are there (the task folder is ${e.taskDir}).`
    case "ssh":
      return "a remote host reached over SSH, as the user TREX logs in as: the programs are that host's (a non-interactive " +
        "shell's PATH: use full paths, as the task's command does), and the controller's files are not there (not the task " +
        `folder ${e.taskDir}).`
    default:
      return `perhaps another machine: its programs and files need not be the controller's (nor the task folder ${e.taskDir}).`
  }
}

/** What a job directory holds besides the files written, by backend: fresh for each job, or shared by a node's jobs. */
const directories = (backend: string): string => {
  switch (backend) {
    case "local":
    case "docker":
    case "ssh":
      return "The node's commands share one job directory and its training attempts another: a later command finds what an " +
        "earlier one created; the training job does not (though an earlier training attempt's files may still be there)."
    case "slurm":
    case "gridengine":
    case "kubernetes":
      return "Every command and every training attempt starts in a new job directory holding only the files you wrote, " +
        "strategy.json and job.json: nothing a command creates is there for the next command, nor for the training job. " +
        "Write everything a job needs with write_file, or have the job make it."
    default:
      return "Do not count on a file one job created being there for another: write everything a job needs with write_file, " +
        "or have the job make it."
  }
}

const quoteWord = (w: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replaceAll("'", `'\\''`)}'`)

/** The part of the task's message that says where the jobs run (the backend), what they find there and what they get. */
export const environment = (e: JobEnvironment): string => {
  const r = e.recipe?.resources
  const training = r === undefined
    ? "no GPU and 1 CPU"
    : `${r.gpus} GPU(s), ${r.cpus} CPU(s)` + (r.memoryMb !== undefined ? `, ${r.memoryMb} MB of memory` : "")
  const limit = r?.timeLimitSeconds !== undefined ? `, and is stopped after ${r.timeLimitSeconds} s` : ""
  const vars = [
    ...Object.entries(e.env).map(([k, v]) => `${k}=${quoteWord(v)}`),
    ...e.secrets.map((k) => `${k} (a secret: use the variable; its value is never shown to you)`),
    "TREX_JOB_DIR"
  ]
  return [
    `Where your jobs run (the ${e.backend} backend): ${where(e)}`,
    directories(e.backend),
    ...(e.command !== undefined
      ? [
        `The task's own training command, which runs there (you need not use it, but it shows the interpreter and the ` +
        `environment the jobs have): ${e.command.map(quoteWord).join(" ")}`
      ]
      : []),
    `Every job's environment has ${vars.join(", ")}.`,
    `A training job gets ${training}${limit}; a command gets no GPU, 1 CPU and at most ${e.commandLimit} s.`
  ].join("\n")
}

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
