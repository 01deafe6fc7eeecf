// The crash-and-resume campaign (quick) on slurm: test/chaos/remoteCrash.ts.
import { crashAndResumeOn } from "../chaos/remoteCrash.ts"

crashAndResumeOn("slurm")
