// The crash-and-resume campaign (quick) on ssh: test/chaos/remoteCrash.ts.
import { crashAndResumeOn } from "../chaos/remoteCrash.ts"

crashAndResumeOn("ssh")
