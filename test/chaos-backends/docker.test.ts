// The crash-and-resume campaign (quick) on docker: test/chaos/remoteCrash.ts.
import { crashAndResumeOn } from "../chaos/remoteCrash.ts"

crashAndResumeOn("docker")
