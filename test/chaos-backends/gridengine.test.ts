// The crash-and-resume campaign (quick) on gridengine: test/chaos/remoteCrash.ts.
import { crashAndResumeOn } from "../chaos/remoteCrash.ts"

crashAndResumeOn("gridengine")
